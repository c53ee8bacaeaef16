package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// CreateJob handles logpush:create_job: the Logpush job of a validated
// destination, created once.
func (h *handlers) CreateJob(ctx context.Context, t *asynq.Task) error {
	return h.observe(ctx, t, h.createJob)
}

// jobListTTL is how long the job stage trusts a zone's job listing: long
// enough for a batch's rows of one zone to share it.
const jobListTTL = 30 * time.Minute

// createJob creates the destination's Logpush job: after validation, with
// the validated token, or, for a destination that needs no challenge, at
// once. A job is (scope, id, dataset, destination_conf): a job of the zone
// or account with the same dataset and the byte-identical conf (a crash
// after CreateJob, or a re-run) is reported, not duplicated; a job of
// another dataset to the same destination is another job. The zone's jobs
// are listed once per batch (jobCache), not per row.
func (h *handlers) createJob(ctx context.Context, t *asynq.Task) error {
	var p tasks.CreateJobPayload
	r, err := h.start(ctx, t, &p, &p.Dest)
	if err != nil {
		return err
	}
	done := events.Validated
	if !r.conf.NeedsChallenge() {
		done = events.NotRequired
	}
	if r.d.Job == nil {
		return h.rec.fail(ctx, r, p.Filename, fmt.Errorf("create job: payload has no job: %w", asynq.SkipRetry))
	}
	if _, err := h.enter(ctx, r, events.CreatingJob, events.StageJob); err != nil {
		return err
	}
	if r.conf.NeedsChallenge() && p.Token == "" {
		return h.rec.fail(ctx, r, p.Filename, fmt.Errorf("create job: no validated ownership challenge: %w", asynq.SkipRetry))
	}
	tg := target(r.d)
	key := jobScope{batch: r.d.BatchID, round: r.d.Round, target: tg}
	retried, _ := asynq.GetRetryCount(ctx)
	j := r.d.Job
	existing, found, err := h.jobs.find(ctx, key, j.Dataset, r.d.DestinationConf, retried > 0,
		func(ctx context.Context) ([]cloudflare.Job, error) {
			if err := h.wait(ctx, r); err != nil {
				return nil, err
			}
			return r.t.API.ListJobs(ctx, tg)
		})
	if err != nil {
		return h.apiError(ctx, r, p.Filename, err)
	}
	if found {
		r.jobID, r.jobExisted = existing.ID, true
		return h.jobExists(ctx, r, done, p.Filename, existing)
	}
	opts := j.OutputOptions
	if opts == nil && j.LogpullOptions == "" {
		// No output_options (nor the deprecated logpull_options, which
		// output_options would override): the dataset's fields.
		opts, err = h.fields.defaultOptions(ctx, r.d.Credential, tg, j.Dataset, func(ctx context.Context) (map[string]string, error) {
			if err := h.wait(ctx, r); err != nil {
				return nil, err
			}
			return r.t.API.Fields(ctx, tg, j.Dataset)
		})
		if err != nil {
			return h.apiError(ctx, r, p.Filename, err)
		}
	}
	if err := h.wait(ctx, r); err != nil {
		return err
	}
	spec := *j
	spec.OutputOptions = opts
	job, err := r.t.API.CreateJob(ctx, tg, cloudflare.JobRequest{DestinationConf: r.d.DestinationConf, OwnershipChallenge: p.Token, JobSpec: spec})
	if err != nil {
		if classify(err) == transient {
			h.jobs.forget(key) // the job may have been made: look again before the retry creates
		}
		return h.apiError(ctx, r, p.Filename, err)
	}
	h.jobs.add(key, job)
	r.jobID = job.ID
	return h.jobExists(ctx, r, done, p.Filename, job)
}
