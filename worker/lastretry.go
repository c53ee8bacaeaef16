package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// A task that returns an error on its last allowed attempt, or with
// asynq.SkipRetry, is archived by asynq with its payload: the conf and its
// secrets, at rest in Redis for as long as the archive keeps it. The
// handlers record a failure and end with nil wherever they decide to give
// up (fail); lastAttempt catches the rest: an error no handler turned into
// an outcome (a Redis script error, say) on the task's last attempt.

// runSlot carries a task's run from start to observe, so that observe can
// record the failure of a task whose handler returned a bare error, and
// the bound of its run (runContext).
type runSlot struct {
	r       *run
	timeout time.Duration
}

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

// runContext bounds a handler's run: it ends tasks.TimeoutGrace before
// asynq's deadline for the task (ctx's), which is the task's Timeout plus
// that grace (tasks.Options), so that the run ends at the Timeout and
// lastAttempt can still record the failure of a last attempt that ran out
// of it before asynq's deadline. asynq v0.26 does not wait for a handler
// past its deadline (processor.go, processor.exec): it selects on the
// handler's result and the task's context, and when the context is done
// first it calls handleFailedMessage with ctx.Err(), which archives the
// task, payload and all, once msg.Retried >= msg.Retry, whatever the
// handler returns later. A handler that returns before it has its own
// result handled: RevokeTask and nil are markAsDone's (the task deleted;
// nil with a Retention, markAsComplete's). A task with no more than the
// grace left (enqueued by an older producer, whose asynq timeout is the
// Timeout alone) keeps half of its time for the record.
func runContext(ctx context.Context, slot *runSlot) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	grace := tasks.TimeoutGrace
	if left := time.Until(dl); left <= grace {
		grace = left / 2
	}
	end := dl.Add(-grace)
	slot.timeout = time.Until(end).Round(time.Second)
	return context.WithDeadline(ctx, end)
}

// overrunRecord bounds the record of the failure of a task whose handler
// ran past asynq's own deadline (its context is done).
const overrunRecord = 5 * time.Second

// lastAttempt turns err, when asynq would archive the task for it, into a
// recorded failure; runCtx is the context the handler ran with (runContext).
// asynq v0.26 archives a task that returns any error once its retries are
// spent, a snooze too: a poll that snoozes after its task's retries were
// spent on transient errors gives up here (errFailed: the task is deleted,
// not archived). A run that timed out (runCtx's deadline, ctx's not yet)
// fails with the timeout named. When the failure cannot be recorded either
// (Redis refuses the script too), the task is revoked (asynq.RevokeTask:
// deleted like a task done, where asynq v0.26 archives any other error of
// a last attempt, a snooze too): the destination stays in flight in the
// ledger, where status shows it, and retry rebuilds its task from the
// input file; the conf is not kept.
//
// A task whose own context is done is asynq's already (processor.exec
// handled it when it was done): a shutdown's (canceled) was requeued
// without counting a retry and err is returned as is; a deadline's on the
// last attempt was archived, and the destination's failure is recorded
// on a context detached from the dead one, so that it does not stay in
// flight.
func (h *handlers) lastAttempt(ctx, runCtx context.Context, slot *runSlot, err error) error {
	if err == nil || errors.Is(err, errSuperseded) || errors.Is(err, errFailed) || slot.r == nil {
		return err
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	spent := ok && retried >= maxRetry
	if ctx.Err() != nil {
		// asynq judged ctx.Err(), not err: archived when spent.
		if spent && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			h.overran(ctx, slot, err)
		}
		return err
	}
	if !spent && !errors.Is(err, asynq.SkipRetry) {
		return err // asynq retries it
	}
	if RedisUnreachable(err) {
		h.awaitRedis(ctx, err)
	}
	cause := err
	if !errors.Is(err, asynq.SkipRetry) {
		cause = fmt.Errorf("gave up after %d retries: %w", retried, err)
	}
	if errors.Is(runCtx.Err(), context.DeadlineExceeded) {
		cause = fmt.Errorf("timed out (the task's timeout: %s): %w", slot.timeout, cause)
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

// overran records the failure of the task's destination when its last
// attempt ran past asynq's deadline for the task: asynq archived the task
// (see runContext), and no later attempt would record it.
func (h *handlers) overran(ctx context.Context, slot *runSlot, err error) {
	r := slot.r
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), overrunRecord)
	defer cancel()
	cause := fmt.Errorf("timed out (the task's timeout: %s) and ran on past asynq's deadline: %w", slot.timeout, err)
	record := "recorded"
	if ferr := h.rec.fail(rctx, r, "", cause); !errors.Is(ferr, errFailed) {
		record = r.clean(ferr.Error())
	}
	r.log.Error("the task's last attempt ran past asynq's deadline: asynq archived it with its payload",
		"err", r.clean(err.Error()), "failure", record)
}
