package worker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/hibiken/asynq"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/location"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/metrics"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// archiveFixture is a Redis whose asynq archive holds tasks of ours, each
// with a secret of its own in its payload, and the handlers a sweep
// records failures with.
type archiveFixture struct {
	rdb   *redis.Client
	insp  *asynq.Inspector
	store *ledger.Store
	m     *metrics.Metrics
	h     *worker.Handlers
	logs  *testutil.Buffer
	// failing's task was archived by asynq with its last error; done's
	// destination is validated; newer's was challenged again since its
	// task (gen 1); bad's payload does not decode.
	failing, done, newer tasks.Dest
	secrets              []string
	foreign              string // the id of an archived task of a type not ours
}

const archiveSecret = "SECRETSASSIGARCH"

func newArchiveFixture(t *testing.T) *archiveFixture {
	t.Helper()
	ctx := context.Background()
	rdb, _ := testutil.Mini(t)
	b := setup(t)
	f := &archiveFixture{rdb: rdb, insp: asynq.NewInspectorFromRedisClient(rdb), store: ledger.NewStore(rdb, ledger.Config{}),
		m: newMetrics(t), logs: &testutil.Buffer{}}
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	f.h = worker.NewHandlers(worker.Deps{API: b.api, Reader: b.rd, Store: f.store, Enqueue: client, Metrics: f.m,
		Logger: slog.New(slog.NewTextHandler(f.logs, nil))}, worker.HandlerConfig{})
	dest := func(n int) tasks.Dest {
		d := b.dest
		d.DestinationConf = fmt.Sprintf("azure://logs/a%d?sv=2022-11-02&sp=rw&sig=%s%d", n, archiveSecret, n)
		d.Line = n
		f.secrets = append(f.secrets, fmt.Sprintf("%s%d", archiveSecret, n))
		return d
	}
	f.failing, f.done, f.newer = dest(1), dest(2), dest(3)
	f.secrets = append(f.secrets, archiveSecret+"4")

	// failing: a challenge task whose last attempt failed, archived by
	// asynq's own server with the error, which names the secret.
	task, err := tasks.NewChallengeTask(f.failing, tasks.Options{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Enter(ctx, key(f.failing), f.failing.Line, events.Challenging, 0, 0, events.StageChallenge); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(task, asynq.MaxRetry(0)); err != nil {
		t.Fatal(err)
	}
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: 1, Queues: map[string]int{tasks.Queue: 1},
		Logger: worker.AsynqLogger(slog.New(slog.DiscardHandler))})
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeChallenge, func(context.Context, *asynq.Task) error {
		return fmt.Errorf("read azure://logs/a1?sig=%s1: no such host", archiveSecret)
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	waitQueues(t, f.insp, "asynq did not archive the failing task", func(info *asynq.QueueInfo) bool { return info.Archived == 1 })
	srv.Shutdown()

	// done: validated, its poll archived by hand (as a lease expiry
	// after the outcome would leave it).
	if _, err := f.store.Enter(ctx, key(f.done), f.done.Line, events.Polling, 0, 0, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Transition(ctx, key(f.done), events.Validated, &events.Event{Event: events.Validated, BatchID: f.done.BatchID}, ""); err != nil {
		t.Fatal(err)
	}
	f.archive(t, client, mustPoll(t, f.done))
	// newer: the ledger is at gen 1, the archived poll is gen 0's.
	if _, err := f.store.Enter(ctx, key(f.newer), f.newer.Line, events.Challenging, 0, 1, events.StageChallenge, "gen", 1); err != nil {
		t.Fatal(err)
	}
	f.archive(t, client, mustPoll(t, f.newer))
	// bad: an undecodable payload of one of our types.
	f.archive(t, client, asynq.NewTask(tasks.TypeValidate, []byte(`{"destination_conf":"sig=`+archiveSecret+`4`), asynq.Queue(tasks.FollowUpQueue)))
	// foreign: not a type of ours, left to whoever owns it.
	f.foreign = f.archive(t, client, asynq.NewTask("someone:else", []byte(`{}`), asynq.Queue(tasks.FollowUpQueue)))
	return f
}

func key(d tasks.Dest) ledger.Key { return ledger.Key{Batch: d.BatchID, Hash: d.Hash()} }

func mustPoll(t *testing.T, d tasks.Dest) *asynq.Task {
	t.Helper()
	task, err := tasks.NewPollTask(tasks.PollPayload{Dest: d, Filename: "logs/ownership-challenge.txt"}, tasks.Options{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// archive enqueues task and moves it to asynq's archive; it returns its id.
func (f *archiveFixture) archive(t *testing.T, client *asynq.Client, task *asynq.Task) string {
	t.Helper()
	info, err := client.Enqueue(task)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.insp.ArchiveTask(info.Queue, info.ID); err != nil {
		t.Fatal(err)
	}
	return info.ID
}

func (f *archiveFixture) sweep(t *testing.T) int {
	t.Helper()
	n, err := worker.NewArchiveSweep(f.rdb, f.insp, f.h, tasks.Queues()).Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *archiveFixture) state(t *testing.T, d tasks.Dest) ledger.DestState {
	t.Helper()
	st, err := f.store.Get(context.Background(), key(d))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (f *archiveFixture) failedEvents(t *testing.T) []events.Event {
	t.Helper()
	es, err := f.store.Read(context.Background(), "0", 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Event
	for _, e := range es {
		if e.Event.Event == events.Failed {
			out = append(out, e.Event)
		}
	}
	return out
}

// TestArchiveSweepDeletesOurArchivedTasks: the tasks of ours that asynq
// archived (a last attempt's failure asynq judged itself, here a
// handler's error on the last attempt; or any archived by hand) leave the
// archive at the sweep's look, and with them every copy of the conf's
// secrets: the destination of an in-flight one fails with the archive's
// reason and its last error (cleaned of the secret), a validated one stays
// validated, one that a newer challenge took over is left to it, and an
// undecodable one is just deleted. A task of a type not ours stays. A
// second look changes nothing.
func TestArchiveSweepDeletesOurArchivedTasks(t *testing.T) {
	t.Parallel()
	f := newArchiveFixture(t)
	if dump := testutil.DumpRedis(t, f.rdb); !strings.Contains(dump, archiveSecret) {
		t.Fatal("the fixture archived no secret: the test would prove nothing")
	}
	if n := f.sweep(t); n != 4 {
		t.Fatalf("the sweep deleted %d tasks, want 4", n)
	}
	for _, q := range tasks.Queues() {
		infos, err := f.insp.ListArchivedTasks(q, asynq.PageSize(100))
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range infos {
			if info.ID != f.foreign {
				t.Errorf("queue %s still archives task %s of type %s", q, info.ID, info.Type)
			}
		}
	}
	if _, err := f.insp.GetTaskInfo(tasks.FollowUpQueue, f.foreign); err != nil {
		t.Errorf("the task of a type not ours was touched: %v", err)
	}
	dump := testutil.DumpRedis(t, f.rdb)
	for _, s := range f.secrets {
		if strings.Contains(dump, s) {
			t.Errorf("secret %s is at rest in Redis after the sweep", s)
		}
	}
	if strings.Contains(f.logs.String(), archiveSecret) {
		t.Error("the sweep logged a secret")
	}
	st := f.state(t, f.failing)
	if st.State != events.Failed || st.Error == nil || !strings.Contains(st.Error.Message, "asynq archived the task: read azure://logs/a1") {
		t.Errorf("the archived task's destination = %s (%+v), want failed with the archive's reason and its last error", st.State, st.Error)
	}
	if st := f.state(t, f.done); st.State != events.Validated {
		t.Errorf("a validated destination moved to %s", st.State)
	}
	if st := f.state(t, f.newer); st.State != events.Challenging {
		t.Errorf("a destination a newer challenge took over moved to %s", st.State)
	}
	evs := f.failedEvents(t)
	if len(evs) != 1 || evs[0].DestinationID != key(f.failing).Hash {
		t.Fatalf("failed events %+v, want one, the archived task's destination's", evs)
	}
	swept := 0.0
	for _, typ := range tasks.Types() {
		swept += promtest.ToFloat64(f.m.Tasks.WithLabelValues(typ, "swept"))
	}
	if swept != 4 {
		t.Errorf("tasks_total{outcome=swept} = %v, want 4", swept)
	}

	if n := f.sweep(t); n != 0 {
		t.Errorf("a second look deleted %d tasks", n)
	}
	if evs := f.failedEvents(t); len(evs) != 1 {
		t.Errorf("a second look emitted events: %+v", evs)
	}
	if st := f.state(t, f.failing); st.State != events.Failed {
		t.Errorf("a second look moved the failed destination to %s", st.State)
	}
}

// TestArchiveSweepsAtOnce: workers sweeping at once record each
// destination's failure once and count each task once, whichever deletes
// it.
func TestArchiveSweepsAtOnce(t *testing.T) {
	t.Parallel()
	f := newArchiveFixture(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	var errs []error
	for range 3 {
		s := worker.NewArchiveSweep(f.rdb, f.insp, f.h, tasks.Queues())
		wg.Go(func() {
			n, err := s.Sweep(context.Background())
			mu.Lock()
			defer mu.Unlock()
			total += n
			errs = append(errs, err)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if total != 4 {
		t.Errorf("the sweeps deleted %d tasks in all, want 4", total)
	}
	if evs := f.failedEvents(t); len(evs) != 1 {
		t.Errorf("failed events %+v, want one", evs)
	}
	if dump := testutil.DumpRedis(t, f.rdb); strings.Contains(dump, archiveSecret) {
		t.Error("a secret is at rest in Redis after the sweeps")
	}
}

// TestArchiveSweepFreesThePollsPath: the destination of an archived poll
// lets go of its challenge path with its failure, and the next
// destination waiting for the path is woken, rather than waiting for the
// lease to expire.
func TestArchiveSweepFreesThePollsPath(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, _ := testutil.Mini(t)
	leases, err := location.New(rdb, location.Config{})
	if err != nil {
		t.Fatal(err)
	}
	store := ledger.NewStore(rdb, ledger.Config{})
	waker := &fakeWaker{}
	h := worker.NewHandlers(worker.Deps{API: &fakeAPI{}, Reader: &fakeReader{objs: map[string]destination.Object{}}, Store: store,
		Enqueue: &fakeEnqueuer{}, Metrics: newMetrics(t), Leases: leases, Waker: waker}, worker.HandlerConfig{})
	a := tasks.Dest{BatchID: "b1", Scope: tasks.ScopeZone, ScopeID: "023e105f4ecef8ad9ca31a8372d0c353", DestinationConf: sharedConf, Line: 2}
	b := a
	b.ScopeID, b.Line = "c3f2a9c1d0e4b5a6978877665544332b", 3
	loc := location.ID("s3://bucket/logs/ownership-challenge.txt")
	for i, d := range []tasks.Dest{a, b} {
		g, err := leases.Acquire(ctx, loc, location.Waiter{Holder: d.BatchID + ":" + d.Hash(), Order: float64(d.Line),
			Queue: tasks.Queue, TaskID: tasks.ChallengeTaskID(d)})
		if err != nil || g.Held != (i == 0) {
			t.Fatalf("destination %d: grant %+v, %v", i, g, err)
		}
	}
	if _, err := store.Enter(ctx, key(a), a.Line, events.Polling, 0, 0, ""); err != nil {
		t.Fatal(err)
	}
	task, err := tasks.NewPollTask(tasks.PollPayload{Dest: a, Filename: "logs/ownership-challenge.txt", Lease: loc}, tasks.Options{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	insp := asynq.NewInspectorFromRedisClient(rdb)
	info, err := client.Enqueue(task)
	if err != nil {
		t.Fatal(err)
	}
	if err := insp.ArchiveTask(info.Queue, info.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := worker.NewArchiveSweep(rdb, insp, h, tasks.Queues()).Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("the sweep deleted %d tasks (%v), want 1", n, err)
	}
	if st, err := store.Get(ctx, key(a)); err != nil || st.State != events.Failed {
		t.Fatalf("the archived poll's destination is %s (%v), want failed", st.State, err)
	}
	waker.mu.Lock()
	defer waker.mu.Unlock()
	if len(waker.woken) != 1 || waker.woken[0] != tasks.ChallengeTaskID(b) {
		t.Errorf("woken %v, want the next destination's challenge %s", waker.woken, tasks.ChallengeTaskID(b))
	}
}
