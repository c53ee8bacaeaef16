package worker

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// orphan moves a pending task to active with a lease that expires at
// leaseEnd, as asynq's dequeue script does: what a dequeue whose reply an
// outage cut off leaves behind.
func orphan(t *testing.T, rdb redis.UniversalClient, q, id string, leaseEnd time.Time) {
	t.Helper()
	ctx := context.Background()
	p := "asynq:{" + q + "}:"
	if n, err := rdb.LRem(ctx, p+"pending", 0, id).Result(); err != nil || n != 1 {
		t.Fatalf("task %s not pending: %d, %v", id, n, err)
	}
	rdb.LPush(ctx, p+"active", id)
	rdb.HSet(ctx, p+"t:"+id, "state", "active")
	rdb.ZAdd(ctx, p+"lease", redis.Z{Score: float64(leaseEnd.Unix()), Member: id})
}

// TestOrphanSweep: a task active with a lease that expired (its dequeue's
// reply was lost, or the write of its outcome) goes back to pending at the
// sweep's next look, instead of waiting for asynq's recoverer (a lease
// expired 30s before a look once a minute). A task whose lease is still
// running, or expired less than orphanSkew ago, is left to its worker; and
// the sweep gives up a task after orphanSweepMax requeues.
func TestOrphanSweep(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	ctx := context.Background()
	const q = "orphans-test"
	client := asynq.NewClientFromRedisClient(rdb)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	ids := map[string]string{}
	for _, name := range []string{"lost", "held", "late"} {
		info, err := client.EnqueueContext(ctx, asynq.NewTask("logpush:test", []byte(name)), asynq.Queue(q))
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = info.ID
	}
	now := time.Now()
	orphan(t, rdb, q, ids["lost"], now.Add(-10*time.Second))
	orphan(t, rdb, q, ids["held"], now.Add(25*time.Second))
	orphan(t, rdb, q, ids["late"], now.Add(-orphanSkew/2))
	logs := &testutil.Buffer{}
	s := newOrphanSweep(rdb, []string{q}, slog.New(slog.NewTextHandler(logs, nil)))
	if n := s.sweep(ctx, now); n != 1 {
		t.Fatalf("the sweep requeued %d tasks, want 1", n)
	}
	state := func(name string) asynq.TaskState {
		info, err := insp.GetTaskInfo(q, ids[name])
		if err != nil {
			t.Fatal(err)
		}
		return info.State
	}
	if st := state("lost"); st != asynq.TaskStatePending {
		t.Errorf("the orphaned task is %s, want pending", st)
	}
	for _, name := range []string{"held", "late"} {
		if st := state(name); st != asynq.TaskStateActive {
			t.Errorf("the %s task is %s, want active: its worker may still run it", name, st)
		}
	}
	if lease, err := rdb.ZScore(ctx, "asynq:{"+q+"}:lease", ids["lost"]).Result(); err != redis.Nil {
		t.Errorf("the requeued task keeps its lease %v (%v)", lease, err)
	}
	// asynq can take it again: the next dequeue gets it first.
	if got, err := rdb.LIndex(ctx, "asynq:{"+q+"}:pending", -1).Result(); err != nil || got != ids["lost"] {
		t.Errorf("pending's next task = %q (%v), want the requeued %s", got, err, ids["lost"])
	}
	for range orphanSweepMax - 1 {
		orphan(t, rdb, q, ids["lost"], now.Add(-10*time.Second))
		if n := s.sweep(ctx, now); n != 1 {
			t.Fatalf("the sweep requeued %d tasks, want 1", n)
		}
	}
	orphan(t, rdb, q, ids["lost"], now.Add(-10*time.Second))
	if n := s.sweep(ctx, now); n != 0 {
		t.Errorf("the sweep requeued a task %d times, want at most %d", orphanSweepMax+1, orphanSweepMax)
	}
	if st := state("lost"); st != asynq.TaskStateActive {
		t.Errorf("a task requeued %d times is %s; want it left active to asynq's recoverer", orphanSweepMax, st)
	}
	if logs.String() == "" {
		t.Error("no log line for a requeued task")
	}
}

// TestOrphanSweepAfterOutage: the end of an outage starts the sweep, which
// requeues an orphan at its next look without being asked again.
func TestOrphanSweepAfterOutage(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const q = "orphans-outage-test"
	client := asynq.NewClientFromRedisClient(rdb)
	info, err := client.EnqueueContext(ctx, asynq.NewTask("logpush:test", nil), asynq.Queue(q))
	if err != nil {
		t.Fatal(err)
	}
	orphan(t, rdb, q, info.ID, time.Now().Add(-time.Minute))
	s := newOrphanSweep(rdb, []string{q}, slog.New(slog.DiscardHandler))
	go s.run(ctx)
	w := &outageWatch{log: slog.New(slog.DiscardHandler), mask: func(s string) string { return s }, onBack: s.sweepFrom}
	clock := time.Now()
	w.now = func() time.Time { return clock }
	w.observe(errRefused)
	w.observe(nil)
	clock = clock.Add(outageBack)
	w.observe(nil)
	if w.down() {
		t.Fatal("the outage did not end")
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	// The sweep looks once a second; a hang fails by the test's timeout.
	for {
		ti, err := insp.GetTaskInfo(q, info.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ti.State == asynq.TaskStatePending {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOrphanSweepAtStart: a worker that starts takes the tasks a killed
// worker left active (their lease expired) at the sweep's first looks,
// rather than leaving them to asynq's recoverer (a lease expired 30s
// before one of its looks, once a minute), and runs them.
func TestOrphanSweepAtStart(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	ctx := context.Background()
	client := asynq.NewClientFromRedisClient(rdb)
	// A payload no handler decodes: the worker drops it once it runs it.
	info, err := client.EnqueueContext(ctx, asynq.NewTask(tasks.TypeChallenge, []byte("{")), asynq.Queue(tasks.Queue))
	if err != nil {
		t.Fatal(err)
	}
	orphan(t, rdb, tasks.Queue, info.ID, time.Now().Add(-10*time.Second))
	logs := &testutil.Buffer{}
	w, err := New(ctx, rdb, Config{Credentials: credentials.Cloudflare{APIToken: "tok"}, APIRate: "0",
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	// The sweep looks once a second; a hang fails by the test's timeout.
	for {
		if _, err := insp.GetTaskInfo(tasks.Queue, info.ID); errors.Is(err, asynq.ErrTaskNotFound) {
			break // requeued, run and dropped
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "requeued a task left without a worker") {
		t.Errorf("the orphan was not requeued by the sweep at start:\n%s", logs.String())
	}
}
