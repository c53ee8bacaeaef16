package worker_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

func (f *fakeWaker) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.woken)
}

// TestColdFleetWakesFirstPolls: in a worker that has seen no challenge file
// yet, the first polls wait --poll-first; when the first file appears (the
// scout's, the first destination challenged), the polls scheduled cold are
// woken instead of left sleeping, and the scout's own is not (it ran).
func TestColdFleetWakesFirstPolls(t *testing.T) {
	t.Parallel()
	b := setup(t)
	waker := &fakeWaker{}
	b.h = worker.NewHandlers(worker.Deps{API: b.api, Reader: b.rd, Store: b.store, Enqueue: b.enq, Waker: waker,
		Metrics: newMetrics(t), Now: b.clock.Now}, worker.HandlerConfig{})
	ctx := context.Background()
	scout, cold := b.dest, b.dest
	cold.ScopeID = "023e105f4ecef8ad9ca31a8372d0c354"
	challengedAt := b.clock.Now()
	if err := b.h.Challenge(ctx, challengeTask(t, scout)); err != nil {
		t.Fatal(err)
	}
	scoutPoll := b.enq.take(t, tasks.TypePoll)
	if err := b.h.Challenge(ctx, challengeTask(t, cold)); err != nil {
		t.Fatal(err)
	}
	b.enq.take(t, tasks.TypePoll)
	if got := waker.ids(); len(got) != 0 {
		t.Fatalf("woken %v before any file appeared, want none", got)
	}

	// The scout's file appears a second after the challenges.
	b.clock.Advance(2 * time.Second)
	b.rd.put("bucket/logs/ownership-challenge-1.txt", b.api.token+"\n", challengedAt.Add(time.Second+time.Millisecond))
	if err := b.h.Poll(ctx, scoutPoll); err != nil {
		t.Fatal(err)
	}
	if evs := b.events(t); len(evs) != 1 || evs[0].Event != events.Validated {
		t.Fatalf("events = %+v, want the scout validated", evs)
	}
	want := tasks.PollTaskID(cold)
	for end := time.Now().Add(hangAfter); !slices.Contains(waker.ids(), want); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("woken %v, want the cold destination's first poll %s", waker.ids(), want)
		}
	}
	if got := waker.ids(); len(got) != 1 {
		t.Fatalf("woken %v, want only %s", got, want)
	}
}
