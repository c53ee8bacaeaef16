package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/location"
)

// Every way a task can go to asynq's retry set is bounded by
// --poll-deadline, as the poll is: a task there keeps the conf (and its
// secrets) in Redis, and a destination that holds a path's lease keeps
// every other destination of that path waiting. A stage with no deadline
// of its own (the read before the challenge, the challenge call, the
// validate task, the job stage) counts the deadline from its first
// transient failure (ledger FailingSince); past it the destination fails
// with the error named, lets go of its path and the task ends.

// retryError is a transient error whose retry must come no later than
// until: Backoff.Delay caps its delay there, so that the run that finds
// the deadline passed and fails the destination is not hours late.
type retryError struct {
	err   error
	until time.Time
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// deadline is when the transient failures of r's stage must stop being
// retried: the poll's deadline for a poll, else --poll-deadline after the
// stage first failed.
func (h *handlers) deadline(ctx context.Context, r *run) (time.Time, error) {
	if !r.deadline.IsZero() {
		return r.deadline, nil
	}
	since, err := h.store.FailingSince(ctx, r.key, r.stage, r.d.Round, r.d.Gen, h.now())
	if err != nil {
		return time.Time{}, err
	}
	return since.Add(h.cfg.PollDeadline), nil
}

// unreadableBefore handles a transient error of the read before the
// challenge (a storage host that does not resolve, a timeout, a 5xx): the
// task keeps the path and snoozes, backing off, without a challenge spent
// on a storage it cannot read; past --poll-deadline from the first such
// error the destination fails with the storage error, and its path goes to
// the next destination.
func (h *handlers) unreadableBefore(ctx context.Context, r *run, loc destination.Location, cause error) error {
	if _, err := h.enter(ctx, r, events.Challenging, ""); err != nil {
		return err
	}
	until, err := h.deadline(ctx, r)
	if err != nil {
		return err
	}
	why := fmt.Errorf("read %s before the challenge: %w", loc, cause)
	now := h.now()
	if !now.Before(until) {
		return h.rec.fail(ctx, r, "", fmt.Errorf("unreadable within %s: %w: %w", h.cfg.PollDeadline, why, asynq.SkipRetry))
	}
	h.rec.note(ctx, r, events.Challenging, why)
	r.log.Warn("challenge location unreadable, will read again before challenging", "err", r.clean(why.Error()))
	// Back off with the time spent failing, from PollInterval up to
	// PollMaxInterval, and look once more at the deadline.
	elapsed := h.cfg.PollDeadline - until.Sub(now)
	d := min(max(elapsed/2, h.cfg.PollInterval), h.cfg.PollMaxInterval, until.Sub(now)+time.Second)
	return &SnoozeError{Delay: d, Reason: r.clean(why.Error())}
}

// readBefore reads what loc holds before the challenge: the digest of the
// file, or location.Absent. A read denied the way S3 denies a missing file
// counts as absent (the poll reads the same way and says what is missing),
// unless an earlier destination of the bucket stayed denied until its
// deadline; any other refusal (an unknown storage key, a missing bucket)
// fails the destination before a challenge is spent on it (and each other
// destination of the bucket at its own read, before its challenge); a transient error is
// bounded by unreadableBefore. done is set when the task ends here (err is
// its result).
func (h *handlers) readBefore(ctx context.Context, r *run, loc destination.Location) (record string, done bool, err error) {
	obj, err := h.read(ctx, loc, time.Time{})
	h.storage(r.conf.Type, destination.OpRead, err)
	switch {
	case err == nil:
		h.denials.forget(loc)
		return digest(obj.Body), false, nil
	case errors.Is(err, destination.ErrNotFound):
		return location.Absent, false, nil
	case maybeAbsent(err) && h.denials.known(loc):
		return "", true, h.rec.fail(ctx, r, "", fmt.Errorf("read %s before the challenge: %w (another destination of this bucket stayed denied until its poll deadline): %w",
			loc, err, asynq.SkipRetry))
	case maybeAbsent(err):
		return location.Absent, false, nil
	case classify(err) == permanent:
		return "", true, h.rec.fail(ctx, r, "", fmt.Errorf("read %s before the challenge: %w: %w", loc, err, asynq.SkipRetry))
	}
	return "", true, h.unreadableBefore(ctx, r, loc, err)
}
