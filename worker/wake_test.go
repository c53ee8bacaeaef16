package worker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/location"
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
	h := &Handlers{waker: w}
	if err := h.wake(context.Background(), "loc", &location.Next{Holder: "b:h", Queue: "logpush", TaskID: "ch:b:h:0"}); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-w.woken:
		if id != "ch:b:h:0" {
			t.Fatalf("woke %s", id)
		}
	case <-time.After(10 * time.Minute): // a hang
		t.Fatal("the running waiter was never woken")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.calls != 4 {
		t.Errorf("%d RunTask calls, want 4 (3 refused, then the wake)", w.calls)
	}
}
