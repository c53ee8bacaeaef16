package worker

import (
	"context"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// Validate handles logpush:validate: submit the token.
func (h *handlers) Validate(ctx context.Context, t *asynq.Task) error {
	return h.observe(ctx, t, h.validate)
}

func (h *handlers) validate(ctx context.Context, t *asynq.Task) error {
	var p tasks.ValidatePayload
	r, err := h.start(ctx, t, &p, &p.Dest)
	if err != nil {
		return err
	}
	if err := h.wait(ctx, r); err != nil {
		return err
	}
	if _, err := h.enter(ctx, r, events.Validating, events.StageValidate); err != nil {
		return err
	}
	return h.submitToken(ctx, r, p.Filename, p.Token, false)
}

// submitToken calls validate with token, after the budget was waited for.
// fromPoll says the poll that found the file calls it: its validate attempt
// is not counted yet, and the outcome counts it with its own transition, so
// that only the rarer paths pay a round trip. The validate task entered its
// stage, which counted the attempt.
func (h *handlers) submitToken(ctx context.Context, r *run, filename, token string, fromPoll bool) error {
	counted := !fromPoll
	if !counted && (r.d.Job != nil || r.d.Update != nil) {
		// The job stage is a task of its own: count before handing over.
		if _, err := h.enter(ctx, r, events.Validating, events.StageValidate); err != nil {
			return err
		}
		counted = true
	}
	if _, err := r.t.API.Validate(ctx, target(r.d), r.d.DestinationConf, token); err != nil {
		if !counted {
			if _, eerr := h.enter(ctx, r, events.Polling, events.StageValidate); eerr != nil {
				return eerr
			}
		}
		if classify(err) == stale {
			return h.rechallenge(ctx, r, filename, err)
		}
		return h.apiError(ctx, r, filename, err)
	}
	r.t.Auth.Success(ctx)
	r.t.Check.succeeded(ctx)
	if fromPoll {
		h.metrics.PollAttempts.Observe(float64(r.st.Attempts.Poll + r.looks))
	}
	if r.d.Update != nil {
		return h.handOver(ctx, r, filename, token)
	}
	if r.d.Job != nil {
		h.release(ctx, r) // the job stage reads no file
		task, err := tasks.NewCreateJobTask(tasks.CreateJobPayload{Dest: r.d, Filename: filename, Token: token}, h.cfg.Task)
		if err != nil {
			return err
		}
		return h.enqueue(ctx, task)
	}
	if !counted {
		r.attempt = events.StageValidate
	}
	return h.rec.outcome(ctx, r, events.Validated, filename, nil)
}
