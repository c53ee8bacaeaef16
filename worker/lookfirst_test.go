package worker_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

const lookFile = "bucket/logs/ownership-challenge-1.txt"

// TestChallengeLooksFirst: where the file is expected at once, the
// challenge task looks for it itself: found, it validates with no poll
// task; missed, the poll task takes over, and the outcome counts both
// looks as polls.
func TestChallengeLooksFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("found", func(t *testing.T) {
		t.Parallel()
		b := setupWith(t, worker.HandlerConfig{PollFirst: -1})
		b.api.onChallenge = func(_ cloudflare.Target, _ string) { b.rd.put(lookFile, b.api.token, b.clock.Now()) }
		if err := b.h.Challenge(ctx, challengeTask(t, b.dest)); err != nil {
			t.Fatal(err)
		}
		if got := b.enq.queued(); len(got) != 0 {
			t.Fatalf("enqueued %v, want nothing: the challenge task validated", got)
		}
		wantOutcome(t, b, events.Attempts{Challenge: 1, Poll: 1, Validate: 1})
	})
	t.Run("missed", func(t *testing.T) {
		t.Parallel()
		b := setupWith(t, worker.HandlerConfig{PollFirst: -1})
		if err := b.h.Challenge(ctx, challengeTask(t, b.dest)); err != nil {
			t.Fatal(err)
		}
		if n := b.rd.reads; n != 1 {
			t.Fatalf("%d reads in the challenge task, want its one look", n)
		}
		poll := b.enq.take(t, tasks.TypePoll)
		var p tasks.PollPayload
		if err := json.Unmarshal(poll.Payload(), &p); err != nil || p.Looks != 1 {
			t.Fatalf("poll payload looks = %d (%v), want 1", p.Looks, err)
		}
		b.rd.put(lookFile, b.api.token, b.clock.Now())
		if err := b.h.Poll(ctx, poll); err != nil {
			t.Fatal(err)
		}
		wantOutcome(t, b, events.Attempts{Challenge: 1, Poll: 2, Validate: 1})
	})
}

// wantOutcome checks the one event (validated, with attempts), the state's
// poll counter and the poll attempts metric.
func wantOutcome(t *testing.T, b *testBundle, want events.Attempts) {
	t.Helper()
	evs := b.events(t)
	if len(evs) != 1 || evs[0].Event != events.Validated || evs[0].Attempts != want {
		t.Fatalf("events = %+v, want one validated with attempts %+v", evs, want)
	}
	st, err := b.store.Get(context.Background(), b.key())
	if err != nil || st.Attempts.Poll != want.Poll {
		t.Fatalf("state's poll attempts = %d (%v), want %d", st.Attempts.Poll, err, want.Poll)
	}
	var m dto.Metric
	if err := b.m.PollAttempts.Write(&m); err != nil {
		t.Fatal(err)
	}
	if sum := m.GetHistogram().GetSampleSum(); sum != float64(want.Poll) {
		t.Fatalf("poll attempts metric = %v, want %d", sum, want.Poll)
	}
}

// TestWholeSecondDatesLearntWithinTheSecond: a file found at once whose
// date is truncated to the second (S3) is learnt as appearing within the
// read, not at the end of its second: the next challenge looks for its
// file at once. Taken as most of a second late, every first poll would
// wait for that.
func TestWholeSecondDatesLearntWithinTheSecond(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	b.api.onChallenge = func(_ cloudflare.Target, _ string) {
		b.rd.put(lookFile, b.api.token, b.clock.Now().Truncate(time.Second))
	}
	// 300 ms into a second: the end of the file's second is 700 ms away.
	b.clock.Advance(time.Second - time.Duration(b.clock.Now().Nanosecond()) + 300*time.Millisecond)
	if err := b.h.Challenge(ctx, challengeTask(t, b.dest)); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(50 * time.Millisecond)
	if err := b.h.Poll(ctx, b.enq.take(t, tasks.TypePoll)); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(time.Second)
	next := b.dest
	next.ScopeID = "0123456789abcdef0123456789abcdef"
	reads := b.rd.reads
	if err := b.h.Challenge(ctx, challengeTask(t, next)); err != nil {
		t.Fatal(err)
	}
	if got := b.enq.queued(); len(got) != 0 || b.rd.reads != reads+1 {
		t.Fatalf("next challenge: %d reads, enqueued %v; want its look, and no poll task", b.rd.reads-reads, got)
	}
	if n := len(b.events(t)); n != 2 {
		t.Fatalf("%d events, want 2 validated", n)
	}
}
