package worker

import (
	"context"
	"errors"
	"fmt"

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

// lastAttempt turns err, when asynq would archive the task for it, into a
// recorded failure. asynq v0.26 archives a task that returns any error
// once its retries are spent, a snooze too: a poll that snoozes after
// its task's retries were spent on transient errors gives up here (errFailed: the task is deleted, not archived). When
// the failure cannot be recorded either (Redis refuses the script too),
// the task is revoked (asynq.RevokeTask: deleted like a task done, since
// asynq v0.26 archives any other error of a last attempt, a snooze too):
// the destination stays in flight in the ledger, where status shows it,
// and retry rebuilds its task from the input file; the conf is not kept.
// A task whose context is done (shutdown, the task's timeout) is asynq's
// to requeue or retry: err is returned as is.
func (h *handlers) lastAttempt(ctx context.Context, slot *runSlot, err error) error {
	if err == nil || errors.Is(err, errSuperseded) || errors.Is(err, errFailed) || slot.r == nil || ctx.Err() != nil {
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
	ferr := h.rec.fail(ctx, slot.r, "", cause)
	if errors.Is(ferr, errFailed) {
		return ferr
	}
	slot.r.log.Error("the failure of the task's last attempt could not be recorded: the task is dropped, "+
		"the destination stays in flight (retry rebuilds it from the input file)",
		"err", slot.r.clean(err.Error()), "record_err", slot.r.clean(ferr.Error()))
	return fmt.Errorf("%w: recording the failure: %w", asynq.RevokeTask, ferr)
}
