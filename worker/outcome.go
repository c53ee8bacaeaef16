package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/location"
	"github.com/logpush-onboard/logpush-onboard/internal/luascript"
	"github.com/logpush-onboard/logpush-onboard/internal/redact"
	"github.com/logpush-onboard/logpush-onboard/metrics"
)

// recorder records how a destination's tasks end, for every stage: its
// state and its event in the ledger (one script, so that a task that runs
// twice emits one event), its metrics and its log line, once; and, while
// the destination is in flight, its last error.
type recorder struct {
	store   *ledger.Store
	metrics *metrics.Metrics
	now     func() time.Time
	// self names this worker in the errors it records.
	self string
	// releaseCall is the release of the destination's challenge path, which
	// the outcome's transition runs in the same script run once the state
	// is written (handlers.releaseCall); released then wakes the path's
	// next waiter (handlers.released).
	releaseCall func(r *run) (luascript.Call, bool)
	released    func(ctx context.Context, r *run, next *location.Next, err error)
}

// retryOrFail returns a transient error for asynq to retry no later than
// the stage's deadline (see handlers.deadline); on the last allowed
// attempt, or past the deadline, it records the failure instead, and the
// task ends without keeping the conf in Redis.
func (h *handlers) retryOrFail(ctx context.Context, r *run, filename string, err error) error {
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	if ok && retried >= maxRetry {
		return h.rec.fail(ctx, r, filename, fmt.Errorf("gave up after %d retries: %w", retried, err))
	}
	until, derr := h.deadline(ctx, r)
	if derr != nil {
		return derr
	}
	if !h.now().Before(until) {
		return h.rec.fail(ctx, r, filename, fmt.Errorf("still failing after %s (the poll deadline): %w", h.cfg.PollDeadline, err))
	}
	state := events.Queued
	if r.st != nil {
		state = r.st.State
	}
	h.rec.note(ctx, r, state, err)
	r.log.Warn("transient error, will retry", "err", r.clean(err.Error()))
	return &retryError{err: err, until: until}
}

// fail records the failed outcome (err, redacted, in the state and the
// event) and returns errFailed: the task ends without being archived, so
// that no archived task keeps the conf's secrets in Redis for months
// (retry rebuilds the task from the input file instead).
func (rc *recorder) fail(ctx context.Context, r *run, filename string, err error) error {
	if oerr := rc.outcome(ctx, r, events.Failed, filename, err); oerr != nil {
		return oerr // state not written: let asynq retry the whole task
	}
	return errFailed
}

// outcome moves the destination to its outcome and emits its event, once.
func (rc *recorder) outcome(ctx context.Context, r *run, state events.State, filename string, cause error) error {
	return rc.emit(ctx, r, state, state, filename, cause)
}

// emit moves the destination to state and emits event, once: the outcome's
// own, or, for a destination that moves on to Watching, the validated or
// not_required event of its job stage.
func (rc *recorder) emit(ctx context.Context, r *run, state, event events.State, filename string, cause error) error {
	var st ledger.DestState
	if r.st != nil {
		st = *r.st // what enter left (its line registered with it), with this attempt counted
	} else {
		var err error
		st, err = rc.store.Get(ctx, r.key)
		switch {
		case errors.Is(err, ledger.ErrNotFound):
			// Not registered by anyone yet: the transition below registers
			// it at the task's line, the event's.
			st.Line = r.d.Line
		case err != nil:
			return err
		}
	}
	now := rc.now()
	ev := &events.Event{
		Event:           event,
		BatchID:         r.d.BatchID,
		Scope:           r.d.Scope,
		ScopeID:         r.d.ScopeID,
		Destination:     r.conf.Redacted(),
		DestinationType: r.conf.Type,
		// The key in the bucket or container, whether Cloudflare's answer
		// named the bucket or container first (the simulator does for
		// Azure) or an earlier run's challenge log gave it: one name in
		// the report for both. No name stays none.
		Filename:        r.clean(r.conf.Key(filename)),
		Attempts:        st.Attempts,
		DurationSeconds: now.Sub(r.d.EnqueuedAt).Seconds(),
		Time:            now.UTC(),
		Line:            st.Line,
		JobID:           r.jobID,
		JobExisted:      r.jobExisted,
		NewJobID:        r.newJobID,
	}
	switch r.attempt {
	case events.StageChallenge:
		ev.Attempts.Challenge++
	case events.StageValidate:
		ev.Attempts.Validate++
	case "":
	default:
		return fmt.Errorf("outcome: cannot count a %s attempt", r.attempt)
	}
	if r.looks > 0 {
		ev.Attempts.Poll += r.looks
	}
	if ev.Destination == "" {
		ev.Destination = redact.String(r.d.DestinationConf)
	}
	if cause != nil {
		ev.Error = r.eventError(cause)
		ev.Error.Worker = rc.self
	}
	fields := ledger.ErrorFields(ev.Error)
	if r.looks > 0 {
		fields = append(fields, ledger.AttemptField(events.StagePoll), ev.Attempts.Poll)
	}
	if ev.Filename != "" {
		fields = append(fields, "filename", ev.Filename)
	}
	if state == events.AwaitingToken {
		// submit-token reads the generation back for its validate task:
		// rechallenge counts it against MaxRechallenges.
		fields = append(fields, "gen", r.d.Gen)
	}
	var changed bool
	var err error
	if release, ok := rc.releaseCall(r); ok {
		// One round trip: the state, then the path's release.
		var res any
		if changed, res, err = rc.store.TransitionThen(ctx, r.key, state, ev, r.attempt, release, fields...); err == nil {
			rc.released(ctx, r, location.Released(res), nil)
		}
	} else {
		changed, err = rc.store.Transition(ctx, r.key, state, ev, r.attempt, fields...)
	}
	if err != nil {
		return err
	}
	if changed {
		rc.metrics.Destinations.WithLabelValues(string(event)).Inc()
		rc.metrics.OnboardingDuration.WithLabelValues(string(event)).Observe(ev.DurationSeconds)
		if cause != nil {
			r.log.Warn("destination "+string(event), "err", ev.Error.Message, "codes", ev.Error.Codes)
		} else {
			r.log.Info("destination "+string(event), "duration_seconds", ev.DurationSeconds, "job_id", r.jobID)
		}
	}
	return nil
}

func (r *run) eventError(err error) *events.Error {
	msg := strings.TrimSuffix(err.Error(), ": "+asynq.SkipRetry.Error())
	e := &events.Error{Message: r.clean(msg)}
	var ae *cloudflare.APIError
	var de *destination.Error
	switch {
	case errors.As(err, &ae):
		e.HTTPStatus = ae.HTTPStatus
		e.Codes = ae.Codes
	case errors.As(err, &de):
		e.StorageStatus = de.HTTPStatus
	}
	return e
}

// note keeps cause as the destination's last error while it is in
// flight; a failure to keep it only costs the display.
func (rc *recorder) note(ctx context.Context, r *run, state events.State, cause error) {
	e := r.eventError(cause)
	le := ledger.LastError{State: state, HTTPStatus: e.HTTPStatus, Message: e.Message, Worker: rc.self, Time: rc.now().UTC(), Line: r.d.Line}
	if r.st != nil {
		le.Line = cmp.Or(r.st.Line, r.d.Line)
	}
	if err := rc.store.NoteError(ctx, r.key, le); err != nil {
		r.log.Debug("last error not kept", "err", err)
	}
}
