package worker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/keys"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// serve runs the handlers on a real asynq server over rdb until the test ends.
func serve(t *testing.T, rdb redis.UniversalClient, b *testBundle, guard *worker.AuthGuard) *asynq.Client {
	t.Helper()
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	h := worker.NewHandlers(worker.Deps{API: b.api, Reader: b.rd, Store: b.store, Enqueue: client, Auth: guard,
		Metrics: newMetrics(t)}, worker.HandlerConfig{})
	mux := asynq.NewServeMux()
	h.Register(mux)
	srv := worker.NewServer(rdb, worker.ServerConfig{Concurrency: 4, Backoff: worker.Backoff{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond}})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return client
}

// hangAfter is how long a test waits for an outcome before it fails as
// hung: a guard, never what is asserted (CI's machine runs many packages at
// once; time is measured in benchmarks).
const hangAfter = 10 * time.Minute

func waitEvents(t *testing.T, store *ledger.Store, n int) []events.Event {
	t.Helper()
	deadline := time.Now().Add(hangAfter)
	for time.Now().Before(deadline) {
		es, err := store.Read(context.Background(), "0", 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) >= n {
			var out []events.Event
			for _, e := range es {
				out = append(out, e.Event)
			}
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("fewer than %d events after %s", n, hangAfter)
	return nil
}

// TestRetriesExhaustedFail: a transient error on the last allowed attempt
// ends the destination with a failed event, and asynq keeps no task: none
// archived with the conf in its payload.
func TestRetriesExhaustedFail(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	b := setup(t)
	b.store = ledger.NewStore(rdb, ledger.Config{})
	b.api.challengeErr = &cloudflare.APIError{Endpoint: "ownership", HTTPStatus: 502, Kind: cloudflare.Transient, Message: "bad gateway"}
	client := serve(t, rdb, b, nil)
	task, err := tasks.NewChallengeTask(b.dest, tasks.Options{MaxRetry: 2}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(task); err != nil {
		t.Fatal(err)
	}
	evs := waitEvents(t, b.store, 1)
	if evs[0].Event != events.Failed || evs[0].Error.HTTPStatus != 502 || evs[0].Attempts.Challenge != 3 {
		t.Fatalf("event = %+v, want failed after 3 attempts", evs[0])
	}
	waitQueues(t, asynq.NewInspectorFromRedisClient(rdb), "a task is left", func(info *asynq.QueueInfo) bool {
		return info.Size == 0 && info.Archived == 0 && info.Completed == 0
	})
}

// waitQueues waits up to 10 s until done holds for every logpush queue
// (a queue that never held a task holds none), and fails with what.
func waitQueues(t *testing.T, insp *asynq.Inspector, what string, done func(*asynq.QueueInfo) bool) {
	t.Helper()
	deadline := time.Now().Add(hangAfter)
	for {
		var left []string
		infos, err := worker.QueueInfos(insp)
		for i, info := range infos {
			if info != nil && !done(info) {
				left = append(left, fmt.Sprintf("%s: %+v", tasks.Queues()[i], info))
			}
		}
		if err == nil && len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v %v", what, left, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFollowUpsBeforeChallenges: a destination under way (its poll) runs
// before challenges that were queued before it, and the tasks of a
// destination go to the queues tasks.QueueOf names.
func TestFollowUpsBeforeChallenges(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	b := setup(t)
	for i := range 5 {
		d := b.dest
		d.ScopeID = fmt.Sprintf("023e105f4ecef8ad9ca31a8372d0c35%d", i)
		task, err := tasks.NewChallengeTask(d, tasks.Options{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		info, err := client.Enqueue(task)
		if err != nil {
			t.Fatal(err)
		}
		if info.Queue != tasks.Queue {
			t.Fatalf("challenge in queue %q, want %q", info.Queue, tasks.Queue)
		}
	}
	poll, err := tasks.NewPollTask(tasks.PollPayload{Dest: b.dest}, tasks.Options{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	info, err := client.Enqueue(poll)
	if err != nil {
		t.Fatal(err)
	}
	if info.Queue != tasks.FollowUpQueue {
		t.Fatalf("poll in queue %q, want %q", info.Queue, tasks.FollowUpQueue)
	}
	var mu sync.Mutex
	var order []string
	all := make(chan struct{})
	record := func(_ context.Context, task *asynq.Task) error {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, task.Type())
		if len(order) == 6 {
			close(all)
		}
		return nil
	}
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeChallenge, record)
	mux.HandleFunc(tasks.TypePoll, record)
	srv := worker.NewServer(rdb, worker.ServerConfig{Concurrency: 1})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	select {
	case <-all:
	case <-time.After(hangAfter):
		t.Fatal("the six tasks did not all run")
	}
	mu.Lock()
	defer mu.Unlock()
	if order[0] != tasks.TypePoll {
		t.Fatalf("order = %v: the poll ran behind challenges queued before it", order)
	}
}

// TestPauseBothQueues: the guard's pause stops both queues, the follow-up
// queue even before any task went into it, and UnpauseQueues (resume)
// releases both.
func TestPauseBothQueues(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	ctx := context.Background()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	b := setup(t)
	task, err := tasks.NewChallengeTask(b.dest, tasks.Options{}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(task); err != nil {
		t.Fatal(err)
	}
	store := ledger.NewStore(rdb, ledger.Config{})
	if err := worker.PauseQueue(rdb, insp, store)(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if err := worker.PauseQueue(rdb, insp, store)(ctx, "again"); err != nil {
		t.Fatalf("a second pause: %v", err)
	}
	if p, err := worker.QueuePaused(insp); err != nil || !p {
		t.Fatalf("QueuePaused = %v, %v; want true", p, err)
	}
	// status and the web UI say what is paused, since when, and what to do.
	ps, err := worker.Pauses(ctx, rdb)
	if err != nil || !ps.Queue || ps.QueueSince.IsZero() || ps.QueueReason != "again" ||
		!strings.Contains(ps.String(), "paused (queue) since ") || !strings.Contains(ps.String(), "run 'logpush-onboard resume'") {
		t.Fatalf("Pauses = %+v %q, %v; want the queue paused with its time and reason", ps, ps.String(), err)
	}
	// The follow-up queue is paused before its first task.
	poll, err := tasks.NewPollTask(tasks.PollPayload{Dest: b.dest}, tasks.Options{}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(poll); err != nil {
		t.Fatal(err)
	}
	for _, q := range tasks.Queues() {
		if info, err := insp.GetQueueInfo(q); err != nil || !info.Paused {
			t.Fatalf("queue %s: %+v, %v; want paused", q, info, err)
		}
	}
	resumed, err := worker.UnpauseQueues(insp)
	if err != nil || !slices.Equal(resumed, tasks.Queues()) {
		t.Fatalf("UnpauseQueues = %v, %v; want %v", resumed, err, tasks.Queues())
	}
	if p, err := worker.QueuePaused(insp); err != nil || p {
		t.Fatalf("QueuePaused after resume = %v, %v", p, err)
	}
	if err := worker.ForgetQueuePause(ctx, rdb); err != nil {
		t.Fatal(err)
	}
	if ps, err := worker.Pauses(ctx, rdb); err != nil || ps.Paused() || ps.String() != "" {
		t.Fatalf("Pauses after resume = %+v, %v; want nothing", ps, err)
	}
	if resumed, err := worker.UnpauseQueues(insp); err != nil || len(resumed) != 0 {
		t.Fatalf("UnpauseQueues of queues not paused = %v, %v; want none", resumed, err)
	}
}

// TestAuthFailuresPauseQueue: a wrong token pauses the queue once (one
// pause per incident, however many 403s follow), no destination fails with
// the 403s that trip or follow the pause (nor those just before it), and
// after resume every destination runs again.
func TestAuthFailuresPauseQueue(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	b := setup(t)
	b.store = ledger.NewStore(rdb, ledger.Config{})
	b.api.challengeErr = &cloudflare.APIError{Endpoint: "ownership", HTTPStatus: 403, Codes: []int{10000}, Kind: cloudflare.Auth, Message: "Authentication error"}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	paused := make(chan string, 10)
	guard := worker.NewAuthGuard(rdb, keys.AuthFailures, 3, func(ctx context.Context, reason string) error {
		err := insp.PauseQueue(tasks.Queue)
		paused <- reason // after the pause: the test reads the queue paused once it hears
		return err
	})
	client := serve(t, rdb, b, guard)
	for i := range 5 {
		d := b.dest
		d.ScopeID = []string{"023e105f4ecef8ad9ca31a8372d0c351", "023e105f4ecef8ad9ca31a8372d0c352", "023e105f4ecef8ad9ca31a8372d0c353",
			"023e105f4ecef8ad9ca31a8372d0c354", "023e105f4ecef8ad9ca31a8372d0c355"}[i]
		task, err := tasks.NewChallengeTask(d, tasks.Options{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Enqueue(task); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case reason := <-paused:
		if reason == "" {
			t.Fatal("empty pause reason")
		}
	case <-time.After(hangAfter):
		t.Fatal("queue not paused")
	}
	info, err := insp.GetQueueInfo(tasks.Queue)
	if err != nil || !info.Paused {
		t.Fatalf("queue info = %+v, %v; want paused", info, err)
	}
	// Every running task has had its 403 and been held by now.
	deadline := time.Now().Add(hangAfter)
	for info.Active > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		info, _ = insp.GetQueueInfo(tasks.Queue)
	}
	if es, _ := b.store.Read(context.Background(), "0", 100, 0); len(es) != 0 {
		t.Fatalf("%d events while paused, want none: %v", len(es), es)
	}
	if len(paused) != 0 {
		t.Fatalf("the queue was paused %d more times in one incident", len(paused))
	}
	// Resume (as 'resume' does): every destination runs again and gets its
	// own outcome, here a permanent 400.
	b.api.mu.Lock()
	b.api.challengeErr = &cloudflare.APIError{Endpoint: "ownership", HTTPStatus: 400, Codes: []int{1001}, Kind: cloudflare.Permanent, Message: "bad"}
	b.api.mu.Unlock()
	if err := worker.ResetAuthFailures(context.Background(), rdb); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Get(context.Background(), keys.AuthFailures).Int(); n != 0 {
		t.Fatalf("count after reset = %d", n)
	}
	if err := insp.UnpauseQueue(tasks.Queue); err != nil {
		t.Fatal(err)
	}
	for _, ev := range waitEvents(t, b.store, 5) {
		if ev.Event != events.Failed || ev.Error == nil || ev.Error.HTTPStatus != 400 {
			t.Errorf("after resume: %+v, want failed with the 400 of the run after resume", ev)
		}
	}
}

// TestFailedTasksLeaveNoSecrets runs destinations whose confs carry secrets
// to each kind of failure (a permanent API error, transient errors until
// the retries run out, a permanent storage error), then scans every Redis
// key and value for each secret: a failed destination leaves no task
// payload behind, archived or otherwise.
func TestFailedTasksLeaveNoSecrets(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	b := setup(t)
	b.store = ledger.NewStore(rdb, ledger.Config{})
	client := serve(t, rdb, b, nil)
	secrets := []string{"SECRETSASSIG0001", "SECRETSASSIG0002", "SECRETSASSIG0003"}
	confs := []string{
		"azure://c/p1?sv=2022-11-02&sp=rw&sig=" + secrets[0],
		"azure://c/p2?sv=2022-11-02&sp=rw&sig=" + secrets[1],
		"azure://c/p3?sv=2022-11-02&sp=rw&sig=" + secrets[2],
	}
	phases := []func(){
		func() {
			b.api.mu.Lock()
			b.api.challengeErr = &cloudflare.APIError{Endpoint: "ownership", HTTPStatus: 400, Codes: []int{1001}, Kind: cloudflare.Permanent, Message: "bad"}
			b.api.mu.Unlock()
		},
		func() {
			b.api.mu.Lock()
			b.api.challengeErr = &cloudflare.APIError{Endpoint: "ownership", HTTPStatus: 502, Kind: cloudflare.Transient, Message: "bad gateway"}
			b.api.mu.Unlock()
		},
		func() {
			b.api.mu.Lock()
			b.api.challengeErr = nil
			b.api.mu.Unlock()
			b.rd.mu.Lock()
			b.rd.err = &destination.Error{Kind: destination.Permanent, Op: "read", Err: errors.New("access denied")}
			b.rd.mu.Unlock()
		},
	}
	for i, conf := range confs {
		phases[i]()
		d := b.dest
		d.DestinationConf = conf
		task, err := tasks.NewChallengeTask(d, tasks.Options{MaxRetry: 1}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Enqueue(task); err != nil {
			t.Fatal(err)
		}
		if evs := waitEvents(t, b.store, i+1); evs[i].Event != events.Failed {
			t.Fatalf("destination %d: event %+v, want failed", i, evs[i])
		}
	}
	waitQueues(t, asynq.NewInspectorFromRedisClient(rdb), "tasks still running", func(info *asynq.QueueInfo) bool {
		return info.Pending+info.Active+info.Scheduled+info.Retry == 0
	})
	dump := testutil.DumpRedis(t, rdb)
	if !strings.Contains(dump, `"event":"failed"`) {
		t.Fatalf("the dump lacks the failed events: the scan would prove nothing\n%s", dump)
	}
	for _, s := range secrets {
		if i := strings.Index(dump, s); i >= 0 {
			t.Errorf("secret %s at rest in Redis: ...%s...", s, dump[max(0, i-300):min(len(dump), i+50)])
		}
	}
}
