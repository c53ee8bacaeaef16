package worker

import (
	"context"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// UpdateJob handles logpush:update_job: the last stage of a migration,
// once the new conf validated (or needs no challenge).
func (h *handlers) UpdateJob(ctx context.Context, t *asynq.Task) error {
	return h.observe(ctx, t, h.updateJob)
}

// handOver ends a migration's validation: the job stage is a task of its
// own, which carries the validated token.
func (h *handlers) handOver(ctx context.Context, r *run, filename, token string) error {
	h.release(ctx, r) // the job stage reads no file
	task, err := tasks.NewUpdateJobTask(tasks.UpdateJobPayload{Dest: r.d, Filename: filename, Token: token}, h.cfg.Task)
	if err != nil {
		return err
	}
	return h.enqueue(ctx, task)
}

// updateJob reads the job and PUTs it with the new destination_conf, the
// validated token and every other setting as read (output_options whole:
// a PUT replaces it). The job changes only here, after its new conf
// validated; a job that is not the one selected (another dataset, or a
// conf that changed since the selection) is failed untouched. A job
// already on the new conf (this task ran before and the PUT went through)
// is reported migrated without a second PUT: a job moves once.
//
// With Update.Copy the job stays, and a second job like it is created on
// the new conf, unless the zone or account has one (a run before made it).
func (h *handlers) updateJob(ctx context.Context, t *asynq.Task) error {
	var p tasks.UpdateJobPayload
	r, err := h.start(ctx, t, &p, &p.Dest)
	if err != nil {
		return err
	}
	u := r.d.Update
	if u == nil {
		return h.rec.fail(ctx, r, p.Filename, fmt.Errorf("update job: payload has no job: %w", asynq.SkipRetry))
	}
	if _, err := h.enter(ctx, r, events.UpdatingJob, events.StageJob); err != nil {
		return err
	}
	if r.conf.NeedsChallenge() && p.Token == "" {
		return h.rec.fail(ctx, r, p.Filename, fmt.Errorf("update job: no validated ownership challenge: %w", asynq.SkipRetry))
	}
	tg := target(r.d)
	if err := h.wait(ctx, r); err != nil {
		return err
	}
	job, err := r.t.API.GetJob(ctx, tg, u.ID)
	if err != nil {
		return h.apiError(ctx, r, p.Filename, err)
	}
	if u.Dataset != "" && job.Dataset != u.Dataset {
		return h.rec.fail(ctx, r, p.Filename, fmt.Errorf("job %d pushes %s now, not %s: left as it is: %w", u.ID, job.Dataset, u.Dataset, asynq.SkipRetry))
	}
	if u.Copy {
		return h.copyJob(ctx, r, p, job)
	}
	if job.DestinationConf == r.d.DestinationConf {
		r.jobExisted = true
		return h.rec.outcome(ctx, r, events.Migrated, p.Filename, nil)
	}
	if u.From != "" && tasks.ConfDigest(job.DestinationConf) != u.From {
		return h.rec.fail(ctx, r, p.Filename, fmt.Errorf("job %d changed its destination since it was selected: left as it is: %w", u.ID, asynq.SkipRetry))
	}
	if err := h.wait(ctx, r); err != nil {
		return err
	}
	if _, err := r.t.API.UpdateJob(ctx, tg, u.ID, cloudflare.UpdateFrom(job, r.d.DestinationConf, p.Token)); err != nil {
		if classify(err) == stale {
			return h.rechallenge(ctx, r, p.Filename, err)
		}
		return h.apiError(ctx, r, p.Filename, err)
	}
	return h.rec.outcome(ctx, r, events.Migrated, p.Filename, nil)
}

// copyJob creates the second job of a --copy migration: job's settings on
// the new conf. Cloudflare accepts several jobs of one dataset to one
// destination, so the zone's jobs are looked at first: a job of the
// dataset on the new conf is the copy a run before made.
func (h *handlers) copyJob(ctx context.Context, r *run, p tasks.UpdateJobPayload, job cloudflare.Job) error {
	tg := target(r.d)
	if err := h.wait(ctx, r); err != nil {
		return err
	}
	jobs, err := r.t.API.ListJobs(ctx, tg)
	if err != nil {
		return h.apiError(ctx, r, p.Filename, err)
	}
	for _, j := range jobs {
		if j.Dataset == job.Dataset && j.DestinationConf == r.d.DestinationConf {
			r.newJobID, r.jobExisted = j.ID, true
			return h.rec.outcome(ctx, r, events.Copied, p.Filename, nil)
		}
	}
	if err := h.wait(ctx, r); err != nil {
		return err
	}
	made, err := r.t.API.CreateJob(ctx, tg, cloudflare.UpdateFrom(job, r.d.DestinationConf, p.Token))
	if err != nil {
		if classify(err) == stale {
			return h.rechallenge(ctx, r, p.Filename, err)
		}
		return h.apiError(ctx, r, p.Filename, err)
	}
	r.newJobID = made.ID
	return h.rec.outcome(ctx, r, events.Copied, p.Filename, nil)
}
