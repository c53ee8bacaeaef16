package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// Health handles logpush:health: one read of a watched job's health.
func (h *handlers) Health(ctx context.Context, t *asynq.Task) error {
	return h.observe(ctx, t, h.health)
}

// jobExists ends the job stage, after deleting the challenge file (see
// removeChallengeFile). With watching on and an enabled job, the
// destination's done event (validated or not_required, with the job) is
// emitted as it moves on to Watching, and a health task reads the job
// after HealthInterval; otherwise the destination ends done. The health
// task is enqueued first (its TaskID makes a second enqueue a no-op), so
// that no destination is left watching without one.
func (h *handlers) jobExists(ctx context.Context, r *run, done events.State, filename string, job cloudflare.Job) error {
	h.removeChallengeFile(ctx, r, filename)
	if h.cfg.HealthDeadline <= 0 || !job.Enabled {
		return h.rec.outcome(ctx, r, done, filename, nil)
	}
	task, err := tasks.NewHealthTask(tasks.HealthPayload{Dest: r.d, JobID: job.ID, JobExisted: r.jobExisted, Filename: filename,
		Deadline: h.now().Add(h.cfg.HealthDeadline)}, h.cfg.Task, h.cfg.HealthInterval)
	if err != nil {
		return err
	}
	if err := h.enqueue(ctx, task); err != nil {
		return err
	}
	return h.rec.emit(ctx, r, events.Watching, done, filename, nil)
}

// errJobFailing carries Cloudflare's error_message of a failing job
// (redacted by the client) into the job_failing event.
type errJobFailing struct {
	id      int
	message string
}

func (e *errJobFailing) Error() string {
	if e.message == "" {
		return fmt.Sprintf("logpush job %d is failing (Cloudflare gave no error_message)", e.id)
	}
	return fmt.Sprintf("logpush job %d is failing: %s", e.id, e.message)
}

// health reads the job once: last_error set (the job is failing, even if
// it pushed before) ends it job_failing with Cloudflare's message;
// last_complete set ends it flowing; neither by the deadline ends it
// no_data_yet, which is no failure. Otherwise the task snoozes for
// HealthInterval (no worker slot held, no retry spent), the last read
// falling on the deadline.
func (h *handlers) health(ctx context.Context, t *asynq.Task) error {
	var p tasks.HealthPayload
	r, err := h.start(ctx, t, &p, &p.Dest)
	if err != nil {
		return err
	}
	if p.JobID < 1 {
		return h.rec.fail(ctx, r, p.Filename, fmt.Errorf("job health: payload has no job id: %w", asynq.SkipRetry))
	}
	r.jobID, r.jobExisted = p.JobID, p.JobExisted
	if _, err := h.enter(ctx, r, events.Watching, ""); err != nil {
		return err
	}
	if err := h.wait(ctx, r); err != nil {
		return err
	}
	job, err := r.t.API.GetJob(ctx, target(r.d), p.JobID)
	if err != nil {
		return h.apiError(ctx, r, p.Filename, err)
	}
	r.t.Auth.Success(ctx)
	switch {
	case !job.LastError.IsZero() || job.ErrorMessage != "":
		return h.rec.outcome(ctx, r, events.JobFailing, p.Filename, &errJobFailing{id: job.ID, message: job.ErrorMessage})
	case !job.LastComplete.IsZero():
		return h.rec.outcome(ctx, r, events.Flowing, p.Filename, nil)
	case !job.Enabled:
		// Disabled meanwhile (by someone, or by Cloudflare after a day of
		// failures): it will not push.
		return h.rec.outcome(ctx, r, events.NoDataYet, p.Filename, errors.New("the job was disabled before it pushed"))
	}
	left := p.Deadline.Sub(h.now())
	if left <= 0 {
		return h.rec.outcome(ctx, r, events.NoDataYet, p.Filename, nil)
	}
	return &SnoozeError{Delay: min(h.cfg.HealthInterval, left), Reason: "job has not pushed yet"}
}
