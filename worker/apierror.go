package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
)

// apiError turns a Cloudflare error into the task's outcome.
func (h *handlers) apiError(ctx context.Context, r *run, filename string, err error) error {
	failedAt := h.now()
	var ae *cloudflare.APIError
	if errors.As(err, &ae) && ae.Kind == cloudflare.RateLimited && ae.RetryAfter > 0 && r.t.Budget != nil {
		if perr := r.t.Budget.Pause(ctx, ae.RetryAfter, "429 from "+ae.Endpoint); perr == nil {
			h.metrics.Cooldowns.WithLabelValues(r.t.label()).Inc()
		}
	}
	if errors.As(err, &ae) && ae.Kind == cloudflare.Auth {
		// This worker's copy of the credential may be the one refused
		// (a worker started with a wrong token): it verifies it, and a
		// refused copy hands the row back rather than failing it.
		if c := r.t.Check; c != nil && c.check(ctx, failedAt, r.d) {
			if herr, ok := h.handBack(ctx, r, err); ok {
				return herr
			}
		}
		hold, tripped, perr := r.t.Auth.Failure(ctx, ae.Error())
		if perr != nil {
			return perr
		}
		if hold {
			return h.hold(ctx, r, tripped, err)
		}
	}
	if classify(err) == permanent {
		return h.rec.fail(ctx, r, filename, fmt.Errorf("%w: %w", err, asynq.SkipRetry))
	}
	return h.retryOrFail(ctx, r, filename, err)
}

// hold keeps a destination of a paused credential (or queue) for after
// 'resume' instead of failing it: a parked row of a paused credential, or a
// snooze in the paused queue (no retry spent; the paused queue runs it again
// only after resume). tripped says this failure paused it.
func (h *handlers) hold(ctx context.Context, r *run, tripped bool, cause error) error {
	msg := r.clean(cause.Error())
	switch {
	case tripped && r.t.Pause != nil:
		// The pause counted the queue's pause, if every credential in
		// use is paused now.
		r.log.Error("credential paused: repeated authentication failures", "err", msg)
	case tripped:
		h.metrics.QueuePauses.WithLabelValues("auth").Inc()
		r.log.Error("queue paused: repeated authentication failures", "err", msg)
	}
	state := events.Queued
	if r.st != nil {
		state = r.st.State
	}
	h.rec.note(ctx, r, state, cause)
	if r.t.Pause != nil {
		return r.t.Pause.park(ctx)
	}
	return &SnoozeError{Delay: time.Second, Reason: "queue paused after repeated authentication failures"}
}

// handBack is what a worker whose copy of the row's credential Cloudflare
// refused does with the row (cause: the refused call, nil before any):
// while another live worker's copy works, the row goes back to the queue
// for it (a snooze: no retry spent); when none does, the credential's
// pause holds it for an operator. ok false: the pause is off
// (--auth-pause-after 0), the row is judged as before.
func (h *handlers) handBack(ctx context.Context, r *run, cause error) (err error, ok bool) {
	c := r.t.Check
	if cause != nil {
		state := events.Queued
		if r.st != nil {
			state = r.st.State
		}
		h.rec.note(ctx, r, state, cause)
	}
	elsewhere, err := c.worksElsewhere(ctx)
	if err != nil {
		return &SnoozeError{Delay: handBackDelay, Reason: "credential " + c.name + " refused on worker " + c.self + "; " + err.Error()}, true
	}
	if elsewhere {
		h.metrics.HandedBack.WithLabelValues(r.t.label()).Inc()
		return &SnoozeError{Delay: handBackDelay, Reason: "credential " + c.name + " refused on worker " + c.self + ": left for a worker whose copy works"}, true
	}
	if r.t.Auth == nil || r.t.Auth.threshold <= 0 {
		return nil, false
	}
	if cause == nil && !c.check(ctx, h.now(), r.d) {
		// Refused before (the row came back after a resume, say): the
		// copy verifies again, the row is this worker's.
		return nil, false
	}
	_, _, why := c.refused()
	tripped, err := r.t.Auth.Trip(ctx, "no live worker holds a working copy of credential "+c.name+" (last: "+why+")")
	if err != nil {
		return err, true
	}
	if cause == nil {
		cause = fmt.Errorf("credential %s refused by Cloudflare on every worker: %s", c.name, why)
	}
	return h.hold(ctx, r, tripped, cause), true
}
