package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// A task that returns an error on its last allowed attempt, or with
// asynq.SkipRetry, is archived by asynq with its payload: the conf and its
// secrets, at rest in Redis for as long as the archive keeps it. The
// handlers record a failure and end with nil wherever they decide to give
// up (fail); lastAttempt catches the rest: an error no handler turned into
// an outcome (a Redis script error, say) on the task's last attempt.

// runSlot carries a task's run from start to observe, so that observe can
// record the failure of a task whose handler returned a bare error.
type runSlot struct{ r *run }

type runSlotKey struct{}

func withRunSlot(ctx context.Context) (context.Context, *runSlot) {
	s := &runSlot{}
	return context.WithValue(ctx, runSlotKey{}, s), s
}

// noteRun hands r to the task's observe (none: a handler called outside
// observe, as the inline poll is).
func noteRun(ctx context.Context, r *run) {
	if s, ok := ctx.Value(runSlotKey{}).(*runSlot); ok && s.r == nil {
		s.r = r
	}
}

// lastAttemptSnooze is how long a task whose failure could not be recorded
// waits before trying again: a snooze, not a retry, so that it is never
// archived with its payload.
const lastAttemptSnooze = time.Minute

// lastAttempt turns err, when asynq would archive the task for it, into a
// recorded failure (errFailed: the task is deleted, not archived). When
// the failure cannot be recorded either (Redis refuses the script too),
// the task snoozes and tries again: the destination is neither lost nor
// archived with the conf. A task whose context is done (shutdown, the
// task's timeout) is asynq's to requeue or retry: err is returned as is.
func (h *Handlers) lastAttempt(ctx context.Context, slot *runSlot, err error) error {
	var s *SnoozeError
	if err == nil || errors.Is(err, errSuperseded) || errors.Is(err, errFailed) || errors.As(err, &s) ||
		slot.r == nil || ctx.Err() != nil {
		return err
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	if !errors.Is(err, asynq.SkipRetry) && (!ok || retried < maxRetry) {
		return err // asynq retries it
	}
	if RedisUnreachable(err) {
		h.awaitRedis(ctx, err)
	}
	cause := err
	if !errors.Is(err, asynq.SkipRetry) {
		cause = fmt.Errorf("gave up after %d retries: %w", retried, err)
	}
	ferr := h.fail(ctx, slot.r, "", cause)
	if errors.Is(ferr, errFailed) {
		return ferr
	}
	slot.r.log.Error("the failure of the last attempt could not be recorded; the task will try again",
		"err", slot.r.clean(err.Error()), "record_err", slot.r.clean(ferr.Error()))
	return &SnoozeError{Delay: lastAttemptSnooze, Reason: "recording the failure of the last attempt: " + slot.r.clean(ferr.Error())}
}
