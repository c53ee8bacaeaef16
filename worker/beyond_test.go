package worker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// TestLookBeyondTheLearnt: a poll that misses after waiting longer than
// any file seen so far took looks again half the time waited later, not
// every PollInterval; within the delays seen, when the later files came;
// and no look is put past the poll deadline.
func TestLookBeyondTheLearnt(t *testing.T) {
	t.Parallel()
	b := setupWith(t, worker.HandlerConfig{PollFirst: 4 * time.Second, PollInterval: time.Second, PollDeadline: 20 * time.Second})
	ctx := context.Background()
	if err := b.h.Challenge(ctx, challengeTask(t, b.dest)); err != nil {
		t.Fatal(err)
	}
	poll := b.enq.take(t, tasks.TypePoll)
	miss := func(after time.Duration) time.Duration { return b.missAfter(t, poll, after) }
	if d := miss(6 * time.Second); d != 3*time.Second {
		t.Fatalf("after 6s, no file seen: next look in %v, want 3s (half the wait), not PollInterval", d)
	}
	b.h.Observe(10 * time.Second)
	if d := miss(3 * time.Second); d != time.Second {
		t.Fatalf("after 9s, a file seen after 10s: next look in %v, want 1s (at 10s)", d)
	}
	if d := miss(9 * time.Second); d != 3*time.Second {
		t.Fatalf("after 18s, past every file seen, deadline 20s: next look in %v, want 3s (the deadline's second)", d)
	}
}

// missAfter runs poll after the clock moved on by after, expects a miss,
// and returns the snooze's delay.
func (b *testBundle) missAfter(t *testing.T, poll *asynq.Task, after time.Duration) time.Duration {
	t.Helper()
	b.clock.Advance(after)
	var s *worker.SnoozeError
	if err := b.h.Poll(context.Background(), poll); !errors.As(err, &s) {
		t.Fatalf("Poll before the file = %v, want a snooze", err)
	}
	return s.Delay
}

// TestLookWhenLateFilesCame: a poll that missed looks next when the files
// that came later than it has waited did, priced as a first poll is: files
// seen after 5-10 s, a miss at 4 s looks again at 9 s or so (the cheapest
// of their last quarter), not after PollInterval (5, 6.5, 8.75 s: about
// 4 reads a file).
func TestLookWhenLateFilesCame(t *testing.T) {
	t.Parallel()
	b := setupWith(t, worker.HandlerConfig{PollFirst: 4 * time.Second, PollInterval: time.Second, PollDeadline: time.Minute})
	for i := range 20 {
		b.h.Observe(5*time.Second + time.Duration(i)*250*time.Millisecond)
	}
	ctx := context.Background()
	if err := b.h.Challenge(ctx, challengeTask(t, b.dest)); err != nil {
		t.Fatal(err)
	}
	poll := b.enq.take(t, tasks.TypePoll)
	d := b.missAfter(t, poll, 4*time.Second)
	if at := 4*time.Second + d; at < 8750*time.Millisecond || at > 9750*time.Millisecond {
		t.Fatalf("missed at 4s, files seen after 5-9.75s: next look at %v, want within their last quarter (8.75-9.75s)", at)
	}
}
