package worker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/internal/location"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

// runningWaker refuses RunTask as asynq does for an active task until
// its refusals run out, then wakes.
type runningWaker struct {
	mu     sync.Mutex
	refuse int
	calls  int
	woken  chan string
}

func (w *runningWaker) RunTask(_, id string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if w.refuse > 0 {
		w.refuse--
		return errors.New("FAILED_PRECONDITION: task is already running")
	}
	w.woken <- id
	return nil
}

// TestWakeRunningWaiter: a waiter whose task was running when the location
// freed (it looked just before, or an outage left it counted active) is
// woken once its task can run, instead of sleeping out its look-in.
func TestWakeRunningWaiter(t *testing.T) {
	saved := wakeRetry
	wakeRetry.every, wakeRetry.upTo = 10*time.Millisecond, time.Minute // upTo: far above 3 retries, however slow the machine
	t.Cleanup(func() { wakeRetry = saved })
	w := &runningWaker{refuse: 3, woken: make(chan string, 1)}
	p := newPathLeases(nil, w)
	t.Cleanup(p.stop)
	if err := p.wake(context.Background(), "loc", &location.Next{Holder: "b:h", Queue: "logpush", TaskID: "ch:b:h:0"}); err != nil {
		t.Fatal(err)
	}
	w.wokeAfter3(t, "ch:b:h:0")
}

// wokeAfter3 expects id woken after 3 refusals: 4 calls in all.
func (w *runningWaker) wokeAfter3(t *testing.T, id string) {
	t.Helper()
	select {
	case got := <-w.woken:
		if got != id {
			t.Fatalf("woke %s, want %s", got, id)
		}
	case <-time.After(10 * time.Minute): // a hang
		t.Fatalf("%s was never woken", id)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.calls != 4 {
		t.Errorf("%d RunTask calls, want 4 (3 refused, then the wake)", w.calls)
	}
}

// alwaysRunning refuses every RunTask as asynq does for an active task,
// and says so on calls.
type alwaysRunning struct{ calls chan struct{} }

func (w alwaysRunning) RunTask(_, _ string) error {
	select {
	case w.calls <- struct{}{}:
	default:
	}
	return errors.New("FAILED_PRECONDITION: task is already running")
}

// TestShutdownEndsWakeRetries: the goroutine that retries the wake-up of a
// running waiter (for minutes) ends when the worker shuts down, rather than
// outliving it.
func TestShutdownEndsWakeRetries(t *testing.T) {
	saved := wakeRetry
	wakeRetry.every, wakeRetry.upTo = 5*time.Millisecond, time.Hour
	t.Cleanup(func() { wakeRetry = saved })
	rdb, _ := testutil.Mini(t)
	w, err := New(t.Context(), rdb, Config{Credentials: credentials.Cloudflare{APIToken: "tok"}, APIRate: "0"})
	if err != nil {
		t.Fatal(err)
	}
	waker := alwaysRunning{calls: make(chan struct{}, 1)}
	w.h.leases.waker = waker
	if err := w.h.leases.wake(t.Context(), "loc", &location.Next{Holder: "b:h", Queue: "logpush", TaskID: "ch:b:h:0"}); err != nil {
		t.Fatal(err)
	}
	<-waker.calls // the first refusal
	<-waker.calls // a retry: the goroutine runs
	if n := w.h.leases.pending.Load(); n != 1 {
		t.Fatalf("%d wake-ups pending before Shutdown, want 1", n)
	}
	w.Shutdown()
	if n := w.h.leases.pending.Load(); n != 0 {
		t.Errorf("%d wake-ups still running after Shutdown, want 0", n)
	}
	// A release after Shutdown starts none.
	if err := w.h.leases.wake(t.Context(), "loc", &location.Next{Holder: "b:h", Queue: "logpush", TaskID: "ch:b:h:0"}); err != nil {
		t.Fatal(err)
	}
	if n := w.h.leases.pending.Load(); n != 0 {
		t.Errorf("a wake after Shutdown started %d retries, want 0", n)
	}
}

// TestStopEndsWakesWithoutLeases: handlers that hold no path leases (no
// serialisation) still own their wake-ups, a cold worker's first polls:
// stop ends a pending one, which never runs.
func TestStopEndsWakesWithoutLeases(t *testing.T) {
	t.Parallel()
	h := newHandlers(deps{}, HandlerConfig{})
	if h.leases.held() {
		t.Fatal("handlers without location leases hold some")
	}
	ran := make(chan struct{}, 1)
	h.leases.after(time.Hour, func() { ran <- struct{}{} })
	if n := h.leases.pending.Load(); n != 1 {
		t.Fatalf("%d wake-ups pending, want 1", n)
	}
	h.stop()
	if n := h.leases.pending.Load(); n != 0 {
		t.Errorf("%d wake-ups pending after stop, want 0", n)
	}
	select {
	case <-ran:
		t.Error("a wake-up ran after stop")
	default:
	}
}

// TestWakeHeldRetriesARunningChallenge: a challenge coldHold held, which
// still counts as running when the hold ends (asynq had not rescheduled
// its snooze yet), is woken once it can be, not left to sleep out its
// snooze.
func TestWakeHeldRetriesARunningChallenge(t *testing.T) {
	t.Parallel()
	w := &runningWaker{refuse: 3, woken: make(chan string, 1)}
	h := &handlers{leases: newPathLeases(nil, w)}
	t.Cleanup(h.leases.stop)
	h.cold.mu.Lock()
	h.cold.held = []coldPoll{{queue: "logpush", id: "ch:b:h:0"}}
	h.wakeHeld(&h.cold)
	h.cold.mu.Unlock()
	w.wokeAfter3(t, "ch:b:h:0")
}
