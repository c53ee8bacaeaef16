package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/location"
	"github.com/logpush-onboard/logpush-onboard/internal/luascript"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// holder names a destination in a location's lease and line.
func holder(r *run) string { return r.key.Batch + ":" + r.key.Hash }

// acquire takes loc for r's destination, or puts it in the line and
// returns a snooze. record is what the previous holder left: what the
// location held when it let go.
func (h *handlers) acquire(ctx context.Context, r *run, loc destination.Location) (held bool, record string, err error) {
	id := location.ID(loc.Scheme + "://" + loc.Account + "@" + loc.Bucket + "/" + loc.Key)
	queue, ok := asynq.GetQueueName(ctx)
	if !ok {
		queue = tasks.Queue
	}
	g, err := h.leases.Acquire(ctx, id, location.Waiter{Holder: holder(r), Order: order(r.d), Queue: queue,
		TaskID: tasks.ChallengeTaskID(r.d)})
	if err != nil {
		return false, "", err
	}
	if g.Held {
		r.lease, r.contended = id, g.Waiting > 0
		return true, g.Record, nil
	}
	r.lease = id // a finished destination leaves the line in enter
	if _, err := h.enter(ctx, r, events.WaitingPath, ""); err != nil {
		return false, "", err
	}
	r.lease = ""
	reason := fmt.Sprintf("challenge file %s is busy with another destination's challenge (%d waiting ahead)", r.clean(loc.String()), g.Ahead)
	return false, "", &SnoozeError{Delay: g.Retry, Reason: reason}
}

// order places a destination in a location's line: by enqueue second,
// then input line.
func order(d tasks.Dest) float64 {
	return float64(d.EnqueuedAt.Unix())*1e6 + float64(min(d.Line, 999_999))
}

// release lets go of the destination's challenge location, leaving what it
// saw there for the next holder, and wakes the next waiter. Errors are
// logged, not returned: the outcome is recorded, and an unreleased lease
// expires.
func (h *handlers) release(ctx context.Context, r *run) {
	if r.lease == "" || !h.leases.held() {
		return
	}
	next, err := h.leases.Release(ctx, r.lease, holder(r), h.pathRecord(r))
	if RedisUnreachable(err) {
		// A release lost in an outage would keep the path (and everyone
		// waiting for it) until the lease expires: once Redis is back, again.
		h.awaitRedis(ctx, err)
		next, err = h.leases.Release(ctx, r.lease, holder(r), h.pathRecord(r))
	}
	h.released(ctx, r, next, err)
}

// releaseCall is the release of the destination's challenge location as a
// script call that its outcome's transition runs in the same round trip
// (recorder.emit), then released; ok is false when it holds none.
func (h *handlers) releaseCall(r *run) (c luascript.Call, ok bool) {
	if r.lease == "" || !h.leases.held() {
		return luascript.Call{}, false
	}
	return h.leases.ReleaseCall(r.lease, holder(r), h.pathRecord(r)), true
}

// released ends a release (err its error): it wakes next, the waiter the
// free location wants, and forgets the lease.
func (h *handlers) released(ctx context.Context, r *run, next *location.Next, err error) {
	if err == nil && next != nil {
		err = h.leases.wake(ctx, r.lease, next)
	}
	if err != nil {
		r.log.Warn("releasing the challenge location failed; it frees when its lease expires", "err", err)
	}
	r.lease = ""
	h.coldGone(r)
}

// wakeRetry is how often, and for how long, a release tries again to wake
// a waiter whose task was running when the location freed: longer than
// asynq takes to recover a task an outage left counted as active (its 30 s
// lease, then a recoverer that looks once a minute).
var wakeRetry = struct{ every, upTo time.Duration }{time.Second, 3 * time.Minute}

// pathLeases owns the wake-ups of one worker (a cold worker's first polls,
// and the waiters a release frees) and, when held, the challenge-file
// location leases of its destinations (location.Leases, across the fleet):
// a waiter whose task is running is tried again by a goroutine, which stop
// ends. The Worker stops it at Shutdown, so that no wake-up outlives the
// worker.
type pathLeases struct {
	*location.Leases
	waker waker

	// ctx ends the pending wake-ups; wg waits for them and pending counts
	// them (what a test can read); stopped refuses new ones once stop
	// began.
	ctx     context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
	pending atomic.Int64
}

// newPathLeases returns the leases of l, whose freed waiters w wakes.
func newPathLeases(l *location.Leases, w waker) *pathLeases {
	ctx, cancel := context.WithCancel(context.Background())
	return &pathLeases{Leases: l, waker: w, ctx: ctx, cancel: cancel}
}

// held reports whether the worker holds path leases (location.Leases):
// without, challenge files are not serialised per location.
func (p *pathLeases) held() bool { return p.Leases != nil }

// stop ends the pending wake-ups and waits for them: a waiter not woken
// yet wakes at its own next look, as after a lost wake-up. Later releases
// wake no one who is running.
func (p *pathLeases) stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
}

// after calls wake after d (a wake-up of the worker's own, such as a cold
// worker's first polls) unless stop comes first; stop waits for one under
// way, so that it does not outlive the worker either.
func (p *pathLeases) after(d time.Duration, wake func()) {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.wg.Add(1)
	p.pending.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		defer p.pending.Add(-1)
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
		wake()
	}()
}

// wake runs the task of next, the waiter the free location lease wants,
// taking waiters whose task is gone out of the line. A task that is
// running cannot be woken: it either looked just before the release and
// is about to sleep out its look-in (up to 20 rechecks for a waiter far
// back in the line), or an outage cut its dequeue off and asynq counts it
// active until it recovers it. Either way the line would wait for it, so
// a goroutine tries again until the task can be run, or stop.
func (p *pathLeases) wake(ctx context.Context, lease string, next *location.Next) error {
	for i := 0; next != nil && i < 100; i++ {
		werr := p.waker.RunTask(next.Queue, next.TaskID)
		switch {
		case running(werr):
			p.wakeLater(*next)
			return nil
		case !errors.Is(werr, asynq.ErrTaskNotFound) && !errors.Is(werr, asynq.ErrQueueNotFound):
			return nil // woken, or pending already
		}
		// Its task is gone: take it out of the line, wake the next.
		var err error
		if next, err = p.Leave(ctx, lease, next.Holder); err != nil {
			return err
		}
	}
	return nil
}

// wakeLater starts a goroutine that tries to wake next every
// wakeRetry.every, for at most wakeRetry.upTo, until its task is no longer
// running or stop. It wakes or stops; it never takes the waiter out of the
// line: by then the waiter may hold the lease (its own look took it), and
// a waiter that is gone is presumed so by the line itself, after its
// look-in and a grace.
func (p *pathLeases) wakeLater(next location.Next) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	p.wg.Add(1)
	p.pending.Add(1)
	go func() {
		defer p.wg.Done()
		defer p.pending.Add(-1)
		t := time.NewTicker(wakeRetry.every)
		defer t.Stop()
		for range int(wakeRetry.upTo / wakeRetry.every) {
			select {
			case <-p.ctx.Done():
				return
			case <-t.C:
			}
			if werr := p.waker.RunTask(next.Queue, next.TaskID); !running(werr) {
				return
			}
		}
	}()
}

// running reports whether RunTask refused because the task is running.
func running(err error) bool { return err != nil && strings.Contains(err.Error(), "already running") }

// renew extends the lease of a poll that will look again and learns
// whether others wait for the path (r.contended).
func (h *handlers) renew(ctx context.Context, r *run) error {
	if r.lease == "" || !h.leases.held() {
		return nil
	}
	held, waiting, err := h.leases.Renew(ctx, r.lease, holder(r))
	if err != nil {
		return err
	}
	if !held {
		r.log.Warn("another destination took this challenge location after its lease expired; its challenge may overwrite this one's file")
	}
	r.contended = waiting > 0
	return nil
}
