package worker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/metrics"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// scriptError is a reply of Redis's own: not an outage, so no wait for
// Redis helps.
type scriptError string

func (e scriptError) Error() string { return string(e) }
func (scriptError) RedisError()     {}

// refuseState is a go-redis hook that fails every script whose first
// argument is one of states (the ledger's scripts take the state to move to first),
// as Redis does with a script error.
type refuseState struct {
	states []string
	// first, when set, refuses only the first first scripts of states.
	first   int
	mu      sync.Mutex
	refused int
}

func (h *refuseState) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *refuseState) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *refuseState) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		if name := strings.ToLower(fmt.Sprint(args[0])); (name == "evalsha" || name == "eval") && len(args) > 3 {
			var nkeys int
			fmt.Sscan(fmt.Sprint(args[2]), &nkeys)
			if i := 3 + nkeys; i < len(args) && slices.Contains(h.states, fmt.Sprint(args[i])) && h.refuse() {
				err := scriptError("ERR user_script:1: refused by the test")
				cmd.SetErr(err)
				return err
			}
		}
		return next(ctx, cmd)
	}
}

func (h *refuseState) refuse() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.refused++
	return h.first == 0 || h.refused <= h.first
}

// secretDest is b's destination on Azure path p<n>, its SAS signature a
// secret that must never be at rest in Redis.
func secretDest(b *testBundle, n int) (tasks.Dest, string) {
	secret := fmt.Sprintf("SECRETSASSIG%04d", n)
	d := b.dest
	d.DestinationConf = fmt.Sprintf("azure://logs/p%d?sv=2022-11-02&sp=rw&sig=%s", n, secret)
	return d, secret
}

// lastAttempt enqueues task (made with err) on client, waits until its
// queue has run a task at least runs times and every queue holds none
// live, then checks that asynq kept none (archived, or completed with its
// payload) and that Redis holds no secret.
func lastAttempt(t *testing.T, rdb *redis.Client, client *asynq.Client, task *asynq.Task, err error, runs int, secret string) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(task); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	queue := tasks.QueueOf(task.Type())
	waitQueues(t, insp, "the last attempt did not end", func(info *asynq.QueueInfo) bool {
		return info.Pending+info.Active+info.Retry+info.Scheduled == 0 && (info.Queue != queue || info.Processed >= runs)
	})
	infos, err := worker.QueueInfos(insp)
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range infos {
		if info != nil && (info.Archived != 0 || info.Completed != 0 || info.Size != 0) {
			t.Fatalf("queue %+v, want no task left, none archived", info)
		}
	}
	if dump := testutil.DumpRedis(t, rdb); strings.Contains(dump, secret) {
		t.Errorf("the conf's secret is at rest in Redis")
	}
}

// TestScriptErrorOnLastRetryKeepsNoPayload: a Redis script error that no
// handler turns into an outcome (here: the move to polling after the
// challenge call) fails the destination on the task's last attempt, with
// the error named, and asynq keeps no task: none archived with the conf's
// secret in its payload.
func TestScriptErrorOnLastRetryKeepsNoPayload(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	b := setup(t)
	refusing := redis.NewClient(rdb.Options())
	t.Cleanup(func() { refusing.Close() })
	refusing.AddHook(&refuseState{states: []string{string(events.Polling)}})
	b.store = ledger.NewStore(refusing, ledger.Config{})
	client := serve(t, rdb, b, nil)
	d, secret := secretDest(b, 9)
	task, err := tasks.NewChallengeTask(d, tasks.Options{MaxRetry: 1}, 0)
	lastAttempt(t, rdb, client, task, err, 2, secret)
	evs := waitEvents(t, b.store, 1)
	if evs[0].Event != events.Failed || evs[0].Error == nil || !strings.Contains(evs[0].Error.Message, "refused by the test") {
		t.Fatalf("event = %+v (error %+v), want failed naming the script error", evs[0], evs[0].Error)
	}
}

// TestUnrecordableLastRetryIsNotArchived: when Redis refuses the failure's
// script too, the task's last attempt does not archive the task with the
// conf's secret: the task is dropped (the destination stays in flight).
func TestUnrecordableLastRetryIsNotArchived(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	b := setup(t)
	refusing := redis.NewClient(rdb.Options())
	t.Cleanup(func() { refusing.Close() })
	refusing.AddHook(&refuseState{states: []string{string(events.Polling), string(events.Failed)}})
	b.store = ledger.NewStore(refusing, ledger.Config{})
	client := serve(t, rdb, b, nil)
	d, secret := secretDest(b, 8)
	task, err := tasks.NewChallengeTask(d, tasks.Options{MaxRetry: 1}, 0)
	lastAttempt(t, rdb, client, task, err, 2, secret)
}

// TestSnoozeOnLastRetryKeepsNoPayload: a poll whose task spent its retries
// (here on a script error) and then finds no file yet cannot snooze, which
// asynq would archive with the conf: it fails the destination, recorded,
// and no task is kept.
func TestSnoozeOnLastRetryKeepsNoPayload(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	b := setup(t)
	refusing := redis.NewClient(rdb.Options())
	t.Cleanup(func() { refusing.Close() })
	refusing.AddHook(&refuseState{states: []string{string(events.Polling)}, first: 1})
	b.store = ledger.NewStore(refusing, ledger.Config{})
	client := serve(t, rdb, b, nil)
	d, secret := secretDest(b, 7)
	task, err := tasks.NewPollTask(tasks.PollPayload{Dest: d, Filename: "p7/ownership-challenge-1.txt", RequestedAt: time.Now(),
		Deadline: time.Now().Add(time.Hour)}, tasks.Options{MaxRetry: 1}, 0)
	lastAttempt(t, rdb, client, task, err, 2, secret)
	evs := waitEvents(t, b.store, 1)
	if evs[0].Event != events.Failed || evs[0].Error == nil || !strings.Contains(evs[0].Error.Message, "gave up after 1 retries") {
		t.Fatalf("event = %+v (error %+v), want failed after its retries", evs[0], evs[0].Error)
	}
}

// hangingAPI is a Cloudflare whose challenge calls hang until their
// context is done, from call number from on (earlier ones fail as
// transient); started receives each call that hangs. With release set,
// they ignore their context and hang until release is closed.
type hangingAPI struct {
	*fakeAPI
	from    int
	mu      sync.Mutex
	calls   int
	started chan int
	release chan struct{}
}

func (a *hangingAPI) Challenge(ctx context.Context, t cloudflare.Target, conf string) (cloudflare.ChallengeResult, error) {
	a.mu.Lock()
	a.calls++
	n := a.calls
	a.mu.Unlock()
	if n < a.from {
		return cloudflare.ChallengeResult{}, &cloudflare.APIError{Endpoint: "ownership", HTTPStatus: 502, Kind: cloudflare.Transient, Message: "bad gateway"}
	}
	if a.started != nil {
		a.started <- n
	}
	if a.release != nil {
		<-a.release
	} else {
		<-ctx.Done()
	}
	return cloudflare.ChallengeResult{}, ctx.Err()
}

// serveAPI starts a server like serve's, on api, and returns its client,
// the server, and the handlers' metrics.
func serveAPI(t *testing.T, rdb redis.UniversalClient, b *testBundle, api worker.API, cfg worker.ServerConfig) (*asynq.Client, *asynq.Server, *metrics.Metrics) {
	t.Helper()
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	m := newMetrics(t)
	h := worker.NewHandlers(worker.Deps{API: api, Reader: b.rd, Store: b.store, Enqueue: client, Metrics: m}, worker.HandlerConfig{})
	mux := asynq.NewServeMux()
	h.Register(mux)
	cfg.Concurrency = 4
	cfg.Backoff = worker.Backoff{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond}
	srv := worker.NewServer(rdb, cfg)
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return client, srv, m
}

// TestTimeoutOnLastAttemptKeepsNoPayload: a task whose run hits its
// timeout on its last attempt fails its destination, the timeout named,
// and asynq keeps no task: none archived with the conf's secret in its
// payload (asynq archives a task whose own deadline passes on its last
// attempt, so the run must end, and its failure be recorded, before it).
func TestTimeoutOnLastAttemptKeepsNoPayload(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	b := setup(t)
	b.store = ledger.NewStore(rdb, ledger.Config{})
	client, _, _ := serveAPI(t, rdb, b, &hangingAPI{fakeAPI: b.api}, worker.ServerConfig{})
	d, secret := secretDest(b, 5)
	task, err := tasks.NewChallengeTask(d, tasks.Options{MaxRetry: 1, Timeout: time.Second}, 0)
	lastAttempt(t, rdb, client, task, err, 2, secret)
	// The failure is recorded before the handler returns, and so before
	// asynq deletes the task.
	st, err := b.store.Get(context.Background(), ledger.Key{Batch: d.BatchID, Hash: d.Hash()})
	if err != nil {
		t.Fatal(err)
	}
	if st.State != events.Failed || st.Error == nil || !strings.Contains(st.Error.Message, "timed out (the task's timeout: 1s)") {
		t.Fatalf("state %s, error %+v: want failed, naming the timeout", st.State, st.Error)
	}
}

// TestOverrunLastAttemptFails: a last attempt whose handler ignores its
// timeout until asynq's own deadline has passed (asynq archived the task
// then, as it does whatever the handler returns) still fails its
// destination, the overrun named, rather than leaving it in flight with
// no task left to end it. The task is enqueued as by an older producer,
// whose asynq timeout holds no grace (the run gets half of it).
func TestOverrunLastAttemptFails(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	b := setup(t)
	b.store = ledger.NewStore(rdb, ledger.Config{})
	api := &hangingAPI{fakeAPI: b.api, release: make(chan struct{})}
	client, _, m := serveAPI(t, rdb, b, api, worker.ServerConfig{})
	task, err := tasks.NewChallengeTask(b.dest, tasks.Options{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(task, asynq.MaxRetry(0), asynq.Timeout(time.Second)); err != nil {
		t.Fatal(err)
	}
	waitQueues(t, asynq.NewInspectorFromRedisClient(rdb), "asynq did not end the task at its deadline", func(info *asynq.QueueInfo) bool {
		return info.Pending+info.Active+info.Retry+info.Scheduled == 0 && info.Processed >= 1
	})
	close(api.release)
	waitRuns(t, m, 1)
	st, err := b.store.Get(context.Background(), b.key())
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		t.Fatal(err)
	}
	if st.State != events.Failed || st.Error == nil || !strings.Contains(st.Error.Message, "ran on past asynq's deadline") {
		t.Fatalf("state %s, error %+v: want failed, naming the overrun", st.State, st.Error)
	}
}

// waitRuns waits until observe counted n runs of challenge tasks, which it
// does once lastAttempt is done with them.
func waitRuns(t *testing.T, m *metrics.Metrics, n float64) {
	t.Helper()
	for deadline := time.Now().Add(hangAfter); ; time.Sleep(10 * time.Millisecond) {
		var runs float64
		for _, outcome := range []string{"success", "retry", "snooze", "failed", "superseded", "dropped"} {
			runs += promtest.ToFloat64(m.Tasks.WithLabelValues(tasks.TypeChallenge, outcome))
		}
		if runs == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v runs counted after %s, want %v", runs, hangAfter, n)
		}
	}
}

// TestShutdownOnLastAttemptRequeues: a shutdown that interrupts a task's
// last attempt gives it back to its queue, as asynq does, without a retry
// counted and without failing its destination: the next worker runs it.
func TestShutdownOnLastAttemptRequeues(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	b := setup(t)
	b.store = ledger.NewStore(rdb, ledger.Config{})
	api := &hangingAPI{fakeAPI: b.api, from: 2, started: make(chan int, 1)}
	client, srv, m := serveAPI(t, rdb, b, api, worker.ServerConfig{ShutdownTimeout: 50 * time.Millisecond})
	task, err := tasks.NewChallengeTask(b.dest, tasks.Options{MaxRetry: 1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(task); err != nil {
		t.Fatal(err)
	}
	<-api.started // the last attempt hangs
	srv.Shutdown()
	waitRuns(t, m, 2)
	info, err := asynq.NewInspectorFromRedisClient(rdb).GetQueueInfo(tasks.QueueOf(tasks.TypeChallenge))
	if err != nil {
		t.Fatal(err)
	}
	if info.Pending != 1 || info.Archived != 0 {
		t.Fatalf("queue %+v, want the task pending again, none archived", info)
	}
	st, err := b.store.Get(context.Background(), b.key())
	if err != nil {
		t.Fatal(err)
	}
	if events.State.Terminal(st.State) {
		t.Fatalf("state %s, error %+v: want in flight", st.State, st.Error)
	}
}

// TestUndecodablePayloadIsDropped: a task whose payload does not decode
// names no destination to fail and no retry can decode it: it is dropped
// at once (deleted, not archived with its bytes), counted, and logged
// once without a byte of the payload.
func TestUndecodablePayloadIsDropped(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	b := setup(t)
	b.store = ledger.NewStore(rdb, ledger.Config{})
	logs := &syncBuffer{}
	m := newMetrics(t)
	h := worker.NewHandlers(worker.Deps{API: b.api, Reader: b.rd, Store: b.store, Enqueue: client, Metrics: m,
		Logger: slog.New(slog.NewTextHandler(logs, nil))}, worker.HandlerConfig{})
	mux := asynq.NewServeMux()
	h.Register(mux)
	srv := worker.NewServer(rdb, worker.ServerConfig{Concurrency: 4, Backoff: worker.Backoff{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond}})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	const secret = "SECRETSASSIG0004"
	// enqueued_at does not parse: time.Time's error quotes it.
	payload := `{"batch_id":"b1","scope":"zones","scope_id":"023e105f4ecef8ad9ca31a8372d0c353",` +
		`"destination_conf":"azure://logs/p4?sv=2022-11-02&sp=rw&sig=` + secret + `","enqueued_at":"` + secret + `"}`
	info, err := client.Enqueue(asynq.NewTask(tasks.TypeChallenge, []byte(payload)),
		asynq.Queue(tasks.QueueOf(tasks.TypeChallenge)), asynq.MaxRetry(3))
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	waitQueues(t, insp, "the task did not end", func(info *asynq.QueueInfo) bool {
		return info.Pending+info.Active+info.Retry+info.Scheduled == 0 && info.Processed >= 1
	})
	q, err := insp.GetQueueInfo(tasks.QueueOf(tasks.TypeChallenge))
	if err != nil {
		t.Fatal(err)
	}
	if q.Archived != 0 || q.Size != 0 || q.Processed != 1 {
		t.Fatalf("queue %+v, want one run, no task left, none archived", q)
	}
	if n := promtest.ToFloat64(m.Tasks.WithLabelValues(tasks.TypeChallenge, "dropped")); n != 1 {
		t.Errorf("%v runs counted dropped, want 1", n)
	}
	if dump := testutil.DumpRedis(t, rdb); strings.Contains(dump, secret) {
		t.Errorf("the payload's secret is at rest in Redis")
	}
	out := logs.String()
	if strings.Contains(out, secret) || strings.Count(out, "undecodable payload") != 1 || !strings.Contains(out, info.ID) {
		t.Errorf("log %q: want one line naming the task, without the payload", out)
	}
}

// syncBuffer is a log sink that the server's goroutines write while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
