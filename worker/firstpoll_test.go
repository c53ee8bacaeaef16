package worker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

func (f *fakeWaker) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.woken)
}

// waitWoken waits until f has run n tasks, failing the test after
// hangAfter with what it ran and why n were wanted.
func (f *fakeWaker) waitWoken(t *testing.T, n int, why string) {
	t.Helper()
	for end := time.Now().Add(hangAfter); len(f.ids()) < n; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("woken %v, want %d: %s", f.ids(), n, why)
		}
	}
}

// withWaker gives b handlers of cfg whose wake-ups go to the waker it
// returns.
func withWaker(t *testing.T, b *testBundle, cfg worker.HandlerConfig) *fakeWaker {
	t.Helper()
	waker := &fakeWaker{}
	b.h = worker.NewHandlers(worker.Deps{API: b.api, Reader: b.rd, Store: b.store, Enqueue: b.enq, Waker: waker,
		Metrics: newMetrics(t), Now: b.clock.Now}, cfg)
	return waker
}

// TestColdFleetWakesFirstPolls: in a worker that has seen no challenge file
// yet, the first polls wait --poll-first; when the first file appears (the
// scout's, the first destination challenged), the polls scheduled cold are
// woken instead of left sleeping, and the scout's own is not (it ran).
func TestColdFleetWakesFirstPolls(t *testing.T) {
	t.Parallel()
	b := setup(t)
	waker := withWaker(t, b, worker.HandlerConfig{})
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
	// Before any file appeared the worker may look at its scout
	// (TestColdScoutLooksEarly), at nothing else.
	// Each poll once: a poll due in time is also run on time (onTime).
	others := func() []string {
		ids := slices.DeleteFunc(waker.ids(), func(id string) bool { return id == tasks.PollTaskID(scout) })
		slices.Sort(ids)
		return slices.Compact(ids)
	}
	if got := others(); len(got) != 0 {
		t.Fatalf("woken %v before any file appeared, want none but the scout", got)
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
	if got := others(); len(got) != 1 {
		t.Fatalf("woken %v, want only %s (and the scout's)", got, want)
	}
	if ds, err := b.store.Appearances(ctx); err != nil || len(ds) != 1 {
		t.Fatalf("the fleet's appearance delays = %v (%v), want the scout's", ds, err)
	}
}

// TestColdWorkerWarmsFromTheFleet: asynq may run a cold worker's scout's
// poll on another worker, which then sees the file, not this one. The cold
// worker learns the delays the fleet shared at its scout's next look, and
// its first polls are run by them rather than left to --poll-first.
func TestColdWorkerWarmsFromTheFleet(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// --poll-first beyond onTimeMax: nothing runs the cold poll but what
	// is learnt.
	waker := withWaker(t, b, worker.HandlerConfig{PollFirst: time.Minute, PollInterval: 400 * time.Millisecond})
	ctx := context.Background()
	// Another worker saw a file appear a second after its challenge.
	if err := b.store.ShareAppearance(ctx, time.Second); err != nil {
		t.Fatal(err)
	}
	scout, cold := b.dest, b.dest
	cold.ScopeID = "023e105f4ecef8ad9ca31a8372d0c354"
	for _, d := range []tasks.Dest{scout, cold} {
		if err := b.h.Challenge(ctx, challengeTask(t, d)); err != nil {
			t.Fatal(err)
		}
		b.enq.take(t, tasks.TypePoll)
	}
	want := tasks.PollTaskID(cold)
	for end := time.Now().Add(hangAfter); !slices.Contains(waker.ids(), want); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("woken %v, want the cold destination's first poll %s", waker.ids(), want)
		}
	}
}

// TestColdScoutLooksEarly: asynq schedules in whole seconds, so a cold
// worker runs its scout's poll itself a quarter PollInterval after the
// challenge, and every quarter PollInterval after that, rather than a
// second later; a bounded number of times in all.
func TestColdScoutLooksEarly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	waker := withWaker(t, b, worker.HandlerConfig{PollInterval: 40 * time.Millisecond})
	ctx := context.Background()
	scout := b.dest
	if err := b.h.Challenge(ctx, challengeTask(t, scout)); err != nil {
		t.Fatal(err)
	}
	poll := b.enq.take(t, tasks.TypePoll)
	waker.waitWoken(t, 1, "the scout's poll looked at")
	// It looks again and again, until the looks are spent: 16 in all.
	for range 20 {
		b.clock.Advance(10 * time.Millisecond)
		var s *worker.SnoozeError
		if err := b.h.Poll(ctx, poll); !errors.As(err, &s) {
			t.Fatalf("poll before the file = %v, want a snooze", err)
		}
	}
	waker.waitWoken(t, 16, "the scout's poll looked at until the looks were spent")
	for _, id := range waker.ids() {
		if id != tasks.PollTaskID(scout) {
			t.Fatalf("woken %s, want only the scout's poll", id)
		}
	}
	if n := len(waker.ids()); n != 16 {
		t.Fatalf("the scout's poll was looked at %d times, want 16", n)
	}
}

// TestPollsOnTime: asynq runs a task due at 12.9 s at about 12.0 s, so a
// first poll, and a poll after a miss, due a quarter second or more away
// is run by the worker itself when due, and asynq is given a delay that
// never runs it early.
func TestPollsOnTime(t *testing.T) {
	t.Parallel()
	b := setup(t)
	waker := withWaker(t, b, worker.HandlerConfig{PollFirst: 600 * time.Millisecond, PollInterval: 600 * time.Millisecond})
	ctx := context.Background()
	if err := b.h.Challenge(ctx, challengeTask(t, b.dest)); err != nil {
		t.Fatal(err)
	}
	poll := b.enq.take(t, tasks.TypePoll)
	id := tasks.PollTaskID(b.dest)
	waker.waitWoken(t, 1, "the first poll run on time")
	b.clock.Advance(600 * time.Millisecond)
	var s *worker.SnoozeError
	err := b.h.Poll(ctx, poll)
	if !errors.As(err, &s) || !s.OnTime || s.Delay != 600*time.Millisecond {
		t.Fatalf("poll before the file = %#v, want a snooze of 600ms run on time", err)
	}
	waker.waitWoken(t, 2, "the poll after the miss run on time too")
	for _, got := range waker.ids() {
		if got != id {
			t.Fatalf("woken %v, want only %s", waker.ids(), id)
		}
	}
	start := time.Now()
	d := worker.Backoff{}.WithDefaults().Delay(0, err)
	if at := start.Add(d); at.Truncate(time.Second).Before(start.Add(s.Delay)) || d > s.Delay+time.Second+time.Millisecond {
		t.Fatalf("asynq's delay for the snooze = %s: due in its second %s, want the second after %s", d, at.Truncate(time.Second), start.Add(s.Delay))
	}
}

// TestNotEarly: the delay NotEarly gives asynq puts a task in the second
// after it is due (asynq runs a task once its second has begun), and no
// later.
func TestNotEarly(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{0, time.Millisecond, 250 * time.Millisecond, 999 * time.Millisecond, time.Second, 1100 * time.Millisecond, 4 * time.Second} {
		start := time.Now()
		n := worker.NotEarly(d)
		if at := start.Add(n).Truncate(time.Second); at.Before(start.Add(d)) || n > d+time.Second+time.Millisecond {
			t.Errorf("NotEarly(%s) = %s: runs from %s, want from the second after %s, at most a second later", d, n, at, start.Add(d))
		}
	}
}

// TestSlowFilesWakeNoColdPoll: when the first file seen took longer than
// --poll-first, a first poll scheduled cold that read in vain at
// --poll-first is not woken for what was learnt: its own snooze, after its
// miss, stands.
func TestSlowFilesWakeNoColdPoll(t *testing.T) {
	t.Parallel()
	b := setup(t)
	waker := withWaker(t, b, worker.HandlerConfig{PollFirst: 800 * time.Millisecond, PollInterval: 200 * time.Millisecond})
	ctx := context.Background()
	scout, cold := b.dest, b.dest
	cold.ScopeID = standingID
	challengedAt := b.clock.Now()
	if err := b.h.Challenge(ctx, challengeTask(t, scout)); err != nil {
		t.Fatal(err)
	}
	scoutPoll := b.enq.take(t, tasks.TypePoll)
	b.clock.Advance(300 * time.Millisecond)
	if err := b.h.Challenge(ctx, challengeTask(t, cold)); err != nil {
		t.Fatal(err)
	}
	coldPoll := b.enq.take(t, tasks.TypePoll)
	// The cold poll looks at --poll-first, in vain.
	b.clock.Advance(800 * time.Millisecond)
	reads := b.rd.reads
	var s *worker.SnoozeError
	if err := b.h.Poll(ctx, coldPoll); !errors.As(err, &s) || b.rd.reads != reads+1 {
		t.Fatalf("the cold poll at --poll-first = %v after %d reads, want a miss", err, b.rd.reads-reads)
	}
	// The scout's file appears after a second, longer than --poll-first.
	b.clock.Advance(50 * time.Millisecond)
	b.rd.put("bucket/logs/ownership-challenge-1.txt", b.api.token+"\n", challengedAt.Add(time.Second))
	before := len(waker.ids())
	if err := b.h.Poll(ctx, scoutPoll); err != nil {
		t.Fatal(err)
	}
	if evs := b.events(t); len(evs) != 1 || evs[0].Event != events.Validated {
		t.Fatalf("events = %+v, want the scout validated", evs)
	}
	// Woken at most once: when its snooze ends (onTime), never for the
	// scout's file.
	time.Sleep(1500 * time.Millisecond)
	n := 0
	for _, id := range waker.ids()[before:] {
		if id == tasks.PollTaskID(cold) {
			n++
		}
	}
	if n > 1 {
		t.Fatalf("the cold destination's poll woken %d times, want once at most", n)
	}
}

// TestStoodColdPollWokenWhenLearnt: a first poll scheduled cold that stood
// for the scout's miss at --poll-first (no read) is woken when the
// scout's file, later than --poll-first, says its own should be there:
// where a batch was challenged at once and the scout's file came after
// --poll-first, every first poll looked 1.5 s after its file was due.
func TestStoodColdPollWokenWhenLearnt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	// Slow enough that no snooze here is run on time (onTime): a wake is
	// the warm-up's.
	waker := withWaker(t, b, worker.HandlerConfig{PollFirst: 20 * time.Second, PollInterval: 4 * time.Second})
	scout, cold := b.dest, b.dest
	cold.ScopeID = standingID
	challengedAt := b.clock.Now()
	scoutPoll, coldPoll := b.challengeBoth(t, scout, cold)
	b.missAfter(t, scoutPoll, 10*time.Second)
	b.missAfter(t, scoutPoll, 10*time.Second)
	reads := b.rd.reads
	if d := b.missAfter(t, coldPoll, 0); b.rd.reads != reads || d <= 10*time.Second {
		t.Fatalf("the cold poll at --poll-first: a snooze of %s after %d reads, want one past onTime's reach without a read: it stands for the scout's miss",
			d, b.rd.reads-reads)
	}
	before := len(waker.ids())
	b.clock.Advance(3 * time.Second)
	b.rd.put("bucket/logs/ownership-challenge-1.txt", b.api.token+"\n", challengedAt.Add(21*time.Second))
	if err := b.h.Poll(ctx, scoutPoll); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(waker.ids()[before:], tasks.PollTaskID(cold)) {
		if time.Now().After(deadline) {
			t.Fatalf("the stood cold poll was not woken once the scout's file was seen: woken %v", waker.ids()[before:])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSampledColdPollReads: a quarter of the cold first polls (by their
// destination's hash) read rather than stand for the scout's miss.
func TestSampledColdPollReads(t *testing.T) {
	t.Parallel()
	b, scout, cold := coldPair(t)
	cold.ScopeID = sampledID
	scoutPoll, coldPoll := b.challengeBoth(t, scout, cold)
	b.missAfter(t, scoutPoll, time.Second)
	b.missAfter(t, scoutPoll, time.Second)
	reads := b.rd.reads
	b.missAfter(t, coldPoll, 0)
	if b.rd.reads != reads+1 {
		t.Fatalf("the sampled cold poll read %d times, want 1", b.rd.reads-reads)
	}
}

// TestScoutSlowerThanPollFirst: a cold worker's scout looks every
// PollInterval while its file could still come within --poll-first; past
// that it looks like any poll, rather than every PollInterval for as long
// as a slow file takes.
func TestScoutSlowerThanPollFirst(t *testing.T) {
	t.Parallel()
	b := setup(t)
	withWaker(t, b, worker.HandlerConfig{PollFirst: 2 * time.Second, PollInterval: 200 * time.Millisecond})
	ctx := context.Background()
	if err := b.h.Challenge(ctx, challengeTask(t, b.dest)); err != nil {
		t.Fatal(err)
	}
	scoutPoll := b.enq.take(t, tasks.TypePoll)
	miss := func(after time.Duration) time.Duration { return b.missAfter(t, scoutPoll, after) }
	if d := miss(time.Second); d != 200*time.Millisecond {
		t.Fatalf("the scout after 1s: next look in %v, want PollInterval", d)
	}
	if d := miss(1500 * time.Millisecond); d != 1250*time.Millisecond {
		t.Fatalf("the scout after 2.5s, past --poll-first: next look in %v, want half the wait, 1.25s", d)
	}
}

// TestEarlyRunDropsItsOnTime: a poll run before the time onTime set for it
// (as a scout's look or a cold wake does) and snoozed again is run at its
// new time only, not also at the one set before.
func TestEarlyRunDropsItsOnTime(t *testing.T) {
	t.Parallel()
	b := setup(t)
	waker := withWaker(t, b, worker.HandlerConfig{PollFirst: 600 * time.Millisecond, PollInterval: 600 * time.Millisecond})
	ctx := context.Background()
	if err := b.h.Challenge(ctx, challengeTask(t, b.dest)); err != nil {
		t.Fatal(err)
	}
	poll := b.enq.take(t, tasks.TypePoll)
	// Run early, 300 ms in: a miss, snoozed 600 ms more.
	b.clock.Advance(300 * time.Millisecond)
	var s *worker.SnoozeError
	if err := b.h.Poll(ctx, poll); !errors.As(err, &s) || !s.OnTime {
		t.Fatalf("poll before the file = %#v, want a snooze run on time", err)
	}
	time.Sleep(1500 * time.Millisecond)
	if ids := waker.ids(); len(ids) > 1 {
		t.Fatalf("woken %v, want the poll once at most: at its new time, not also at the first", ids)
	}
}

// TestColdFirstPollTakesTheScoutsMiss: in a cold worker, a first poll due
// when the scout, challenged as early, has already missed its own file at
// that age does not read (files come later than --poll-first: it would
// miss too); it looks again on the miss schedule, two scout looks after
// the scout's own look at that age, and that look reads.
func TestColdFirstPollTakesTheScoutsMiss(t *testing.T) {
	t.Parallel()
	b, scout, cold := coldPair(t)
	scoutPoll, coldPoll := b.challengeBoth(t, scout, cold)
	b.missAfter(t, scoutPoll, time.Second)
	b.missAfter(t, scoutPoll, time.Second)
	before := b.rd.reads
	if d := b.missAfter(t, coldPoll, 0); d != 1200*time.Millisecond {
		t.Fatalf("the cold first poll at 2s, the scout missed at 2s: next look in %v, want 1.2s (half the wait, then two scout looks: after the scout's own)", d)
	}
	if n := b.rd.reads - before; n != 0 {
		t.Fatalf("the cold first poll read %d times, want none: the scout's miss at its age stands for it", n)
	}
	b.missAfter(t, coldPoll, time.Second)
	if n := b.rd.reads - before; n != 1 {
		t.Fatalf("the cold destination's second look read %d times, want 1", n)
	}
}

// TestFirstPollLearntLaterWaits: a first poll scheduled cold, at
// --poll-first, when the files seen since its challenge came later than
// that, looks when they did instead, without a read now.
func TestFirstPollLearntLaterWaits(t *testing.T) {
	t.Parallel()
	b, scout, cold := coldPair(t)
	coldPoll := b.scoutFileAfter3s(t, scout, cold)
	// The cold one's first poll is due at --poll-first, 3.5 s in.
	before := b.rd.reads
	b.clock.Advance(400 * time.Millisecond)
	var s *worker.SnoozeError
	if err := b.h.Poll(context.Background(), coldPoll); !errors.As(err, &s) || s.Delay < 900*time.Millisecond || s.Delay > 1100*time.Millisecond {
		t.Fatalf("the cold first poll after 2s, a file seen after 3s = %v, want a snooze of about 1s", err)
	}
	if n := b.rd.reads - before; n != 0 {
		t.Fatalf("the cold first poll read %d times, want none", n)
	}
}

// scoutFileAfter3s challenges scout, and cold 1.5 s later, then polls the
// scout 3.1 s in, when its file has appeared 3 s after its challenge (past
// --poll-first): the worker learns that delay. It returns cold's poll task.
func (b *testBundle) scoutFileAfter3s(t *testing.T, scout, cold tasks.Dest) (coldPoll *asynq.Task) {
	t.Helper()
	ctx := context.Background()
	challengedAt := b.clock.Now()
	if err := b.h.Challenge(ctx, challengeTask(t, scout)); err != nil {
		t.Fatal(err)
	}
	scoutPoll := b.enq.take(t, tasks.TypePoll)
	b.clock.Advance(1500 * time.Millisecond)
	if err := b.h.Challenge(ctx, challengeTask(t, cold)); err != nil {
		t.Fatal(err)
	}
	coldPoll = b.enq.take(t, tasks.TypePoll)
	b.clock.Advance(1600 * time.Millisecond)
	b.rd.put("bucket/logs/ownership-challenge-1.txt", b.api.token+"\n", challengedAt.Add(3*time.Second))
	if err := b.h.Poll(ctx, scoutPoll); err != nil {
		t.Fatal(err)
	}
	return coldPoll
}

// coldPair gives a bundle of a cold worker (--poll-first 2s,
// --poll-interval 400ms) with a waker, and two destinations of one path:
// the first challenged is the scout.
func coldPair(t *testing.T) (b *testBundle, scout, cold tasks.Dest) {
	t.Helper()
	b = setup(t)
	withWaker(t, b, worker.HandlerConfig{PollFirst: 2 * time.Second, PollInterval: 400 * time.Millisecond})
	scout, cold = b.dest, b.dest
	cold.ScopeID = standingID
	return b, scout, cold
}

// standingID and sampledID are zones whose destination (b.dest's conf)
// hashes out of and into the quarter of cold first polls that read rather
// than stand for the scout's miss (sampled).
const (
	standingID = "023e105f4ecef8ad9ca31a8372d0c355"
	sampledID  = "023e105f4ecef8ad9ca31a8372d0c354"
)

// challengeBoth challenges x, then y, and returns their poll tasks.
func (b *testBundle) challengeBoth(t *testing.T, x, y tasks.Dest) (px, py *asynq.Task) {
	t.Helper()
	var ps []*asynq.Task
	for _, d := range []tasks.Dest{x, y} {
		if err := b.h.Challenge(context.Background(), challengeTask(t, d)); err != nil {
			t.Fatal(err)
		}
		ps = append(ps, b.enq.take(t, tasks.TypePoll))
	}
	return ps[0], ps[1]
}

// TestContendedFirstPollReads: on a path others wait for, a first look is
// never put off, even where the files learnt since the challenge came
// later: the poll task knows the path was busy from its challenge, before
// any renewal of its lease says so.
func TestContendedFirstPollReads(t *testing.T) {
	t.Parallel()
	b, scout, cold := coldPair(t)
	var pp tasks.PollPayload
	if err := tasks.Decode(b.scoutFileAfter3s(t, scout, cold), &pp); err != nil {
		t.Fatal(err)
	}
	pp.Contended = true
	coldPoll, err := tasks.NewPollTask(pp, tasks.Options{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	before := b.rd.reads
	b.clock.Advance(400 * time.Millisecond)
	b.h.Poll(context.Background(), coldPoll)
	if n := b.rd.reads - before; n != 1 {
		t.Fatalf("the contended first poll read %d times, want 1: others wait for the path", n)
	}
}

// TestColdWorkerHoldsChallengesForItsScout: in a worker that has seen no
// file yet, a challenge made before the scout missed its file at 1.5 s
// (half as long again as --poll-interval) goes at once (files may be
// fast: a small tenant's rows would wait). Once the scout has missed at
// 2 s, the next challenge, on a path of its own, snoozes before its budget
// turn: no read, no call. Once the scout has missed at 3 s (three quarters
// of --poll-first), the held challenge is woken, and goes without the read
// before it: the scout's misses, on the store's measured clock, date its
// file.
func TestColdWorkerHoldsChallengesForItsScout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb := setupShared(t, worker.HandlerConfig{PollFirst: 4 * time.Second, PollInterval: time.Second})
	sb.api.noFilename = true
	sb.measureClock(t)
	scout, early, held := sb.a, sb.b, sb.b
	early.DestinationConf = "s3://bucket/early?region=us-east-1"
	held.ScopeID = "023e105f4ecef8ad9ca31a8372d0c354"
	held.DestinationConf = "s3://bucket/held?region=us-east-1"
	if err := sb.h.Challenge(ctx, challengeTask(t, scout)); err != nil {
		t.Fatal(err)
	}
	scoutPoll := sb.enq.take(t, tasks.TypePoll)
	if err := sb.h.Challenge(ctx, challengeTask(t, early)); err != nil {
		t.Fatalf("a challenge before the scout missed = %v, want it made", err)
	}
	sb.enq.take(t, tasks.TypePoll)
	var s *worker.SnoozeError
	missAt := func() {
		t.Helper()
		sb.clock.Advance(time.Second)
		if err := sb.h.Poll(ctx, scoutPoll); !errors.As(err, &s) {
			t.Fatalf("the scout's poll before its file = %v, want a snooze", err)
		}
	}
	missAt() // 1 s
	missAt() // 2 s
	reads, calls := sb.rd.reads, sb.api.challenges
	if err := sb.h.Challenge(ctx, challengeTask(t, held)); !errors.As(err, &s) || !strings.Contains(s.Reason, "scout") {
		t.Fatalf("a challenge after the scout missed at 2 s = %v, want a snooze for the scout", err)
	}
	if sb.rd.reads != reads || sb.api.challenges != calls {
		t.Fatalf("the held challenge read %d times and called %d times, want neither", sb.rd.reads-reads, sb.api.challenges-calls)
	}
	woken := func() bool {
		sb.waker.mu.Lock()
		defer sb.waker.mu.Unlock()
		return slices.Contains(sb.waker.woken, tasks.ChallengeTaskID(held))
	}
	if woken() {
		t.Fatal("the held challenge was woken before the scout missed at 3 s")
	}
	missAt() // 3 s
	for end := time.Now().Add(10 * time.Second); !woken(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the held challenge was not woken after the scout missed at 3 s")
		}
	}
	reads = sb.rd.reads
	if err := sb.h.Challenge(ctx, challengeTask(t, held)); err != nil {
		t.Fatalf("the held challenge, woken: %v", err)
	}
	if sb.rd.reads != reads || sb.api.challenges != calls+1 {
		t.Fatalf("the woken challenge read %d times and called %d times, want no read and one call", sb.rd.reads-reads, sb.api.challenges-calls)
	}
}

// TestStoodPollLooksWhenLearnt: a cold first poll that stood for the
// scout's miss (no read), run again once the scout's file was seen later
// than it has waited, looks when the files learnt say, without a read now:
// it has not read since its challenge.
func TestStoodPollLooksWhenLearnt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, scout, cold := coldPair(t)
	challengedAt := b.clock.Now()
	if err := b.h.Challenge(ctx, challengeTask(t, scout)); err != nil {
		t.Fatal(err)
	}
	scoutPoll := b.enq.take(t, tasks.TypePoll)
	var s *worker.SnoozeError
	scoutMisses := func(n int) {
		t.Helper()
		for range n {
			b.clock.Advance(400 * time.Millisecond)
			if err := b.h.Poll(ctx, scoutPoll); !errors.As(err, &s) {
				t.Fatalf("the scout's poll before its file = %v, want a snooze", err)
			}
		}
	}
	scoutMisses(3) // until 1.2 s
	if err := b.h.Challenge(ctx, challengeTask(t, cold)); err != nil {
		t.Fatal(err)
	}
	coldPoll := b.enq.take(t, tasks.TypePoll)
	scoutMisses(2) // until 2 s
	reads := b.rd.reads
	if err := b.h.Poll(ctx, coldPoll); !errors.As(err, &s) || b.rd.reads != reads {
		t.Fatalf("the cold first poll 0.8 s in = %v after %d reads, want a snooze without a read: it stands for the scout's miss", err, b.rd.reads-reads)
	}
	b.clock.Advance(1100 * time.Millisecond)
	b.rd.put("bucket/logs/ownership-challenge-1.txt", b.api.token+"\n", challengedAt.Add(3*time.Second))
	if err := b.h.Poll(ctx, scoutPoll); err != nil {
		t.Fatal(err)
	}
	reads = b.rd.reads
	// A file seen after 3 s: the cold one, 1.9 s in, looks 1.1 s on.
	if err := b.h.Poll(ctx, coldPoll); !errors.As(err, &s) || s.Delay < time.Second || s.Delay > 1200*time.Millisecond || b.rd.reads != reads {
		t.Fatalf("the stood poll, a file seen after 3 s = %v after %d reads, want a snooze of about 1.1s without a read", err, b.rd.reads-reads)
	}
}

// TestColdPollStandsTwice: a cold first poll stands for the scout's misses
// twice (no read: the scout missed its own file when it had waited as
// long, to within three of its looks), and reads at its third look, so
// that a scout whose file never comes holds it up by two looks only.
func TestColdPollStandsTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, scout, cold := coldPair(t)
	t0 := b.clock.Now()
	scoutPoll, coldPoll := b.challengeBoth(t, scout, cold)
	var s *worker.SnoozeError
	look := func(poll *asynq.Task, what string, wantReads int) {
		t.Helper()
		reads := b.rd.reads
		if err := b.h.Poll(ctx, poll); !errors.As(err, &s) || b.rd.reads-reads != wantReads {
			t.Fatalf("%s = %v after %d reads, want a snooze after %d", what, err, b.rd.reads-reads, wantReads)
		}
	}
	for _, at := range []time.Duration{2 * time.Second, 3 * time.Second, 4500 * time.Millisecond} {
		b.clock.Advance(at - b.clock.Now().Sub(t0))
		look(scoutPoll, fmt.Sprintf("the scout's look at %s", at), 1)
		b.clock.Advance(250 * time.Millisecond) // asynq's lateness, and notYet's two scout looks
		want := 0
		if at > 3*time.Second {
			want = 1
		}
		look(coldPoll, fmt.Sprintf("the cold poll at %s", at), want)
	}
}

// TestScoutLooksGrowWithItsWait: a scout looks every quarter of
// --poll-interval while young, then a quarter of its wait on: its looks
// reach files after 5-10 s (a look every 250 ms spent them all by 4 s, and
// the scout then waited out a long backoff), and learn a delay to within a
// quarter of it.
func TestScoutLooksGrowWithItsWait(t *testing.T) {
	t.Parallel()
	b := setup(t)
	withWaker(t, b, worker.HandlerConfig{PollInterval: time.Second})
	for waited, want := range map[time.Duration]time.Duration{0: 250 * time.Millisecond, time.Second: 250 * time.Millisecond,
		4 * time.Second: time.Second, 8 * time.Second: 2 * time.Second} {
		if got := b.h.ScoutGap(waited); got != want {
			t.Errorf("scout gap after %s = %s, want %s", waited, got, want)
		}
	}
	var at time.Duration
	for range worker.ScoutLooks {
		at += b.h.ScoutGap(at)
	}
	if at < 10*time.Second {
		t.Fatalf("the scout's %d looks end at %s, want past 10 s", worker.ScoutLooks, at)
	}
}

// TestColdPollAsksTheFleetBeforeStanding: a cold first poll that would
// stand for its worker's scout's miss reads where the fleet has seen a
// file since: another worker's warm-up woke it, and standing held it a
// second and a half past its file.
func TestColdPollAsksTheFleetBeforeStanding(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, scout, cold := coldPair(t)
	t0 := b.clock.Now()
	scoutPoll, coldPoll := b.challengeBoth(t, scout, cold)
	b.missAfter(t, scoutPoll, time.Second)
	// Another worker's file had appeared by 1.1 s.
	if err := b.store.ShareAppearance(ctx, 1100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	b.rd.put("bucket/logs/ownership-challenge-1.txt", b.api.token+"\n", t0.Add(1050*time.Millisecond))
	b.clock.Advance(150 * time.Millisecond)
	reads := b.rd.reads
	if err := b.h.Poll(ctx, coldPoll); err != nil {
		t.Fatalf("the cold first poll at 1.15 s, the scout's miss at 1 s, the fleet's file by 1.1 s, its own there = %v after %d reads, want it validated",
			err, b.rd.reads-reads)
	}
}
