package worker_test

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/location"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/metrics"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// fakeAPI answers challenges with a fixed filename and accepts only the
// token it set as current.
type fakeAPI struct {
	mu           sync.Mutex
	onChallenge  func(cloudflare.Target, string) // plays Cloudflare writing the file
	challengeErr error
	validateErr  error
	token        string
	challenges   int
	validations  []string
	// jobs are the zone's Logpush jobs; lists counts ListJobs calls,
	// creates the CreateJob calls; createErr fails them after the job is
	// made (a timeout after Cloudflare created it); listErr fails the
	// ListJobs calls while set.
	jobs      []cloudflare.Job
	lists     int
	listErr   error
	creates   []cloudflare.JobRequest
	createErr error
	// noFilename answers challenges without result.filename, which the
	// schema makes optional.
	noFilename bool
	// filename, when set, is the result.filename challenges answer.
	filename string
	// updates are the UpdateJob calls (updatejob_test.go); updateErr
	// answers the next one.
	updates   []cloudflare.JobRequest
	updateErr error
	// fields are the datasets' fields Fields answers, fieldCalls its
	// calls by dataset; gets counts GetJob calls, getJob answers them
	// (nil: the job from jobs), getErr fails them while set.
	fields     map[string]map[string]string
	fieldCalls map[string]int
	gets       int
	getJob     func(id int) (cloudflare.Job, error)
}

var _ worker.API = (*fakeAPI)(nil)

func (f *fakeAPI) Challenge(_ context.Context, t cloudflare.Target, conf string) (cloudflare.ChallengeResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.challenges++
	if f.challengeErr != nil {
		return cloudflare.ChallengeResult{}, f.challengeErr
	}
	if f.onChallenge != nil {
		f.onChallenge(t, conf)
	}
	if f.noFilename {
		return cloudflare.ChallengeResult{Valid: true}, nil
	}
	return cloudflare.ChallengeResult{Filename: cmp.Or(f.filename, "logs/ownership-challenge-1.txt"), Valid: true}, nil
}

// TestOutcomeFilenameIsTheKey: where Cloudflare's answer names the bucket
// before the challenge file's path, the outcome names the file by its key
// in the bucket, as it names a challenge taken up from an earlier run's
// log: one form in the report for both.
func TestOutcomeFilenameIsTheKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.api.filename = "bucket/logs/ownership-challenge-1.txt"
	if err := b.h.Challenge(ctx, challengeTask(t, b.dest)); err != nil {
		t.Fatal(err)
	}
	poll := b.enq.take(t, tasks.TypePoll)
	b.rd.put("bucket/logs/ownership-challenge-1.txt", b.api.token+"\n", time.Now())
	if err := b.h.Poll(ctx, poll); err != nil {
		t.Fatal(err)
	}
	if evs := b.events(t); len(evs) != 1 || evs[0].Event != events.Validated || evs[0].Filename != "logs/ownership-challenge-1.txt" {
		t.Fatalf("events = %+v, want validated, with the file's key in its bucket", evs)
	}
}

func (f *fakeAPI) Validate(_ context.Context, _ cloudflare.Target, _, tok string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.validations = append(f.validations, tok)
	if f.validateErr != nil {
		return false, f.validateErr
	}
	return tok == f.token, nil
}

func (f *fakeAPI) validateCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.validations)
}

func (f *fakeAPI) ListJobs(context.Context, cloudflare.Target) ([]cloudflare.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if f.listErr != nil {
		return nil, f.listErr
	}
	return append([]cloudflare.Job(nil), f.jobs...), nil
}

func (f *fakeAPI) CreateJob(_ context.Context, _ cloudflare.Target, j cloudflare.JobRequest) (cloudflare.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.creates = append(f.creates, j)
	job := cloudflare.Job{ID: 100 + len(f.jobs), Dataset: j.Dataset, DestinationConf: j.DestinationConf, Enabled: j.Enabled}
	f.jobs = append(f.jobs, job)
	if f.createErr != nil {
		err := f.createErr
		f.createErr = nil
		return cloudflare.Job{}, err
	}
	return job, nil
}

func (f *fakeAPI) Fields(_ context.Context, _ cloudflare.Target, dataset string) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fieldCalls == nil {
		f.fieldCalls = map[string]int{}
	}
	f.fieldCalls[dataset]++
	if fs, ok := f.fields[dataset]; ok {
		return fs, nil
	}
	return map[string]string{"RayID": "ID of the request"}, nil
}

func (f *fakeAPI) GetJob(_ context.Context, _ cloudflare.Target, id int) (cloudflare.Job, error) {
	f.mu.Lock()
	f.gets++
	get := f.getJob
	jobs := append([]cloudflare.Job(nil), f.jobs...)
	f.mu.Unlock()
	if get != nil {
		return get(id)
	}
	for _, j := range jobs {
		if j.ID == id {
			return j, nil
		}
	}
	return cloudflare.Job{}, &cloudflare.APIError{Endpoint: cloudflare.EndpointJob, HTTPStatus: 404, Kind: cloudflare.Permanent, Message: "job not found"}
}

// fakeReader serves objects from memory.
type fakeReader struct {
	mu    sync.Mutex
	objs  map[string]destination.Object
	err   error
	reads int
	// clock, when set, is what every read tells of the storage's clock
	// (destination.ReportClock).
	clock []destination.ClockSample
	// deletes counts Delete calls; deleteErr fails them.
	deletes   int
	deleteErr error
}

var _ destination.Reader = (*fakeReader)(nil)

func (f *fakeReader) Read(ctx context.Context, loc destination.Location, notBefore time.Time) (destination.Object, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	for _, s := range f.clock {
		destination.ReportClock(ctx, s)
	}
	if f.err != nil {
		return destination.Object{}, f.err
	}
	o, ok := f.objs[loc.Bucket+"/"+loc.Key]
	if !ok {
		return o, destination.ErrNotFound
	}
	if o.ModTime.Before(notBefore) {
		return destination.Object{}, destination.ErrStale
	}
	return o, nil
}

// Delete removes an object; deleteErr refuses it while set.
func (f *fakeReader) Delete(_ context.Context, loc destination.Location) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes++
	if f.deleteErr != nil {
		return f.deleteErr
	}
	delete(f.objs, loc.Bucket+"/"+loc.Key)
	return nil
}

func (f *fakeReader) has(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.objs[key]
	return ok
}

func (f *fakeReader) put(key string, body string, mod time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objs[key] = destination.Object{Body: []byte(body), ModTime: mod}
}

// fakeEnqueuer records tasks.
type fakeEnqueuer struct {
	mu    sync.Mutex
	tasks []*asynq.Task
}

func (f *fakeEnqueuer) EnqueueContext(_ context.Context, t *asynq.Task, _ ...asynq.Option) (*asynq.TaskInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tasks = append(f.tasks, t)
	return &asynq.TaskInfo{}, nil
}

func (f *fakeEnqueuer) take(t *testing.T, typ string) *asynq.Task {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.tasks) != 1 || f.tasks[0].Type() != typ {
		t.Fatalf("enqueued %v, want one %s", types(f.tasks), typ)
	}
	task := f.tasks[0]
	f.tasks = nil
	return task
}

// queued lists the types of the tasks enqueued and not taken.
func (f *fakeEnqueuer) queued() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return types(f.tasks)
}

func types(ts []*asynq.Task) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Type())
	}
	return out
}

// fakeClock is the handlers' Deps.Now: it starts at the wall clock's time
// and moves only when a test advances it, so that a test passes a poll
// deadline or a second of S3's Last-Modified without sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

// Now returns the clock's time.
func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock on by d.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type testBundle struct {
	api   *fakeAPI
	rd    *fakeReader
	enq   *fakeEnqueuer
	store *ledger.Store
	h     *worker.Handlers
	m     *metrics.Metrics
	clock *fakeClock
	dest  tasks.Dest
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	return setupWith(t, worker.HandlerConfig{})
}

func setupWith(t *testing.T, cfg worker.HandlerConfig) *testBundle {
	t.Helper()
	rdb, _ := testutil.Mini(t)
	b := &testBundle{
		api:   &fakeAPI{token: jwt(time.Now())},
		rd:    &fakeReader{objs: map[string]destination.Object{}},
		enq:   &fakeEnqueuer{},
		store: ledger.NewStore(rdb, ledger.Config{}),
		clock: newFakeClock(),
		dest: tasks.Dest{BatchID: "b1", Scope: tasks.ScopeZone, ScopeID: "023e105f4ecef8ad9ca31a8372d0c353",
			DestinationConf: "s3://bucket/logs?region=us-east-1", EnqueuedAt: time.Now()},
	}
	b.m = newMetrics(t)
	b.h = worker.NewHandlers(worker.Deps{API: b.api, Reader: b.rd, Store: b.store, Enqueue: b.enq, Metrics: b.m, Now: b.clock.Now}, cfg)
	return b
}

// jwt makes a JWT-like token issued at iat.
func jwt(iat time.Time) string {
	claims, _ := json.Marshal(map[string]any{"iat": iat.Unix(), "exp": iat.Add(7 * 24 * time.Hour).Unix()})
	return "eyJhbGciOiJIUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(claims) + ".c2ln"
}

func (b *testBundle) key() ledger.Key { return ledger.Key{Batch: b.dest.BatchID, Hash: b.dest.Hash()} }

func (b *testBundle) events(t *testing.T) []events.Event {
	t.Helper()
	es, err := b.store.Read(context.Background(), "0", 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Event
	for _, e := range es {
		out = append(out, e.Event)
	}
	return out
}

func challengeTask(t *testing.T, d tasks.Dest) *asynq.Task {
	t.Helper()
	task, err := tasks.NewChallengeTask(d, tasks.Options{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

func TestHappyPath(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if err := b.h.Challenge(ctx, challengeTask(t, b.dest)); err != nil {
		t.Fatal(err)
	}
	poll := b.enq.take(t, tasks.TypePoll)

	// Not there yet: a snooze, which is not a failure.
	err := b.h.Poll(ctx, poll)
	var snooze *worker.SnoozeError
	if !errors.As(err, &snooze) || worker.IsFailure(err) || snooze.Delay <= 0 {
		t.Fatalf("Poll before the file = %v, want a snooze", err)
	}
	// An old file of an earlier challenge under the same name is ignored.
	b.rd.put("bucket/logs/ownership-challenge-1.txt", jwt(time.Now().Add(-time.Hour)), time.Now().Add(-time.Hour))
	if err := b.h.Poll(ctx, poll); !errors.As(err, &snooze) {
		t.Fatalf("Poll of a stale file = %v, want a snooze", err)
	}
	b.rd.put("bucket/logs/ownership-challenge-1.txt", b.api.token+"\n", time.Now())
	// The poll that finds the file validates the token itself.
	if err := b.h.Poll(ctx, poll); err != nil {
		t.Fatal(err)
	}
	if got := b.enq.queued(); len(got) != 0 {
		t.Fatalf("enqueued %v after the file was found, want nothing", got)
	}
	evs := b.events(t)
	if len(evs) != 1 || evs[0].Event != events.Validated {
		t.Fatalf("events = %+v", evs)
	}
	ev := evs[0]
	if ev.Attempts != (events.Attempts{Challenge: 1, Poll: 3, Validate: 1}) || ev.Filename != "logs/ownership-challenge-1.txt" ||
		ev.DestinationType != "s3" || ev.Scope != "zone" || ev.Error != nil {
		t.Fatalf("event = %+v", ev)
	}
	// Delivered again (at least once): no second event, no second call.
	calls := b.api.validateCalls()
	if err := b.h.Poll(ctx, poll); err != nil {
		t.Fatal(err)
	}
	if n := len(b.events(t)); n != 1 || b.api.validateCalls() != calls {
		t.Fatalf("%d events, %d validate calls after a repeated poll, want 1 and %d", n, b.api.validateCalls(), calls)
	}
}

// TestValidateTask: a token submitted by an operator (Sumo) goes through a
// logpush:validate task, counted as one validate attempt, once.
func TestValidateTask(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	task, err := tasks.NewValidateTask(tasks.ValidatePayload{Dest: b.dest, Filename: "logs/f.txt", Token: b.api.token}, tasks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := b.h.Validate(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	evs := b.events(t)
	if len(evs) != 1 || evs[0].Event != events.Validated || evs[0].Attempts != (events.Attempts{Validate: 1}) || evs[0].Filename != "logs/f.txt" {
		t.Fatalf("events = %+v", evs)
	}
}

// TestWrongSubmittedTokensCapped: a destination whose token an operator
// submits (Sumo) gets at most MaxRechallenges fresh challenges for wrong
// tokens, then fails with the reason. The validate task takes its
// generation from the ledger, as submit-token does (producer.SubmitToken),
// so awaiting_token must record it.
func TestWrongSubmittedTokensCapped(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.api.validateErr = &cloudflare.APIError{Endpoint: "ownership_validate", HTTPStatus: 400, Codes: []int{1002}, Kind: cloudflare.StaleChallenge}
	d := b.dest
	d.DestinationConf = "sumo://endpoint1.collection.sumologic.com/receiver/v1/http/Code0123456789"
	key := ledger.Key{Batch: d.BatchID, Hash: d.Hash()}
	challenge := challengeTask(t, d)
	rechallenges := 0
	for try := 1; try <= 3; try++ {
		if err := b.h.Challenge(ctx, challenge); err != nil {
			t.Fatal(err)
		}
		st, err := b.store.Get(ctx, key)
		if err != nil || st.State != events.AwaitingToken {
			t.Fatalf("try %d: state %+v, %v; want awaiting_token", try, st, err)
		}
		sub := d
		sub.Gen = st.Gen
		task, err := tasks.NewValidateTask(tasks.ValidatePayload{Dest: sub, Filename: st.Filename, Token: "wrong"}, tasks.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.h.Validate(ctx, task); err != nil {
			t.Fatalf("try %d: Validate = %v", try, err)
		}
		if q := b.enq.queued(); len(q) == 0 {
			break
		}
		challenge = b.enq.take(t, tasks.TypeChallenge)
		rechallenges++
	}
	if rechallenges != worker.MaxRechallengesDefault {
		t.Fatalf("%d fresh challenges for three wrong tokens, want %d", rechallenges, worker.MaxRechallengesDefault)
	}
	st, err := b.store.Get(ctx, key)
	if err != nil || st.State != events.Failed {
		t.Fatalf("state %+v, %v; want failed", st, err)
	}
	evs := b.events(t)
	last := evs[len(evs)-1]
	if last.Event != events.Failed || last.Error == nil || fmt.Sprint(last.Error.Codes) != "[1002]" ||
		!strings.Contains(last.Error.Message, "after 2 fresh challenges") {
		t.Fatalf("last event = %+v, want failed after 2 fresh challenges with code 1002", last)
	}
}

func TestPermanentAPIErrorFails(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.api.challengeErr = &cloudflare.APIError{Endpoint: "ownership", HTTPStatus: http.StatusBadRequest, Codes: []int{1001}, Message: "bad destination", Kind: cloudflare.Permanent}
	err := b.h.Challenge(context.Background(), challengeTask(t, b.dest))
	if err != nil {
		t.Fatalf("Challenge = %v, want nil: the failure is recorded, the task not archived", err)
	}
	evs := b.events(t)
	if len(evs) != 1 || evs[0].Event != events.Failed || evs[0].Error == nil || evs[0].Error.HTTPStatus != 400 || fmt.Sprint(evs[0].Error.Codes) != "[1001]" {
		t.Fatalf("events = %+v", evs)
	}
}

func TestTransientAPIErrorRetries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.api.challengeErr = &cloudflare.APIError{Endpoint: "ownership", HTTPStatus: 503, Kind: cloudflare.Transient, RetryAfter: 7 * time.Second}
	err := b.h.Challenge(context.Background(), challengeTask(t, b.dest))
	if err == nil || errors.Is(err, asynq.SkipRetry) || !worker.IsFailure(err) {
		t.Fatalf("Challenge = %v, want a retryable failure", err)
	}
	if d := (worker.Backoff{}).WithDefaults().Delay(0, err); d < 7*time.Second {
		t.Fatalf("retry delay %v is below Retry-After 7s", d)
	}
	if n := len(b.events(t)); n != 0 {
		t.Fatalf("%d events for a transient error, want 0", n)
	}
}

func TestStaleTokenRechallengesThenFails(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.api.validateErr = &cloudflare.APIError{Endpoint: "ownership_validate", HTTPStatus: 400, Codes: []int{1002}, Kind: cloudflare.StaleChallenge}
	d := b.dest
	for gen := 0; gen <= 2; gen++ {
		d.Gen = gen
		if err := b.h.Challenge(ctx, challengeTask(t, d)); err != nil {
			t.Fatal(err)
		}
		poll := b.enq.take(t, tasks.TypePoll)
		b.rd.put("bucket/logs/ownership-challenge-1.txt", jwt(time.Now()), time.Now().Add(time.Second))
		err := b.h.Poll(ctx, poll) // finds the file and validates
		if gen < 2 {
			if err != nil {
				t.Fatalf("gen %d: Poll = %v, want a fresh challenge", gen, err)
			}
			next := b.enq.take(t, tasks.TypeChallenge)
			var p tasks.ChallengePayload
			if err := tasks.Decode(next, &p); err != nil || p.Gen != gen+1 {
				t.Fatalf("fresh challenge gen = %d, %v; want %d", p.Gen, err, gen+1)
			}
			continue
		}
		if err != nil {
			t.Fatalf("gen 2: Poll = %v, want nil (failed, recorded)", err)
		}
	}
	evs := b.events(t)
	if len(evs) != 1 || evs[0].Event != events.Failed || fmt.Sprint(evs[0].Error.Codes) != "[1002]" ||
		evs[0].Attempts.Challenge != 3 || evs[0].Attempts.Validate != 3 {
		t.Fatalf("events = %+v", evs)
	}
}

func TestSupersededPollDoesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if err := b.h.Challenge(ctx, challengeTask(t, b.dest)); err != nil {
		t.Fatal(err)
	}
	oldPoll := b.enq.take(t, tasks.TypePoll)
	next := b.dest
	next.Gen = 1
	if err := b.h.Challenge(ctx, challengeTask(t, next)); err != nil {
		t.Fatal(err)
	}
	b.enq.take(t, tasks.TypePoll)
	b.rd.put("bucket/logs/ownership-challenge-1.txt", jwt(time.Now()), time.Now().Add(time.Second))
	if err := b.h.Poll(ctx, oldPoll); err != nil {
		t.Fatalf("superseded poll = %v, want nil", err)
	}
	b.enq.mu.Lock()
	defer b.enq.mu.Unlock()
	if len(b.enq.tasks) != 0 {
		t.Fatalf("a superseded poll enqueued %v", types(b.enq.tasks))
	}
}

func TestRetriedChallengeMovesPollFloor(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if err := b.h.Challenge(ctx, challengeTask(t, b.dest)); err != nil {
		t.Fatal(err)
	}
	poll := b.enq.take(t, tasks.TypePoll)
	// The first token lands, then the same challenge task runs again (a
	// crash after its request): Cloudflare issued a new token, so the file
	// of the first request must not be read by the poll scheduled then.
	first := b.clock.Now()
	b.rd.put("bucket/logs/ownership-challenge-1.txt", jwt(first), first)
	b.clock.Advance(2100 * time.Millisecond)
	if err := b.h.Challenge(ctx, challengeTask(t, b.dest)); err != nil {
		t.Fatal(err)
	}
	var snooze *worker.SnoozeError
	if err := b.h.Poll(ctx, poll); !errors.As(err, &snooze) {
		t.Fatalf("Poll = %v, want a snooze: the file predates the retried challenge", err)
	}
}

func TestPermanentStorageErrorFails(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if err := b.h.Challenge(ctx, challengeTask(t, b.dest)); err != nil {
		t.Fatal(err)
	}
	b.rd.err = &destination.Error{Kind: destination.Permanent, Op: "read", Permission: "s3:GetObject", Err: errors.New("access denied")}
	if err := b.h.Poll(ctx, b.enq.take(t, tasks.TypePoll)); err != nil {
		t.Fatalf("Poll = %v, want nil (failed, recorded)", err)
	}
	evs := b.events(t)
	if len(evs) != 1 || evs[0].Event != events.Failed {
		t.Fatalf("events = %+v", evs)
	}
}

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	bo := worker.Backoff{Initial: time.Second, Max: time.Minute, Jitter: 0.3}
	cases := []struct {
		name     string
		n        int
		err      error
		min, max time.Duration
	}{
		{"snooze is exact", 5, &worker.SnoozeError{Delay: 3 * time.Second}, 3 * time.Second, 3 * time.Second},
		{"first retry", 0, errors.New("x"), 700 * time.Millisecond, 1300 * time.Millisecond},
		{"grows", 3, errors.New("x"), 5600 * time.Millisecond, 10400 * time.Millisecond},
		{"capped", 30, errors.New("x"), 42 * time.Second, 78 * time.Second},
		{"retry-after floor", 0, &cloudflare.APIError{Kind: cloudflare.RateLimited, RetryAfter: 30 * time.Second}, 30 * time.Second, 30 * time.Second},
	}
	for _, c := range cases {
		for range 20 {
			if d := bo.Delay(c.n, c.err); d < c.min || d > c.max {
				t.Errorf("%s: Delay = %v, want [%v, %v]", c.name, d, c.min, c.max)
			}
		}
	}
	if worker.IsFailure(&worker.SnoozeError{}) || !worker.IsFailure(errors.New("x")) {
		t.Error("IsFailure: a snooze is not a failure, anything else is")
	}
}

// TestPollDeadline: past the deadline a destination gets one fresh
// challenge, and the next deadline fails it.
func TestPollDeadline(t *testing.T) {
	t.Parallel()
	b := setupWith(t, worker.HandlerConfig{PollDeadline: time.Millisecond})
	ctx := context.Background()
	if err := b.h.Challenge(ctx, challengeTask(t, b.dest)); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(5 * time.Millisecond)
	if err := b.h.Poll(ctx, b.enq.take(t, tasks.TypePoll)); err != nil {
		t.Fatalf("Poll past the deadline = %v, want a fresh challenge", err)
	}
	again := b.enq.take(t, tasks.TypeChallenge)
	if err := b.h.Challenge(ctx, again); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(5 * time.Millisecond)
	if err := b.h.Poll(ctx, b.enq.take(t, tasks.TypePoll)); err != nil {
		t.Fatalf("second deadline = %v, want nil (failed, recorded)", err)
	}
	evs := b.events(t)
	if len(evs) != 1 || evs[0].Event != events.Failed || !strings.Contains(evs[0].Error.Message, "not written within 1ms") || evs[0].Attempts.Challenge != 2 {
		t.Fatalf("events = %+v", evs)
	}
}

// TestPollAttemptsObserved: the poll that finds the file and validates
// records its polls in the histogram once, with or without a job to create
// after validation.
func TestPollAttemptsObserved(t *testing.T) {
	t.Parallel()
	for _, job := range []*tasks.JobSpec{nil, {Dataset: "http_requests"}} {
		b := setup(t)
		b.dest.Job = job
		ctx := context.Background()
		if err := b.h.Challenge(ctx, challengeTask(t, b.dest)); err != nil {
			t.Fatal(err)
		}
		b.rd.put("bucket/logs/ownership-challenge-1.txt", b.api.token, time.Now())
		if err := b.h.Poll(ctx, b.enq.take(t, tasks.TypePoll)); err != nil {
			t.Fatal(err)
		}
		var m dto.Metric
		if err := b.m.PollAttempts.Write(&m); err != nil {
			t.Fatal(err)
		}
		if n, sum := m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum(); n != 1 || sum != 1 {
			t.Errorf("job %v: poll attempts histogram has %d samples summing to %v, want 1 of 1", job, n, sum)
		}
	}
}

// fakeWaker records the tasks woken.
type fakeWaker struct {
	mu    sync.Mutex
	woken []string
}

func (f *fakeWaker) RunTask(_, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.woken = append(f.woken, id)
	return nil
}

// claimToken is a JWT-shaped token whose claims name a destination.
func claimToken(scope, id, conf, jti string) string {
	claims, _ := json.Marshal(cloudflare.Claims{ObjectType: scope, ObjectID: id, Destination: cloudflare.ConfDigest(conf),
		Exp: time.Now().Add(7 * 24 * time.Hour).Unix(), Jti: jti})
	return "eyJhbGciOiJIUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(claims) + ".c2ln"
}

// sharedBundle is two zones pushing to one path, on handlers with leases.
type sharedBundle struct {
	h      *worker.Handlers
	api    *fakeAPI
	rd     *fakeReader
	enq    *fakeEnqueuer
	store  *ledger.Store
	leases *location.Leases
	waker  *fakeWaker
	clock  *fakeClock
	rdb    *redis.Client
	a, b   tasks.Dest
	// slept is what the handlers slept (Deps.Sleep), on clock.
	slept time.Duration
}

func setupShared(t *testing.T, cfg worker.HandlerConfig) *sharedBundle {
	t.Helper()
	return setupSharedBudget(t, cfg, nil)
}

// setupSharedBudget is setupShared with the API budget bud (nil: none).
func setupSharedBudget(t *testing.T, cfg worker.HandlerConfig, bud worker.Budget) *sharedBundle {
	t.Helper()
	rdb, _ := testutil.Mini(t)
	leases, err := location.New(rdb, location.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sb := &sharedBundle{api: &fakeAPI{}, rd: &fakeReader{objs: map[string]destination.Object{}}, enq: &fakeEnqueuer{},
		store: ledger.NewStore(rdb, ledger.Config{}), leases: leases, waker: &fakeWaker{}, clock: newFakeClock(), rdb: rdb}
	sb.h = worker.NewHandlers(worker.Deps{API: sb.api, Budget: bud, Reader: sb.rd, Store: sb.store, Enqueue: sb.enq,
		Metrics: newMetrics(t), Leases: leases, Waker: sb.waker, Now: sb.clock.Now,
		Sleep: func(_ context.Context, d time.Duration) error { sb.slept += d; sb.clock.Advance(d); return nil }}, cfg)
	sb.a = tasks.Dest{BatchID: "b1", Scope: tasks.ScopeZone, ScopeID: "023e105f4ecef8ad9ca31a8372d0c353", DestinationConf: sharedConf,
		EnqueuedAt: time.Now(), Line: 2}
	sb.b = sb.a
	sb.b.ScopeID, sb.b.Line = "c3f2a9c1d0e4b5a6978877665544332b", 3
	return sb
}

const sharedConf = "s3://bucket/logs?region=us-east-1"

func (sb *sharedBundle) state(t *testing.T, d tasks.Dest) events.State {
	t.Helper()
	st, err := sb.store.Get(context.Background(), ledger.Key{Batch: d.BatchID, Hash: d.Hash()})
	if err != nil {
		t.Fatal(err)
	}
	return st.State
}

// TestSharedPathOneChallengeAtATime: two zones pushing to one path. The
// second waits (no slot, no retry) until the first validates, is woken by
// the release, and then takes neither the first zone's file (however recent
// its date) nor a token naming another destination for its own.
func TestSharedPathOneChallengeAtATime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb := setupShared(t, worker.HandlerConfig{})
	h, api, rd, enq, waker, a, b := sb.h, sb.api, sb.rd, sb.enq, sb.waker, sb.a, sb.b
	const conf = sharedConf
	const file = "bucket/logs/ownership-challenge-1.txt" // the fake API's filename

	if err := h.Challenge(ctx, challengeTask(t, a)); err != nil {
		t.Fatal(err)
	}
	pollA := enq.take(t, tasks.TypePoll)
	var snooze *worker.SnoozeError
	if err := h.Challenge(ctx, challengeTask(t, b)); !errors.As(err, &snooze) || worker.IsFailure(err) ||
		!strings.Contains(snooze.Reason, "busy") {
		t.Fatalf("second challenge on a busy path = %v, want a snooze", err)
	}
	if api.challenges != 1 {
		t.Fatalf("%d challenges while the path was busy, want 1", api.challenges)
	}
	if st := sb.state(t, b); st != events.WaitingPath {
		t.Fatalf("waiting destination in state %q", st)
	}
	api.token = claimToken("zone", a.ScopeID, conf, "1")
	rd.put(file, api.token, time.Now())
	if err := h.Poll(ctx, pollA); err != nil {
		t.Fatal(err)
	}
	if len(waker.woken) != 1 || waker.woken[0] != tasks.ChallengeTaskID(b) {
		t.Fatalf("woken %v after the first validated, want the waiting challenge", waker.woken)
	}
	if err := h.Challenge(ctx, challengeTask(t, b)); err != nil {
		t.Fatal(err)
	}
	pollB := enq.take(t, tasks.TypePoll)
	// A's file is still there, written a moment ago: not B's.
	if err := h.Poll(ctx, pollB); !errors.As(err, &snooze) {
		t.Fatalf("poll of the previous destination's file = %v, want a snooze", err)
	}
	// A file with a token naming another zone: not B's either.
	rd.put(file, claimToken("zone", a.ScopeID, conf, "2"), time.Now())
	if err := h.Poll(ctx, pollB); !errors.As(err, &snooze) {
		t.Fatalf("poll of a file for another destination = %v, want a snooze", err)
	}
	if n := api.validateCalls(); n != 1 {
		t.Fatalf("%d validate calls, want only A's", n)
	}
	api.token = claimToken("zone", b.ScopeID, conf, "3")
	rd.put(file, api.token, time.Now())
	if err := h.Poll(ctx, pollB); err != nil {
		t.Fatal(err)
	}
	for _, d := range []tasks.Dest{a, b} {
		if st := sb.state(t, d); st != events.Validated {
			t.Errorf("line %d: state %q, want validated", d.Line, st)
		}
	}
	if holder, _ := sb.leases.Holder(ctx, sharedLoc); holder != "" {
		t.Fatalf("location still held by %q after both validated", holder)
	}
}

var sharedLoc = location.ID("s3://@bucket/logs/ownership-challenge.txt")

// TestSharedPathStuckHolderFails: the file of the destination holding a
// path never appears; it fails with a message naming the file, and the next
// destination on the path is woken and proceeds.
func TestSharedPathStuckHolderFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb := setupShared(t, worker.HandlerConfig{PollDeadline: time.Millisecond, PollInline: -1})
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.a)); err != nil {
		t.Fatal(err)
	}
	pollA := sb.enq.take(t, tasks.TypePoll)
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.b)); err == nil {
		t.Fatal("b challenged while a held the path")
	}
	sb.clock.Advance(5 * time.Millisecond)
	if err := sb.h.Poll(ctx, pollA); err != nil { // deadline: one fresh challenge, keeping the path
		t.Fatal(err)
	}
	if err := sb.h.Challenge(ctx, sb.enq.take(t, tasks.TypeChallenge)); err != nil {
		t.Fatal(err)
	}
	sb.clock.Advance(5 * time.Millisecond)
	if err := sb.h.Poll(ctx, sb.enq.take(t, tasks.TypePoll)); err != nil {
		t.Fatalf("second deadline = %v, want nil (failed, recorded)", err)
	}
	evs, err := sb.store.Read(ctx, "0", 10, 0)
	if err != nil || len(evs) != 1 || evs[0].Event.Event != events.Failed ||
		!strings.Contains(evs[0].Event.Error.Message, "challenge file logs/ownership-challenge-1.txt not written within") {
		t.Fatalf("events = %+v, %v", evs, err)
	}
	if len(sb.waker.woken) != 1 || sb.waker.woken[0] != tasks.ChallengeTaskID(sb.b) {
		t.Fatalf("woken %v, want b's challenge", sb.waker.woken)
	}
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.b)); err != nil {
		t.Fatalf("b after a failed: %v", err)
	}
	sb.enq.take(t, tasks.TypePoll)
	if holder, _ := sb.leases.Holder(ctx, sharedLoc); holder == "" {
		t.Fatal("b challenged without holding the path")
	}
}

// TestContendedHolderPollsInline: a destination that takes a path others
// wait for polls for its file inside its challenge task, and validates
// there; the poll task enqueued as a fallback then finds it finished.
func TestContendedHolderPollsInline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb := setupShared(t, worker.HandlerConfig{})
	x := sb.a
	x.ScopeID, x.Line = "1d0e4b5a6978877665544332bc3f2a9c", 1
	sb.api.onChallenge = func(tg cloudflare.Target, conf string) { // called with api.mu held
		sb.api.token = claimToken(tg.Scope, tg.ID, conf, tg.ID)
		sb.rd.put("bucket/logs/ownership-challenge-1.txt", sb.api.token, time.Now()) // after the pre-challenge read
	}
	if err := sb.h.Challenge(ctx, challengeTask(t, x)); err != nil {
		t.Fatal(err)
	}
	pollX := sb.enq.take(t, tasks.TypePoll)
	for _, d := range []tasks.Dest{sb.a, sb.b} {
		if err := sb.h.Challenge(ctx, challengeTask(t, d)); err == nil {
			t.Fatalf("line %d challenged while x held the path", d.Line)
		}
	}
	sb.clock.Advance(50 * time.Millisecond)
	if err := sb.h.Poll(ctx, pollX); err != nil {
		t.Fatal(err)
	}
	// a takes the path with b waiting: it polls inline and validates.
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.a)); err != nil {
		t.Fatal(err)
	}
	if st := sb.state(t, sb.a); st != events.Validated {
		t.Fatalf("a after its challenge task: %q, want validated inline", st)
	}
	fallback := sb.enq.take(t, tasks.TypePoll)
	if err := sb.h.Poll(ctx, fallback); err != nil {
		t.Fatal(err)
	}
	if n := sb.api.validateCalls(); n != 2 {
		t.Fatalf("%d validate calls, want x's and a's", n)
	}
	if got := sb.waker.woken; len(got) != 2 || got[1] != tasks.ChallengeTaskID(sb.b) {
		t.Fatalf("woken %v, want a, then b", got)
	}
}

// TestRedeliveredChallengeOfAFinishedDestinationFreesItsPath: after a
// crash, asynq runs again a challenge task whose destination has finished
// since: it takes the free path, finds the destination finished before it
// asks Cloudflare for anything, and lets go, so that the path is not
// leased until the lease expires. A challenge call there would have its
// token written into the path later, on top of the next holder's: with
// claims that decode, that holder takes it for another destination's and
// polls until its deadline; without, it sends another's token.
func TestRedeliveredChallengeOfAFinishedDestinationFreesItsPath(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb := setupShared(t, worker.HandlerConfig{})
	sb.api.onChallenge = func(tg cloudflare.Target, conf string) {
		sb.api.token = claimToken(tg.Scope, tg.ID, conf, "1")
		sb.rd.put("bucket/logs/ownership-challenge-1.txt", sb.api.token, time.Now())
	}
	task := challengeTask(t, sb.a)
	if err := sb.h.Challenge(ctx, task); err != nil {
		t.Fatal(err)
	}
	if err := sb.h.Poll(ctx, sb.enq.take(t, tasks.TypePoll)); err != nil {
		t.Fatal(err)
	}
	if st := sb.state(t, sb.a); st != events.Validated {
		t.Fatalf("state %q", st)
	}
	if err := sb.h.Challenge(ctx, task); err != nil { // redelivered: superseded, ends quietly
		t.Fatal(err)
	}
	if sb.api.challenges != 1 {
		t.Fatalf("%d challenge calls, want 1: none for the redelivered task of a finished destination", sb.api.challenges)
	}
	if holder, _ := sb.leases.Holder(ctx, sharedLoc); holder != "" {
		t.Fatalf("path still leased by %q after a finished destination's challenge ran again", holder)
	}
}

// TestForeignTokenLongAfterAsksAgain: a shared path whose file holds
// another destination's token (a write that landed after this challenge's,
// such as a stray challenge of another tool) is looked at again while this
// challenge's write may still come; once that is well overdue (twice
// --poll-first with nothing learnt), the destination asks for a fresh
// challenge instead of reading until its poll deadline.
func TestForeignTokenLongAfterAsksAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb := setupShared(t, worker.HandlerConfig{PollFirst: time.Second})
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.a)); err != nil {
		t.Fatal(err)
	}
	poll := sb.enq.take(t, tasks.TypePoll)
	other := claimToken(sb.b.Scope, sb.b.ScopeID, sb.b.DestinationConf, "x")
	sb.rd.put("bucket/logs/ownership-challenge-1.txt", other, sb.clock.Now().Add(3*time.Second))
	sb.clock.Advance(1500 * time.Millisecond)
	var s *worker.SnoozeError
	if err := sb.h.Poll(ctx, poll); !errors.As(err, &s) || !strings.Contains(s.Reason, "another destination's token") {
		t.Fatalf("poll 1.5s in, another's token in the file = %v, want a snooze for it: this challenge's write may still come", err)
	}
	sb.clock.Advance(time.Second)
	if err := sb.h.Poll(ctx, poll); err != nil {
		t.Fatalf("poll 2.5s in, another's token in the file = %v, want a fresh challenge asked", err)
	}
	next := sb.enq.take(t, tasks.TypeChallenge)
	var cp tasks.ChallengePayload
	if err := tasks.Decode(next, &cp); err != nil || cp.Gen != 1 {
		t.Fatalf("fresh challenge %+v (%v), want generation 1", cp, err)
	}
	if n := sb.api.validateCalls(); n != 0 {
		t.Fatalf("%d validate calls, want none with another destination's token", n)
	}
}

// TestPollDeadlineOnReadErrors: a challenge file that cannot be read (a
// storage host that does not resolve) is bounded by the poll deadline, not
// by retries and their backoff: before it the poll snoozes without
// spending a retry and keeps the (redacted) error as the destination's
// last error; past it the destination fails.
func TestPollDeadlineOnReadErrors(t *testing.T) {
	t.Parallel()
	b := setupWith(t, worker.HandlerConfig{PollDeadline: 300 * time.Millisecond})
	const sig = "c2VjcmV0LXNhcy1zaWduYXR1cmU"
	b.dest.DestinationConf = "azure://logs/http?sv=2022-11-02&sp=rw&sig=" + sig
	ctx := context.Background()
	if err := b.h.Challenge(ctx, challengeTask(t, b.dest)); err != nil {
		t.Fatal(err)
	}
	poll := b.enq.take(t, tasks.TypePoll)
	b.rd.err = &destination.Error{Kind: destination.Transient, Op: "read",
		Err: errors.New("Get https://acct.blob.core.windows.net/logs/x?sig=" + sig + ": dial tcp: lookup acct.blob.core.windows.net: no such host")}
	var snooze *worker.SnoozeError
	if err := b.h.Poll(ctx, poll); !errors.As(err, &snooze) || snooze.Delay > time.Second+300*time.Millisecond {
		t.Fatalf("Poll of an unreadable file before the deadline = %v, want a snooze no later than the deadline", err)
	}
	last, err := b.store.LastErrors(ctx, b.dest.BatchID)
	if err != nil {
		t.Fatal(err)
	}
	le, ok := last[b.dest.Hash()]
	if !ok || !strings.Contains(le.Message, "no such host") || strings.Contains(le.Message, sig) || le.State != events.Polling {
		t.Fatalf("last error = %+v (found %t), want the redacted read error", le, ok)
	}
	b.clock.Advance(350 * time.Millisecond)
	if err := b.h.Poll(ctx, poll); err != nil {
		t.Fatalf("Poll past the deadline = %v, want the failure recorded", err)
	}
	evs := b.events(t)
	if len(evs) != 1 || evs[0].Event != events.Failed || !strings.Contains(evs[0].Error.Message, "unreadable within 300ms") ||
		!strings.Contains(evs[0].Error.Message, "no such host") || strings.Contains(evs[0].Error.Message, sig) {
		t.Fatalf("events = %+v", evs)
	}
	if last, _ := b.store.LastErrors(ctx, b.dest.BatchID); len(last) != 0 {
		t.Fatalf("last errors after the outcome = %+v, want none", last)
	}
}
