package tasks

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
)

// TypeCreateJob creates the Logpush job once ownership is validated (opt-in:
// enqueue --create-job).
const TypeCreateJob = "logpush:create_job"

// JobColumns are the input columns (CSV) or keys (JSONL) that describe the
// job to create; dataset is required with --create-job.
var JobColumns = []string{"dataset", "job_name", "enabled", "output_options", "logpull_options", "frequency",
	"max_upload_bytes", "max_upload_interval_seconds", "max_upload_records", "filter"}

// JobSpec is the job a destination gets after validation:
// cloudflare.JobSpec, whose Check holds Cloudflare's rules for every field.
// It holds no secret: the conf and the token travel beside it. ParseJobSpec
// sets Enabled unless the row says enabled=false; the job stage gives a job
// without OutputOptions (and without LogpullOptions) the dataset's fields.
type JobSpec = cloudflare.JobSpec

// jobColumn is the input column of each API field whose names differ.
var jobColumn = map[string]string{"name": "job_name"}

// ParseJobSpec reads a job from an input row's extra columns and checks it
// with cloudflare.JobSpec.Check, the rules CreateJob applies, so that a row
// Cloudflare would refuse fails its line check rather than its job stage.
// Errors are *FieldError naming the column.
func ParseJobSpec(extra map[string]string) (*JobSpec, error) {
	get := func(k string) string { return strings.TrimSpace(extra[k]) }
	// Enabled unless the row says enabled=false: onboarding ends when logs
	// flow, and Cloudflare creates a job disabled unless asked.
	j := &JobSpec{Dataset: get("dataset"), Name: get("job_name"), LogpullOptions: get("logpull_options"),
		Frequency: get("frequency"), Filter: get("filter"), Enabled: true}
	if j.Dataset == "" {
		return nil, &FieldError{Field: "dataset", Msg: "required with --create-job (e.g. http_requests)"}
	}
	if v := get("enabled"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, &FieldError{Field: "enabled", Msg: "want true or false"}
		}
		j.Enabled = b
	}
	if v := get("output_options"); v != "" {
		if !strings.HasPrefix(v, "{") {
			return nil, &FieldError{Field: "output_options", Msg: "want a JSON object"}
		}
		j.OutputOptions = json.RawMessage(v)
	}
	for i, dst := range []*int{&j.MaxUploadBytes, &j.MaxUploadIntervalSeconds, &j.MaxUploadRecords} {
		b := cloudflare.UploadBounds[i]
		v := get(b.Field)
		if v == "" {
			continue
		}
		x, err := strconv.Atoi(v)
		if err != nil || x == 0 { // 0 is Cloudflare's default: a row leaves the column empty for it
			return nil, &FieldError{Field: b.Field, Msg: fmt.Sprintf("want a whole number from %d to %d", b.Min, b.Max)}
		}
		*dst = x
	}
	var fe *cloudflare.FieldError
	if err := j.Check(); errors.As(err, &fe) {
		return nil, &FieldError{Field: cmp.Or(jobColumn[fe.Field], fe.Field), Msg: fe.Msg}
	} else if err != nil {
		return nil, err
	}
	return j, nil
}

// CreateJobPayload asks for the job of a validated destination.
type CreateJobPayload struct {
	Dest
	Filename string `json:"filename"`
	// Token is the validated ownership challenge. It is a secret.
	Token string `json:"ownership_challenge"`
}

// NewCreateJobTask returns the logpush:create_job task.
func NewCreateJobTask(p CreateJobPayload, o Options) (*asynq.Task, error) {
	return newTask(TypeCreateJob, p, p.Dest, o, 0)
}
