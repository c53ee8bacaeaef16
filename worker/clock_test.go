package worker_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// filesAfter is a worker that has seen 8 challenge files appear d after
// their challenge, with its clock at 100 ms into a second (S3 dates files
// to the second, so where a request falls within its second matters).
func filesAfter(t *testing.T, d time.Duration) *sharedBundle {
	t.Helper()
	return filesAfterBudget(t, d, nil)
}

// filesAfterBudget is filesAfter with the API budget bud.
func filesAfterBudget(t *testing.T, d time.Duration, bud worker.Budget) *sharedBundle {
	t.Helper()
	sb := setupSharedBudget(t, worker.HandlerConfig{}, bud)
	sb.api.noFilename = true
	sb.clock.mu.Lock()
	sb.clock.now = sb.clock.now.Truncate(time.Second).Add(100 * time.Millisecond)
	sb.clock.mu.Unlock()
	for range 8 {
		sb.h.Observe(d)
	}
	return sb
}

// measureClock makes the store tell its clock: two responses, dated to
// the second, received 10 ms either side of a second's start on a clock
// that is this host's. Together they bound it to +-10 ms.
func (sb *sharedBundle) measureClock(t *testing.T) {
	t.Helper()
	sec := sb.clock.Now().Truncate(time.Second)
	at := func(date time.Time, local time.Duration) destination.ClockSample {
		return destination.ClockSample{Date: date, Sent: sec.Add(local), Received: sec.Add(local), Resolution: time.Second}
	}
	sb.rd.clock = []destination.ClockSample{at(sec.Add(-time.Second), -10*time.Millisecond), at(sec, 10*time.Millisecond)}
	if err := sb.h.ReadAt(context.Background(), sharedConf, "elsewhere.txt"); err == nil {
		t.Fatal("read of nothing found something")
	}
	sb.rd.reads = 0
}

// onboard challenges sb.a and polls once after its file appears, d after
// the request; it returns the reads made before the challenge.
func (sb *sharedBundle) onboard(t *testing.T, d time.Duration) (before int) {
	t.Helper()
	ctx := context.Background()
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.a)); err != nil {
		t.Fatal(err)
	}
	before = sb.rd.reads
	requested := sb.clock.Now()
	poll := sb.enq.take(t, tasks.TypePoll)
	sb.api.token = lateToken
	sb.rd.put(lateFile, lateToken, requested.Add(d).Truncate(time.Second))
	sb.clock.Advance(d + time.Second)
	if err := sb.h.Poll(ctx, poll); err != nil {
		t.Fatal(err)
	}
	if st := sb.state(t, sb.a); st != events.Validated || !slices.Equal(sb.api.validations, []string{lateToken}) {
		t.Fatalf("state %s, validate calls %q; want validated with the challenge's token", st, sb.api.validations)
	}
	return before
}

// TestMeasuredClockSkipsTheReadBefore: files that come 1.8 s after their
// challenge need the read before it while the storage's clock is only
// assumed (ClockSkew, 1 s either way); once the storage's responses have
// measured it, the file's date tells alone.
func TestMeasuredClockSkipsTheReadBefore(t *testing.T) {
	t.Parallel()
	const d = 1800 * time.Millisecond
	t.Run("assumed", func(t *testing.T) {
		sb := filesAfter(t, d)
		if n := sb.onboard(t, d); n != 1 {
			t.Fatalf("%d reads before the challenge, want 1: the clock is not measured", n)
		}
	})
	t.Run("measured", func(t *testing.T) {
		sb := filesAfter(t, d)
		sb.measureClock(t)
		if n := sb.onboard(t, d); n != 0 || sb.rd.reads != 1 || sb.slept != 0 {
			t.Fatalf("%d reads before the challenge, %d in all, slept %s; want 0, 1 and none", n, sb.rd.reads, sb.slept)
		}
	})
}

// TestMeasuredClockWaitsForItsSecond: files that come 1 s after their
// challenge are dated the next second only when the request falls late
// enough in its own: at 100 ms into a second the challenge waits (with no
// budget, up to a second) rather than read first, and its file, dated the
// next second, is taken.
func TestMeasuredClockWaitsForItsSecond(t *testing.T) {
	t.Parallel()
	const d = time.Second
	sb := measuredFilesAfter(t, d)
	if n := sb.onboard(t, d); n != 0 || sb.slept <= 0 || sb.slept >= time.Second {
		t.Fatalf("%d reads before the challenge after sleeping %s; want none, after less than a second", n, sb.slept)
	}
}

// TestMeasuredClockRefusesAnEarlierFile: with the clock measured and the
// read skipped, a file written 50 ms before the request (another tool's
// challenge) is dated the request's second and is not taken: no validate
// call carries its token.
func TestMeasuredClockRefusesAnEarlierFile(t *testing.T) {
	t.Parallel()
	sb := measuredFilesAfter(t, 1800*time.Millisecond)
	ctx := context.Background()
	sb.rd.put(lateFile, "another-tools-token", sb.clock.Now().Add(-50*time.Millisecond).Truncate(time.Second))
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.a)); err != nil {
		t.Fatal(err)
	}
	if sb.rd.reads != 0 {
		t.Fatalf("%d reads before the challenge, want none", sb.rd.reads)
	}
	poll := sb.enq.take(t, tasks.TypePoll)
	sb.clock.Advance(time.Second)
	if err := sb.h.Poll(ctx, poll); err != nil {
		t.Fatalf("poll that found an earlier file = %v, want a fresh challenge asked", err)
	}
	if n := sb.api.validateCalls(); n != 0 {
		t.Fatalf("%d validate calls with a file written before the challenge, want 0", n)
	}
	sb.enq.take(t, tasks.TypeChallenge)
}

// TestMissNarrowsTheLearntDelay: a file dated to the second, found a
// second after a look that missed it, is learnt as appearing between that
// look and the find, not anywhere in its second: 1.05 s, where its date
// alone says 0.6 s.
func TestMissNarrowsTheLearntDelay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb := setupShared(t, worker.HandlerConfig{PollFirst: time.Second})
	sb.api.noFilename = true
	sb.clock.mu.Lock()
	sb.clock.now = sb.clock.now.Truncate(time.Second).Add(900 * time.Millisecond)
	sb.clock.mu.Unlock()
	requested := sb.clock.Now()
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.a)); err != nil {
		t.Fatal(err)
	}
	poll := sb.enq.take(t, tasks.TypePoll)
	sb.clock.Advance(time.Second)
	var snooze *worker.SnoozeError
	if err := sb.h.Poll(ctx, poll); !errors.As(err, &snooze) {
		t.Fatalf("poll before the file = %v, want a snooze", err)
	}
	sb.api.token = lateToken
	sb.rd.put(lateFile, lateToken, requested.Add(1050*time.Millisecond).Truncate(time.Second))
	sb.clock.Advance(time.Second)
	if err := sb.h.Poll(ctx, poll); err != nil {
		t.Fatal(err)
	}
	learnt := sb.h.Learnt()
	if len(learnt) != 1 || learnt[0] < time.Second || learnt[0] > 1100*time.Millisecond {
		t.Fatalf("learnt %v, want one delay within 1.0-1.1 s (between the miss and the find)", learnt)
	}
}

// TestPreciseAppearancesSkipAtOnce: files learnt as after 1 s, whose
// dates to the second leave the fastest up to half a second sooner, make a
// challenge 100 ms into its second wait for the next; once 8 of them were
// known to within a quarter second (no sooner than 950 ms), it goes at
// once, without the read before it.
func TestPreciseAppearancesSkipAtOnce(t *testing.T) {
	t.Parallel()
	const d = time.Second
	sb := measuredFilesAfter(t, d)
	for range 8 {
		sb.h.ObserveLow(950 * time.Millisecond)
	}
	sb.goesAtOnce(t, d)
}

// measuredFilesAfter is filesAfter on a store whose clock was measured.
func measuredFilesAfter(t *testing.T, d time.Duration) *sharedBundle {
	t.Helper()
	sb := filesAfter(t, d)
	sb.measureClock(t)
	return sb
}

// goesAtOnce onboards sb.a (onboard) and expects its challenge to go at
// once, without the read before it.
func (sb *sharedBundle) goesAtOnce(t *testing.T, d time.Duration) {
	t.Helper()
	if n := sb.onboard(t, d); n != 0 || sb.slept != 0 {
		t.Fatalf("%d reads before the challenge after sleeping %s; want none, at once", n, sb.slept)
	}
}

// TestUpperBoundsSkipAtOnce: files learnt as after 1.2 s, dated to the
// second, leave the fastest up to half a second sooner: a challenge 100 ms
// into its second waits for the next. Once 64 of them are known to have
// appeared by 1.3 s, the fastest is taken as 1.03 s (leastHigh less
// highSlack, 0.27 s for 64), and the challenge goes at once, without the
// read before it; its file, 1.2 s later, is taken by its date. The least
// of only 8 such bounds may overstate the fastest by 0.76 s: it still
// waits.
func TestUpperBoundsSkipAtOnce(t *testing.T) {
	t.Parallel()
	const d = 1200 * time.Millisecond
	for _, n := range []int{0, 8} {
		sb := measuredFilesAfter(t, d)
		for range n {
			sb.h.ObserveHigh(1300 * time.Millisecond)
		}
		if reads := sb.onboard(t, d); reads != 0 || sb.slept == 0 {
			t.Fatalf("%d reads before the challenge after sleeping %s with %d upper bounds; want none, after a wait", reads, sb.slept, n)
		}
	}
	sb := measuredFilesAfter(t, d)
	for range 64 {
		sb.h.ObserveHigh(1300 * time.Millisecond)
	}
	sb.goesAtOnce(t, d)
}

// TestSubSecondFilesLookWhenLearnt: where files come 300 ms after their
// challenge, the challenge task looks for its file 300 ms after the
// request, not at once: a look at once misses, and so does the poll after.
func TestSubSecondFilesLookWhenLearnt(t *testing.T) {
	t.Parallel()
	sb := filesAfter(t, 300*time.Millisecond)
	if err := sb.h.Challenge(context.Background(), challengeTask(t, sb.a)); err != nil {
		t.Fatal(err)
	}
	if sb.slept != 300*time.Millisecond {
		t.Fatalf("the challenge task slept %s before its look, want the learnt 300ms", sb.slept)
	}
}

// phaseBudget grants every call; a challenge's grant it would rather not
// use (accept false) goes to a validation waiting behind, as budget's
// WaitInTurn does, and the next comes an Interval later on clock.
type phaseBudget struct {
	clock   *fakeClock
	answers []bool
}

func (b *phaseBudget) Wait(context.Context) (time.Duration, error) { return 0, nil }
func (b *phaseBudget) Interval() time.Duration                     { return 250 * time.Millisecond }
func (b *phaseBudget) Pause(context.Context, time.Duration, string) error {
	return nil
}

func (b *phaseBudget) WaitInTurn(_ context.Context, accept func() (bool, time.Duration)) (time.Duration, error) {
	for accept != nil && len(b.answers) < 4 {
		ok, _ := accept()
		b.answers = append(b.answers, ok)
		if ok {
			break
		}
		b.clock.Advance(b.Interval())
	}
	return 0, nil
}

// TestChallengeTakesTheGrantWhereItsDateTells: files learnt as after 1.2
// s, a challenge 200 ms into its second would have its file dated too
// early to tell, and with a budget it does not wait for the next second
// (that would be latency between its grant and its request): it would
// read first. With a validation waiting behind it, it lets that one have
// the grant and takes the next, 250 ms on, where its file's date tells:
// no read before it, no wait.
func TestChallengeTakesTheGrantWhereItsDateTells(t *testing.T) {
	t.Parallel()
	const d = 1200 * time.Millisecond
	bud := &phaseBudget{}
	sb := filesAfterBudget(t, d, bud)
	bud.clock = sb.clock
	sb.measureClock(t)
	sb.clock.Advance(100 * time.Millisecond)
	if n := sb.onboard(t, d); n != 0 || sb.slept != 0 {
		t.Fatalf("%d reads before the challenge after sleeping %s; want none, at the next grant", n, sb.slept)
	}
	if !slices.Equal(bud.answers, []bool{false, true}) {
		t.Fatalf("the challenge answered %v to its grants, want the first refused and the next taken", bud.answers)
	}
}

// TestUpperBoundsCapPreciseLows: files known to within a quarter second
// (lows no sooner than 950 ms) are the files found just after a look that
// missed them, the slow ones where first polls come late. Where 64 files
// had appeared by 800 ms, the fastest is taken as 0.53 s (leastHigh less
// highSlack), not 0.95 s: a challenge 100 ms into its second would have a
// file that fast dated too early to tell, so it waits for the next second
// rather than go at once.
func TestUpperBoundsCapPreciseLows(t *testing.T) {
	t.Parallel()
	const d = time.Second
	sb := measuredFilesAfter(t, d)
	for range 8 {
		sb.h.ObserveLow(950 * time.Millisecond)
	}
	for range 64 {
		sb.h.ObserveHigh(800 * time.Millisecond)
	}
	if n := sb.onboard(t, d); n != 0 || sb.slept == 0 {
		t.Fatalf("%d reads before the challenge after sleeping %s; want none, after a wait for the next second", n, sb.slept)
	}
}
