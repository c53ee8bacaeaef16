package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

type testBundle struct {
	store *ledger.Store
	rdb   redis.UniversalClient
}

func setup(t *testing.T, real bool) testBundle {
	t.Helper()
	var rdb redis.UniversalClient
	if real {
		rdb, _ = testutil.Redis(t)
	} else {
		rdb, _ = testutil.Mini(t)
	}
	return testBundle{store: ledger.NewStore(rdb, ledger.Config{StateTTL: time.Hour}), rdb: rdb}
}

func both(t *testing.T, fn func(t *testing.T, b testBundle)) {
	for _, real := range []bool{false, true} {
		name := "miniredis"
		if real {
			name = "redis"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, setup(t, real))
		})
	}
}

func TestTerminalEventOnce(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, b testBundle) {
		ctx := context.Background()
		k := ledger.Key{Batch: "b1", Hash: "h1"}
		if ex, err := register(ctx, b.store, k, ledger.Meta{Line: 2, Type: "s3", EnqueuedAt: time.Now()}); err != nil || ex != nil {
			t.Fatalf("Register = %v, %v", ex, err)
		}
		// A task delivered twice, concurrently: one event only.
		var wg sync.WaitGroup
		changedN := make(chan bool, 20)
		for range 20 {
			wg.Go(func() {
				ch, err := b.store.Transition(ctx, k, events.Validated, &events.Event{Event: events.Validated, BatchID: "b1"}, "")
				if err != nil {
					t.Error(err)
				}
				changedN <- ch
			})
		}
		wg.Wait()
		close(changedN)
		n := 0
		for c := range changedN {
			if c {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d transitions reported a change, want 1", n)
		}
		// A terminal state never changes, and emits nothing more.
		if ch, _ := b.store.Transition(ctx, k, events.Failed, &events.Event{Event: events.Failed}, ""); ch {
			t.Fatal("terminal state changed")
		}
		entries, err := b.store.Read(ctx, "0", 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Event.Event != events.Validated {
			t.Fatalf("events = %+v, want one validated", entries)
		}
		st, err := b.store.Batch(ctx, "b1")
		if err != nil {
			t.Fatal(err)
		}
		if st.Total != 1 || st.Counts[events.Validated] != 1 || st.Counts[events.Queued] != 0 || st.Done() != 1 {
			t.Fatalf("batch = %+v", st)
		}
		ttl, _ := b.rdb.TTL(ctx, "logpush:dest:{b1}:h1").Result()
		if ttl <= 0 || ttl > time.Hour {
			t.Fatalf("finished destination TTL = %v, want (0, 1h]", ttl)
		}
	})
}

func TestStagesAttemptsAndRegister(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, b testBundle) {
		ctx := context.Background()
		k := ledger.Key{Batch: "b2", Hash: "h2"}
		// The worker may run before the producer registered the destination.
		if _, err := b.store.Transition(ctx, k, events.Challenging, nil, "challenge"); err != nil {
			t.Fatal(err)
		}
		// Its registration still counts it as new (TestRegisterAfterWorker).
		if ex, err := register(ctx, b.store, k, ledger.Meta{Line: 7}); err != nil || ex != nil {
			t.Fatalf("Register after the worker = %+v, %v; want new", ex, err)
		}
		now := time.Now()
		for range 3 {
			if _, err := b.store.Transition(ctx, k, events.Polling, nil, "poll", "gen", 1, "filename", "f.txt", "requested_at", now.UnixNano()); err != nil {
				t.Fatal(err)
			}
		}
		st, err := b.store.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		want := events.Attempts{Challenge: 1, Poll: 3}
		if st.State != events.Polling || st.Attempts != want || st.Gen != 1 || st.Filename != "f.txt" || !st.RequestedAt.Equal(time.Unix(0, now.UnixNano())) {
			t.Fatalf("state = %+v", st)
		}
		bs, _ := b.store.Batch(ctx, "b2")
		if bs.Total != 1 || bs.Counts[events.Polling] != 1 || bs.Counts[events.Challenging] != 0 || bs.Counts[events.Queued] != 0 {
			t.Fatalf("batch counts = %+v", bs)
		}
		if _, err := b.store.Get(ctx, ledger.Key{Batch: "b2", Hash: "nope"}); err != ledger.ErrNotFound {
			t.Fatalf("Get unknown = %v, want ErrNotFound", err)
		}
	})
}

func TestReadFollowsStream(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, b testBundle) {
		ctx := context.Background()
		for i := range 5 {
			k := ledger.Key{Batch: "b3", Hash: fmt.Sprint(i)}
			if _, err := b.store.Transition(ctx, k, events.NotRequired, &events.Event{Event: events.NotRequired, BatchID: "b3", Line: i + 2}, ""); err != nil {
				t.Fatal(err)
			}
		}
		first, err := b.store.Read(ctx, "0", 3, 0)
		if err != nil || len(first) != 3 {
			t.Fatalf("Read = %d, %v", len(first), err)
		}
		rest, err := b.store.Read(ctx, first[2].ID, 10, 0)
		if err != nil || len(rest) != 2 || rest[1].Event.Line != 6 {
			t.Fatalf("Read after = %+v, %v", rest, err)
		}
		none, err := b.store.Read(ctx, rest[1].ID, 10, 50*time.Millisecond)
		if err != nil || len(none) != 0 {
			t.Fatalf("Read at end = %+v, %v", none, err)
		}
	})
}

func TestEnter(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, b testBundle) {
		ctx := context.Background()
		k := ledger.Key{Batch: "b1", Hash: "h1"}
		// Not registered yet (the worker ran first): registered on the way.
		st, err := b.store.Enter(ctx, k, 0, events.Challenging, 0, 0, "challenge")
		if err != nil || st.State != events.Challenging || st.Attempts.Challenge != 1 {
			t.Fatalf("Enter = %+v, %v; want challenging, 1 attempt", st, err)
		}
		st, err = b.store.Enter(ctx, k, 0, events.Polling, 0, 1, "poll", "gen", 1, "filename", "f.txt", "requested_at", 7)
		if err != nil || st.State != events.Polling || st.Attempts.Poll != 1 || st.Gen != 1 || st.RequestedAt.UnixNano() != 7 || st.Attempts.Challenge != 1 {
			t.Fatalf("Enter = %+v, %v; want polling gen 1 requested at 7, 1 poll, 1 challenge", st, err)
		}
		// Enter reads back what the worker reads; the rest is written, and
		// Get has it.
		if st.Filename != "" {
			t.Fatalf("Enter read back the filename %q", st.Filename)
		}
		if got, err := b.store.Get(ctx, k); err != nil || got.Filename != "f.txt" {
			t.Fatalf("Get = %+v, %v; want the filename Enter set", got, err)
		}
		// A task of the older generation is superseded and changes nothing.
		st, err = b.store.Enter(ctx, k, 0, events.Validating, 0, 0, "validate")
		if !errors.Is(err, ledger.ErrSuperseded) || st.State != events.Polling || st.Attempts.Validate != 0 {
			t.Fatalf("older gen: Enter = %+v, %v; want ErrSuperseded, state unchanged", st, err)
		}
		bs, err := b.store.Batch(ctx, "b1")
		if err != nil || bs.Total != 1 || bs.Counts[events.Polling] != 1 || bs.Counts[events.Queued] != 0 || bs.Counts[events.Challenging] != 0 {
			t.Fatalf("batch = %+v, %v; want 1 total, 1 polling", bs, err)
		}
		if _, err := b.store.Transition(ctx, k, events.Validated, nil, ""); err != nil {
			t.Fatal(err)
		}
		// A finished destination is never entered again, whatever its round.
		if _, err := b.store.Enter(ctx, k, 0, events.Challenging, 5, 0, "challenge"); !errors.Is(err, ledger.ErrSuperseded) {
			t.Fatalf("finished: Enter err = %v; want ErrSuperseded", err)
		}
		// A newer round supersedes an older round's tasks.
		k2 := ledger.Key{Batch: "b1", Hash: "h2"}
		if _, err := b.store.Enter(ctx, k2, 0, events.Challenging, 0, 0, "challenge", "round", 2); err != nil {
			t.Fatal(err)
		}
		if _, err := b.store.Enter(ctx, k2, 0, events.Polling, 1, 3, "poll"); !errors.Is(err, ledger.ErrSuperseded) {
			t.Fatalf("older round: Enter err = %v; want ErrSuperseded", err)
		}
	})
}

// TestRegisterAfterWorker: the producer enqueues before it registers, so a
// fast worker can register a destination on the way first. The producer's
// registration then still counts it as new and fills in its line.
func TestRegisterAfterWorker(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, b testBundle) {
		ctx := context.Background()
		k := ledger.Key{Batch: "b1", Hash: "h1"}
		if _, err := b.store.Enter(ctx, k, 0, events.Polling, 0, 0, "challenge"); err != nil {
			t.Fatal(err)
		}
		ex, err := register(ctx, b.store, k, ledger.Meta{Line: 7, Type: "s3", EnqueuedAt: time.Now()})
		if err != nil || ex != nil {
			t.Fatalf("Register after the worker = %+v, %v; want new", ex, err)
		}
		st, err := b.store.Get(ctx, k)
		if err != nil || st.Line != 7 || st.State != events.Polling || st.Type != "s3" {
			t.Fatalf("state = %+v, %v; want line 7, still polling", st, err)
		}
		if ex, err := register(ctx, b.store, k, ledger.Meta{Line: 9}); err != nil || ex == nil || ex.Line != 7 {
			t.Fatalf("second Register = %+v, %v; want the known line 7", ex, err)
		}
		bs, err := b.store.Batch(ctx, "b1")
		if err != nil || bs.Total != 1 {
			t.Fatalf("batch = %+v, %v; want total 1", bs, err)
		}
	})
}

// register records one destination; nil Existing: it was new.
func register(ctx context.Context, s *ledger.Store, k ledger.Key, m ledger.Meta) (*ledger.Existing, error) {
	ex, errs := s.RegisterMany(ctx, []ledger.Registration{{Key: k, Meta: m}})
	if errs != nil {
		return nil, errs[0]
	}
	return ex[0], nil
}

// TestJobIDKept: the job an event names stays in the destination's state,
// past later transitions that name none, and Dests reads it: export-terraform
// --batch finds each destination's job there.
func TestJobIDKept(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, b testBundle) {
		ctx := context.Background()
		k := ledger.Key{Batch: "bj", Hash: "hj"}
		if _, err := register(ctx, b.store, k, ledger.Meta{Line: 2, Scope: "zone", ScopeID: "z1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.store.Transition(ctx, k, events.Watching, &events.Event{Event: events.Validated, BatchID: "bj", JobID: 41}, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := b.store.Transition(ctx, k, events.Watching, nil, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := b.store.Transition(ctx, k, events.Migrated, &events.Event{Event: events.Migrated, BatchID: "bj", JobID: 41, NewJobID: 42}, ""); err != nil {
			t.Fatal(err)
		}
		st, err := b.store.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if st.JobID != 41 || st.NewJobID != 42 {
			t.Fatalf("Get: job %d, new job %d; want 41, 42", st.JobID, st.NewJobID)
		}
		other := ledger.Key{Batch: "bj", Hash: "no-job"}
		if _, err := b.store.Transition(ctx, other, events.Validated, &events.Event{Event: events.Validated, BatchID: "bj"}, ""); err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		if err := b.store.Dests(ctx, "bj", func(h string, st ledger.DestState) error { got[h] = st.JobID; return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got["hj"] != 41 || got["no-job"] != 0 {
			t.Fatalf("Dests: jobs %v, want hj 41 and no-job 0", got)
		}
	})
}

// TestEventsCarryDestinationID: the events of Transition and
// TransitionMany name their destination by its ledger key, whatever the
// caller put in the event, so that consumers (run's journal and report)
// join on it.
func TestEventsCarryDestinationID(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, b testBundle) {
		ctx := context.Background()
		one := ledger.Key{Batch: "b9", Hash: "0123456789abcdef0123456789abcdef"}
		two := ledger.Key{Batch: "b9", Hash: "fedcba9876543210fedcba9876543210"}
		if _, err := b.store.Transition(ctx, one, events.Validated, &events.Event{Event: events.Validated, DestinationID: "wrong"}, ""); err != nil {
			t.Fatal(err)
		}
		if _, errs := b.store.TransitionMany(ctx, []ledger.Move{{Key: two, State: events.NotRequired, Event: &events.Event{Event: events.NotRequired}}}); errs != nil {
			t.Fatal(errs)
		}
		entries, err := b.store.Read(ctx, "0", 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 2 || entries[0].Event.DestinationID != one.Hash || entries[1].Event.DestinationID != two.Hash {
			t.Fatalf("events = %+v; want destination ids %s, %s", entries, one.Hash, two.Hash)
		}
	})
}

// TestRegisteredOnTheWayAtLine: a worker that registers a destination on
// the way records the task's line (Enter) or its event's (Transition), so
// that its state has the line before the producer's registration, which
// still counts it as new; Known counts it as held.
func TestRegisteredOnTheWayAtLine(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, b testBundle) {
		ctx := context.Background()
		entered, moved := ledger.Key{Batch: "bl", Hash: "h1"}, ledger.Key{Batch: "bl", Hash: "h2"}
		if _, err := b.store.Enter(ctx, entered, 4, events.Challenging, 0, 0, "challenge"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.store.Transition(ctx, moved, events.Failed, &events.Event{Event: events.Failed, BatchID: "bl", Line: 5}, "challenge"); err != nil {
			t.Fatal(err)
		}
		for k, line := range map[ledger.Key]int{entered: 4, moved: 5} {
			if st, err := b.store.Get(ctx, k); err != nil || st.Line != line {
				t.Fatalf("%s before registration = %+v, %v; want line %d", k.Hash, st, err, line)
			}
			if states, errs := b.store.StatesOf(ctx, []ledger.Key{k}); errs != nil || states[0] != nil {
				t.Fatalf("%s: StatesOf = %+v, %v; want not registered by a producer", k.Hash, states[0], errs)
			}
			if known, err := b.store.Known(ctx, []ledger.Key{{Batch: "bl", Hash: "never"}, k}); err != nil || known[0] || !known[1] {
				t.Fatalf("%s: Known = %v, %v; want [false true]: the ledger holds what a worker registered", k.Hash, known, err)
			}
			if ex, err := register(ctx, b.store, k, ledger.Meta{Line: line, EnqueuedAt: time.Now()}); err != nil || ex != nil {
				t.Fatalf("%s: registration after the worker = %+v, %v; want new", k.Hash, ex, err)
			}
		}
	})
}

// TestEnterAfterTokenAccepted: once a destination's token was accepted
// (its job is created, updated or watched), a token stage's task of the
// same generation (a poll scheduled to take over from inline polls that
// found the file) is superseded: it would read a shared path that holds
// another destination's token by then. A newer generation (the job stage
// asked for a fresh challenge) enters.
func TestEnterAfterTokenAccepted(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, b testBundle) {
		ctx := context.Background()
		for _, job := range events.JobStates() {
			k := ledger.Key{Batch: "b1", Hash: "h-" + string(job)}
			if _, err := b.store.Enter(ctx, k, 0, events.Polling, 0, 0, "poll"); err != nil {
				t.Fatal(err)
			}
			if _, err := b.store.Enter(ctx, k, 0, job, 0, 0, ""); err != nil {
				t.Fatal(err)
			}
			for _, token := range events.TokenStates() {
				if st, err := b.store.Enter(ctx, k, 0, token, 0, 0, ""); !errors.Is(err, ledger.ErrSuperseded) || st.State != job {
					t.Errorf("%s entered from %s = %+v, %v; want ErrSuperseded, %s kept", token, job, st, err, job)
				}
			}
			if st, err := b.store.Enter(ctx, k, 0, events.Challenging, 0, 1, "challenge", "gen", 1); err != nil || st.State != events.Challenging {
				t.Errorf("a fresh challenge (gen 1) from %s = %+v, %v; want challenging", job, st, err)
			}
		}
	})
}
