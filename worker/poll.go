package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/location"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// Poll handles logpush:poll: one look for the challenge file.
func (h *handlers) Poll(ctx context.Context, t *asynq.Task) error {
	return h.observe(ctx, t, h.poll)
}

func (h *handlers) poll(ctx context.Context, t *asynq.Task) error {
	var p tasks.PollPayload
	r, err := h.start(ctx, t, &p, &p.Dest)
	if err != nil {
		return err
	}
	st, err := h.enter(ctx, r, events.Polling, events.StagePoll)
	if err != nil {
		return err
	}
	r.lease, r.deadline, r.looks, r.contended = p.Lease, p.Deadline, p.Looks, p.Contended
	return h.look(ctx, r, p, st, st.Attempts.Poll+p.Looks)
}

// look reads the challenge file once for the challenge of p, with st the
// destination's state as this task entered it and polls the looks so far,
// this one included: the token found is validated; a miss snoozes (the
// SnoozeError the poll task is retried after), or past the deadline asks
// for a fresh challenge.
func (h *handlers) look(ctx context.Context, r *run, p tasks.PollPayload, st ledger.DestState, polls int) error {
	// A retried challenge of this generation may have asked again after
	// this poll was scheduled: only its (later) token is good.
	requestedAt := p.RequestedAt
	if st.Round == r.d.Round && st.Gen == r.d.Gen && st.RequestedAt.After(requestedAt) {
		requestedAt = st.RequestedAt
	}
	ck := challengeKey(r, requestedAt)
	switch scout, later := h.notDue(r, polls, h.now().Sub(requestedAt), h.misses.has(ck)); {
	case scout:
		return h.notYet(ctx, r, p, polls, errScoutMissed)
	case later > 0:
		return &SnoozeError{Delay: later, Reason: errNotDue.Error(), OnTime: h.onTime(r.d, later)}
	}
	// The lease is renewed only by a poll that looks again (notYet,
	// denied, unreadable): the poll that finds the file releases it with
	// the outcome, and reading it needs no lease.
	loc := destination.For(r.conf, r.d.ReadAs, p.Filename)
	notBefore := h.notBefore(loc, requestedAt)
	g, listable := h.pollGroup(r, loc)
	// missed snoozes the poll after a look (at r.seenAt) that missed its
	// file, seen the date of the one there (zero: none): a listing that
	// shows a new one wakes it.
	missed := func(seen time.Time, cause error) error {
		h.misses.note(ck, r.seenAt)
		if listable {
			h.lists.missedPoll(g, loc.Key, h.now(), waitingPoll{d: r.d, notBefore: notBefore, seen: seen, until: p.Deadline})
		}
		return h.notYet(ctx, r, p, polls, cause)
	}
	if listable {
		if at, absent, ok := h.pollListed(ctx, r, g, loc, requestedAt, notBefore, h.now().Sub(requestedAt)); ok {
			// A listing since the challenge shows no file of its: a
			// miss then, without a read.
			r.seenAt = at
			if absent {
				r.seen = location.Absent
			}
			return missed(time.Time{}, errNotListed)
		}
	}
	r.seenAt = h.now()
	obj, err := h.read(ctx, loc, notBefore)
	switch {
	case errors.Is(err, destination.ErrNotFound), errors.Is(err, destination.ErrStale):
		h.storage(r.conf.Type, destination.OpRead, err)
		if errors.Is(err, destination.ErrNotFound) {
			r.seen = location.Absent
		}
		return missed(time.Time{}, err)
	case err != nil:
		h.storage(r.conf.Type, destination.OpRead, err)
		if maybeAbsent(err) {
			return h.denied(ctx, r, p, loc, polls, err)
		}
		if classify(err) == permanent {
			return h.rec.fail(ctx, r, p.Filename, fmt.Errorf("%w: %w", err, asynq.SkipRetry))
		}
		return h.unreadable(ctx, r, p, polls, err)
	}
	h.storage(r.conf.Type, destination.OpRead, nil)
	h.denials.forget(loc)
	if listable {
		h.lists.found(g, loc.Key)
	}
	r.seen = digest(obj.Body)
	if r.seen == p.Before {
		// The file that was there before the challenge: ours is not
		// written yet.
		return missed(obj.ModTime, errUnchanged)
	}
	clock, measured := h.clockOf(loc)
	appeared, half := h.appeared(clock, measured, obj.ModTime, requestedAt, h.misses.take(ck))
	if p.Before == unread && clock.undated(obj.ModTime, requestedAt) {
		// Not read before the challenge, and dated too early to tell:
		// a fresh challenge, which reads first.
		return h.rechallenge(ctx, r, p.Filename, errUndated)
	}
	token, err := cloudflare.CleanToken(string(obj.Body))
	if err != nil {
		return h.rec.fail(ctx, r, p.Filename, fmt.Errorf("challenge file %s: %w: %w", loc, err, asynq.SkipRetry))
	}
	switch cloudflare.TokenFor(token, r.d.Scope, r.d.ScopeID, r.d.DestinationConf, h.now()) {
	case cloudflare.TokenForeign:
		// Another destination's challenge on this path wrote it (one
		// outside this fleet, or before this destination's lease). This
		// challenge's write replaces it when it comes; once that is well
		// overdue (foreignOverdue), the other write came after it: ask
		// again rather than look until the deadline, a read every
		// PollContended where others wait.
		if h.now().Sub(requestedAt) > foreignOverdue*max(h.cfg.PollFirst, h.cfg.PollInterval, h.seen.longest()) {
			return h.rechallenge(ctx, r, p.Filename, errOverwritten)
		}
		return h.notYet(ctx, r, p, polls, errForeignToken)
	case cloudflare.TokenExpired:
		return h.notYet(ctx, r, p, polls, errExpiredToken)
	}
	// The file appeared d after the challenge, give or take half; by this
	// read at the latest.
	d := appeared.Sub(requestedAt)
	h.observeAppearance(ctx, d, min(d+half, h.now().Sub(requestedAt)))
	if half <= preciseHalf {
		h.seen.observeLow(d - half)
	}
	if measured {
		h.seen.observeHigh(d + half)
	}
	r.log.Info("challenge file found", "filename", r.clean(p.Filename), "polls", polls)
	// Validate here rather than through a logpush:validate task: one task
	// fewer per destination (4 Redis round trips and a hand-off), and the
	// token is never stored in Redis. A transient error retries this poll,
	// which reads the file again.
	if err := h.wait(ctx, r); err != nil {
		return err
	}
	return h.submitToken(ctx, r, p.Filename, token, true)
}

// appeared is when a file dated modTime on a store of clock b (clockOf),
// found by the read that just ended, appeared on this host's clock, give or
// take half: within what its date leaves open (the second after it, where
// truncated to the second as S3's Last-Modified is) on the storage's clock
// (b where measured; else taken for this host's), not before the challenge
// (requestedAt) nor this worker's last vain look for it (missed; zero for
// none), and not after this read: the middle of that. The end of the
// second alone would be learnt as up to a second late, and every first
// poll would wait for it. half is a second or more where the storage's
// clock is only assumed.
func (h *handlers) appeared(b clockBounds, measured bool, modTime, requestedAt, missed time.Time) (at time.Time, half time.Duration) {
	var unit time.Duration
	switch {
	case modTime.Nanosecond() == 0:
		unit = time.Second
	case !measured:
		return modTime, time.Second // its clock only assumed
	}
	lo, hi := modTime, modTime.Add(unit)
	if measured {
		lo, hi = modTime.Add(-b.hi), modTime.Add(max(unit, b.res)-b.lo)
	}
	if now := h.now(); now.Before(hi) {
		hi = now
	}
	if requestedAt.After(lo) {
		lo = requestedAt
	}
	if missed.After(lo) {
		lo = missed
	}
	if hi.Before(lo) {
		return hi, time.Second // the bounds disagree: not known
	}
	half = hi.Sub(lo) / 2
	at = lo.Add(half)
	if !measured {
		half = max(half, time.Second) // its clock only assumed
	}
	return at, half
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// notYet snoozes the poll, or, past the deadline, asks for one fresh
// challenge and then gives up.
func (h *handlers) notYet(ctx context.Context, r *run, p tasks.PollPayload, polls int, cause error) error {
	if err := h.renew(ctx, r); err != nil {
		return err
	}
	if now := h.now(); now.Before(p.Deadline) {
		d, waited := h.pollDelay(polls), now.Sub(p.RequestedAt)
		if at, ok := h.seen.nextPoll(waited, h.pollDelay); ok {
			// When the files that came this late did.
			d = min(at-waited, h.cfg.PollMaxInterval)
		} else {
			// Longer than any file seen: it may take much longer still,
			// and a look every PollInterval would spend a read each.
			d = max(d, waited/beyondLearnt)
		}
		d = min(d, p.Deadline.Sub(now)+time.Second) // the deadline holds
		if r.contended {
			// Others wait for this path: every interval here delays them all.
			d = min(d, h.cfg.PollContended)
		}
		d = h.scoutDelay(r, d, waited)
		if errors.Is(cause, errScoutMissed) && d < p.Deadline.Sub(now) {
			// After the scout's own look at that age, not in a race with
			// it: a poll that stood for the scout's miss at 4 s looked
			// at 6.1 s, before the scout's look at 6 s had missed, and
			// read where it could have stood again.
			d += 2 * h.scoutLook()
		}
		return &SnoozeError{Delay: d, Reason: cause.Error(), OnTime: h.onTime(r.d, d)}
	}
	why := fmt.Errorf("challenge file %s not written within %s: %w", p.Filename, h.cfg.PollDeadline, cause)
	if r.d.Expired {
		return h.rec.fail(ctx, r, p.Filename, fmt.Errorf("%w: %w", why, asynq.SkipRetry))
	}
	r.d.Expired = true // one fresh challenge after a deadline, then fail
	return h.rechallenge(ctx, r, p.Filename, why)
}

// onTime runs the poll task of d itself after, and says whether it will:
// asynq would run it up to a second early (NotEarly), the worker runs it
// when due, and asynq's schedule, a second late at most, stands for a
// worker that stops first. Not below onTimeMin: asynq moves due tasks on
// every DelayedTaskCheckInterval, so a shorter delay is not early by more;
// not above onTimeMax, so that a batch of slow files holds few timers.
func (h *handlers) onTime(d tasks.Dest, after time.Duration) bool {
	if h.leases.waker == nil || after < onTimeMin || after > onTimeMax {
		return false
	}
	id := tasks.PollTaskID(d)
	seq := h.onTimes.set(id)
	h.runPollAfter(d, after, func() bool { return h.onTimes.take(id, seq) })
	return true
}

// onTimes holds, per poll task, the latest run onTime set for it. A poll
// run before its time (a scout's look, a cold poll woken) sets another
// when it snoozes again; the earlier one is stale, and would look again
// before that snooze ends: a cold scout of files after 5-10 s read about
// 30 times rather than 16.
type onTimes struct {
	mu  sync.Mutex
	seq uint64
	due map[string]uint64
}

// set records a run for the poll task id and returns its number.
func (o *onTimes) set(id string) uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.due == nil {
		o.due = make(map[string]uint64)
	}
	o.seq++
	o.due[id] = o.seq
	return o.seq
}

// take reports whether run seq is still the latest set for id, and
// forgets it if so.
func (o *onTimes) take(id string, seq uint64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.due[id] != seq {
		return false
	}
	delete(o.due, id)
	return true
}

// runPollAfter runs the poll task of d after, unless the worker stops
// first or still (when given) says no by then. A poll that is running, or
// not scheduled yet, is left to its own schedule.
func (h *handlers) runPollAfter(d tasks.Dest, after time.Duration, still func() bool) {
	queue, id := tasks.QueueOf(tasks.TypePoll), tasks.PollTaskID(d)
	h.leases.after(after, func() {
		if still == nil || still() {
			_ = h.leases.waker.RunTask(queue, id)
		}
	})
}

// The delays onTime wakes polls after.
const (
	onTimeMin = 250 * time.Millisecond
	onTimeMax = 10 * time.Second
)

// unreadable handles a transient error reading the challenge file (a host
// that does not resolve, a timeout, a 5xx). The poll deadline bounds it as
// it bounds a missing file, rather than the retries with their backoff,
// which can outlast any deadline: before it the poll snoozes like after a
// miss, keeping the error for status and report; past it the destination
// fails (a fresh challenge would not make the storage readable).
func (h *handlers) unreadable(ctx context.Context, r *run, p tasks.PollPayload, polls int, cause error) error {
	if err := h.renew(ctx, r); err != nil {
		return err
	}
	if h.now().Before(p.Deadline) {
		h.rec.note(ctx, r, events.Polling, cause)
		r.log.Warn("challenge file unreadable, will poll again", "err", r.clean(cause.Error()))
		return &SnoozeError{Delay: min(h.pollDelay(polls), p.Deadline.Sub(h.now())+time.Second), Reason: r.clean(cause.Error())}
	}
	return h.rec.fail(ctx, r, p.Filename, fmt.Errorf("challenge file %s unreadable within %s: %w: %w", p.Filename, h.cfg.PollDeadline, cause, asynq.SkipRetry))
}

// beyondLearnt divides the time a poll has waited, where no file seen so
// far took as long, into the least delay of its next look: a look at
// waited x 1.5 rather than every PollInterval (1 s, 1.5 s, 2.25 s, ...),
// whatever the delays' scale. A cold batch whose files come after 5-10 s
// looked at 4, 5, 6.5, 8.75 and 12.1 s (about 4 looks each); now at 4, 6,
// 9 and 13.5 s (3).
const beyondLearnt = 2

// foreignOverdue multiplies the longest a challenge's own write may take
// (the longest delay learnt, --poll-first or --poll-interval): a file that
// still holds another destination's token that long after the challenge
// was written over by a later one.
const foreignOverdue = 2

// pollDelay is the delay after the n-th miss: PollInterval growing by half
// each miss, capped at PollMaxInterval.
func (h *handlers) pollDelay(n int) time.Duration {
	d := h.cfg.PollInterval
	for i := 1; i < n && d < h.cfg.PollMaxInterval; i++ {
		d += d / 2
	}
	return min(d, h.cfg.PollMaxInterval)
}
