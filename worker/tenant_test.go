package worker_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/budget"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// countingBudget counts the calls it let through; with notInTurn, a
// WaitInTurn is never in turn.
type countingBudget struct {
	mu        sync.Mutex
	waits     int
	notInTurn bool
}

var _ worker.Budget = (*countingBudget)(nil)

func (b *countingBudget) Wait(context.Context) (time.Duration, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.waits++
	return 0, nil
}

func (b *countingBudget) Interval() time.Duration { return 250 * time.Millisecond }

func (b *countingBudget) WaitInTurn(ctx context.Context, _ func() (bool, time.Duration)) (time.Duration, error) {
	if b.notInTurn {
		return 0, &budget.MaxWaitError{RetryIn: 2 * time.Second, MaxWait: budget.TurnSpan}
	}
	return b.Wait(ctx)
}

func (b *countingBudget) Pause(context.Context, time.Duration, string) error { return nil }

func (b *countingBudget) n() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waits
}

// tenantBundle is a handler with a default credential and two named ones,
// alice and bob, each with its own fake API and budget.
type tenantBundle struct {
	*testBundle
	def, alice, bob          *fakeAPI
	defBud, aliceBud, bobBud *countingBudget
}

func setupTenants(t *testing.T) *tenantBundle {
	t.Helper()
	b := setup(t)
	tb := &tenantBundle{testBundle: b, def: b.api, alice: &fakeAPI{token: b.api.token}, bob: &fakeAPI{token: b.api.token},
		defBud: &countingBudget{}, aliceBud: &countingBudget{}, bobBud: &countingBudget{}}
	b.h = worker.NewHandlers(worker.Deps{API: tb.def, Budget: tb.defBud, Reader: b.rd, Store: b.store, Enqueue: b.enq, Metrics: b.m, Now: b.clock.Now,
		Named: map[string]*worker.Tenant{
			"alice": {Name: "alice", API: tb.alice, Budget: tb.aliceBud},
			"bob":   {Name: "bob", API: tb.bob, Budget: tb.bobBud},
		}}, worker.HandlerConfig{})
	return tb
}

// TestRowCallsThroughItsCredential: a row's calls go to the client and the
// budget of the credential it names; a row naming none, the default's.
func TestRowCallsThroughItsCredential(t *testing.T) {
	t.Parallel()
	tb := setupTenants(t)
	ctx := context.Background()
	for i, name := range []string{"alice", "alice", "bob", ""} {
		d := tb.dest
		d.Credential, d.Line = name, i+2
		d.ScopeID = strings.Repeat(string(rune('a'+i)), 32)
		if err := tb.h.Challenge(ctx, challengeTask(t, d)); err != nil {
			t.Fatal(err)
		}
	}
	if tb.alice.challenges != 2 || tb.bob.challenges != 1 || tb.def.challenges != 1 {
		t.Errorf("challenges: alice %d, bob %d, default %d; want 2, 1, 1", tb.alice.challenges, tb.bob.challenges, tb.def.challenges)
	}
	if tb.aliceBud.n() != 2 || tb.bobBud.n() != 1 || tb.defBud.n() != 1 {
		t.Errorf("budget waits: alice %d, bob %d, default %d; want 2, 1, 1", tb.aliceBud.n(), tb.bobBud.n(), tb.defBud.n())
	}
	// The budget wait is counted under the credential's label.
	if n := histCount(t, tb.m.BudgetWait, "alice"); n != 2 {
		t.Errorf("budget_wait_seconds{credential=alice} count = %d, want 2", n)
	}
}

func histCount(t *testing.T, h *prometheus.HistogramVec, label string) uint64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 16)
	h.Collect(ch)
	close(ch)
	for m := range ch {
		pb := new(dto.Metric)
		if err := m.Write(pb); err != nil {
			t.Fatal(err)
		}
		for _, l := range pb.GetLabel() {
			if l.GetName() == "credential" && l.GetValue() == label {
				return pb.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}

// TestUnknownCredentialFails: a row naming a credential the worker lacks
// (the file changed after enqueue) fails at once, naming the credential and
// the known ones, with no API call.
func TestUnknownCredentialFails(t *testing.T) {
	t.Parallel()
	tb := setupTenants(t)
	d := tb.dest
	d.Credential = "erin"
	if err := tb.h.Challenge(context.Background(), challengeTask(t, d)); err != nil {
		t.Fatalf("Challenge = %v, want nil: the failure is recorded", err)
	}
	evs := tb.events(t)
	if len(evs) != 1 || evs[0].Event != events.Failed || evs[0].Error == nil ||
		!strings.Contains(evs[0].Error.Message, `unknown credential "erin"`) || !strings.Contains(evs[0].Error.Message, "alice, bob") {
		t.Fatalf("events = %+v", evs)
	}
	if tb.alice.challenges+tb.bob.challenges+tb.def.challenges != 0 {
		t.Error("an unknown credential's row made a call")
	}
}

// TestNoDefaultCredential: without a default, a row naming none fails
// with the cause.
func TestNoDefaultCredential(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.h = worker.NewHandlers(worker.Deps{Reader: b.rd, Store: b.store, Enqueue: b.enq, Metrics: b.m, Now: b.clock.Now,
		Named: map[string]*worker.Tenant{"alice": {Name: "alice", API: b.api}}}, worker.HandlerConfig{})
	if err := b.h.Challenge(context.Background(), challengeTask(t, b.dest)); err != nil {
		t.Fatal(err)
	}
	evs := b.events(t)
	if len(evs) != 1 || evs[0].Event != events.Failed || !strings.Contains(evs[0].Error.Message, "no default credential") {
		t.Fatalf("events = %+v", evs)
	}
}

// TestCredentialAuthPause: repeated 401/403 answers for alice pause alice
// alone: one credential_paused event, her next row is held without a call
// or a failure, bob's rows go on and the queue stays unpaused while bob is
// in use; ResumeCredential releases her.
func TestCredentialAuthPause(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rdb, _ := testutil.Mini(t)
	store := ledger.NewStore(rdb, ledger.Config{})
	b.store = store
	insp := asynq.NewInspectorFromRedisClient(rdb)
	m := newMetrics(t)
	alice, bob := &fakeAPI{token: b.api.token}, &fakeAPI{token: b.api.token}
	alice.challengeErr = &cloudflare.APIError{Endpoint: "ownership", HTTPStatus: 401, Codes: []int{10000}, Kind: cloudflare.Auth, Message: "Authentication error"}
	ag, ap := worker.NewCredentialGuard(rdb, insp, store, m, "alice", 2)
	bg, bp := worker.NewCredentialGuard(rdb, insp, store, m, "bob", 2)
	h := worker.NewHandlers(worker.Deps{Reader: b.rd, Store: store, Enqueue: b.enq, Metrics: m,
		Named: map[string]*worker.Tenant{
			"alice": {Name: "alice", API: alice, Auth: ag, Pause: ap},
			"bob":   {Name: "bob", API: bob, Auth: bg, Pause: bp},
		}}, worker.HandlerConfig{})
	ctx := context.Background()
	row := func(name string, i int) tasks.Dest {
		d := b.dest
		d.Credential, d.Line, d.ScopeID = name, i, strings.Repeat(string(rune('a'+i)), 32)
		return d
	}
	if err := h.Challenge(ctx, challengeTask(t, row("bob", 0))); err != nil {
		t.Fatal(err)
	}
	// Two failures at once: whichever fails first waits for the verdict,
	// which the other (the threshold) gives.
	errs := make(chan error, 2)
	go func() { errs <- h.Challenge(ctx, challengeTask(t, row("alice", 1))) }()
	go func() { errs <- h.Challenge(ctx, challengeTask(t, row("alice", 2))) }()
	for range 2 {
		var s *worker.SnoozeError
		if err := <-errs; !errors.As(err, &s) || worker.IsFailure(err) {
			t.Fatalf("Challenge of alice after the threshold = %v, want a hold (snooze)", err)
		}
	}
	paused, err := worker.PausedCredentials(ctx, rdb)
	if err != nil || len(paused) != 1 || !strings.Contains(paused["alice"], "credential alice") {
		t.Fatalf("paused credentials = %v, %v; want alice", paused, err)
	}
	calls := alice.challenges
	var s *worker.SnoozeError
	if err := h.Challenge(ctx, challengeTask(t, row("alice", 3))); !errors.As(err, &s) || s.Delay < time.Minute {
		t.Fatalf("a paused credential's row = %v, want a long snooze", err)
	}
	if alice.challenges != calls {
		t.Error("a paused credential's row called the API")
	}
	if err := h.Challenge(ctx, challengeTask(t, row("bob", 4))); err != nil {
		t.Fatalf("bob's row while alice is paused = %v", err)
	}
	if bob.challenges != 2 {
		t.Errorf("bob made %d challenges, want 2", bob.challenges)
	}
	if qp, _ := worker.QueuePaused(insp); qp {
		t.Error("the queue paused while bob, in use, is fine")
	}
	var kinds []string
	for _, e := range eventsOf(t, store) {
		kinds = append(kinds, string(e.Event)+":"+e.Credential)
	}
	if strings.Join(kinds, " ") != "credential_paused:alice" {
		t.Errorf("events = %v, want one credential_paused for alice and no failure", kinds)
	}
	was, err := worker.ResumeCredential(ctx, rdb, "alice")
	if err != nil || !was {
		t.Fatalf("ResumeCredential = %v, %v", was, err)
	}
	if p, _ := worker.PausedCredentials(ctx, rdb); len(p) != 0 {
		t.Errorf("paused after resume: %v", p)
	}
}

// TestAllCredentialsPausedPausesQueue: when every credential in use is
// paused, the queue pauses too, with one queue_paused event.
func TestAllCredentialsPausedPausesQueue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rdb, _ := testutil.Mini(t)
	store := ledger.NewStore(rdb, ledger.Config{})
	insp := asynq.NewInspectorFromRedisClient(rdb)
	m := newMetrics(t)
	alice := &fakeAPI{token: b.api.token}
	alice.challengeErr = &cloudflare.APIError{Endpoint: "ownership", HTTPStatus: 403, Codes: []int{10000}, Kind: cloudflare.Auth, Message: "Authentication error"}
	ag, ap := worker.NewCredentialGuard(rdb, insp, store, m, "alice", 1)
	h := worker.NewHandlers(worker.Deps{Reader: b.rd, Store: store, Enqueue: b.enq, Metrics: m,
		Named: map[string]*worker.Tenant{"alice": {Name: "alice", API: alice, Auth: ag, Pause: ap}}}, worker.HandlerConfig{})
	// The queue must exist for asynq to pause it.
	client := asynq.NewClientFromRedisClient(rdb)
	if _, err := client.Enqueue(asynq.NewTask("noop", nil), asynq.Queue(tasks.Queue), asynq.ProcessIn(time.Hour)); err != nil {
		t.Fatal(err)
	}
	d := b.dest
	d.Credential = "alice"
	var s *worker.SnoozeError
	if err := h.Challenge(context.Background(), challengeTask(t, d)); !errors.As(err, &s) {
		t.Fatalf("Challenge = %v, want a hold", err)
	}
	if qp, err := worker.QueuePaused(insp); err != nil || !qp {
		t.Fatalf("queue paused = %v, %v; want paused: alice is the only credential in use", qp, err)
	}
	var kinds []string
	for _, e := range eventsOf(t, store) {
		kinds = append(kinds, string(e.Event))
	}
	if strings.Join(kinds, " ") != "credential_paused queue_paused" {
		t.Errorf("events = %v", kinds)
	}
}

func eventsOf(t *testing.T, store *ledger.Store) []events.Event {
	t.Helper()
	es, err := store.Read(context.Background(), "0", 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Event
	for _, e := range es {
		out = append(out, e.Event)
	}
	return out
}

// TestNewNamedCredentials: New builds one client per credential (each
// request carries its own token), one budget per budget key at the
// credential's api_rate, and needs no default credential.
func TestNewNamedCredentials(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	set, err := credentials.NewSet(
		credentials.Named{Name: "alice", Credentials: credentials.Cloudflare{APIToken: "alice-secret-1"}},
		credentials.Named{Name: "bob", Credentials: credentials.Cloudflare{APIToken: "bob-secret-2"}, APIRate: "60/1m", BudgetKey: "bob-user"},
	)
	if err != nil {
		t.Fatal(err)
	}
	if err := (worker.Config{NamedCredentials: set}).Validate(); err != nil {
		t.Fatalf("Validate without a default = %v, want nil", err)
	}
	if err := (worker.Config{NamedCredentials: &credentials.Set{}}).Validate(); !isField(err, "Credentials") {
		t.Fatalf("Validate with an empty set and no default = %v, want a ConfigError for Credentials", err)
	}
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	w, err := worker.New(t.Context(), rdb, worker.Config{NamedCredentials: set, APIURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_ = w
	if got, _ := rdb.Get(context.Background(), "logpush:budget:bob-user:limit").Result(); got != "60/1m" {
		t.Errorf("bob's budget rate = %q, want 60/1m", got)
	}
	alice := credentials.Cloudflare{APIToken: "alice-secret-1"}
	if got, _ := rdb.Get(context.Background(), "logpush:budget:"+alice.Digest()+":limit").Result(); got != worker.APIRateDefault {
		t.Errorf("alice's budget rate = %q, want the default %s", got, worker.APIRateDefault)
	}
	// A file rate that differs from the one stored with the budget is
	// refused, naming the credential, never its token.
	set2, _ := credentials.NewSet(credentials.Named{Name: "bob", Credentials: credentials.Cloudflare{APIToken: "bob-secret-2"}, APIRate: "30/1m", BudgetKey: "bob-user"})
	_, err = worker.New(t.Context(), rdb, worker.Config{NamedCredentials: set2, APIURL: srv.URL})
	if !isField(err, "NamedCredentials") || !strings.Contains(err.Error(), "credential bob") || strings.Contains(err.Error(), "secret") {
		t.Errorf("New with a conflicting api_rate = %v", err)
	}
}

func isField(err error, field string) bool {
	var ce *worker.ConfigError
	return errors.As(err, &ce) && ce.Field == field
}

// TestChallengeWaitsInTurn: a challenge that would queue behind more than
// budget.TurnSpan of its budget's calls snoozes until its turn, without a
// call and without holding its slot; a poll that found its file waits for
// the budget as before (a snooze would read the file again).
func TestChallengeWaitsInTurn(t *testing.T) {
	t.Parallel()
	b := setup(t)
	bud := &countingBudget{notInTurn: true}
	b.h = worker.NewHandlers(worker.Deps{API: b.api, Budget: bud, Reader: b.rd, Store: b.store, Enqueue: b.enq, Metrics: b.m, Now: b.clock.Now}, worker.HandlerConfig{})
	ctx := context.Background()
	var s *worker.SnoozeError
	if err := b.h.Challenge(ctx, challengeTask(t, b.dest)); !errors.As(err, &s) || s.Delay != 2*time.Second || worker.IsFailure(err) {
		t.Fatalf("Challenge out of turn = %v, want a snooze of 2s", err)
	}
	if b.api.challenges != 0 || bud.n() != 0 {
		t.Fatalf("%d challenge calls, %d budget grants, want none", b.api.challenges, bud.n())
	}
	now := b.clock.Now()
	poll, err := tasks.NewPollTask(tasks.PollPayload{Dest: b.dest, Filename: "logs/ownership-challenge-1.txt", RequestedAt: now,
		Deadline: now.Add(time.Minute)}, tasks.Options{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	b.rd.put("bucket/logs/ownership-challenge-1.txt", b.api.token, now)
	if err := b.h.Poll(ctx, poll); err != nil {
		t.Fatalf("Poll of a found file = %v, want it validated", err)
	}
	if bud.n() != 1 || b.api.validateCalls() != 1 {
		t.Fatalf("%d budget grants, %d validate calls, want 1 and 1", bud.n(), b.api.validateCalls())
	}
}
