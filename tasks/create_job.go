package tasks

import (
	"encoding/json"
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

// JobSpec is the job a destination gets after validation. It holds no
// secret: the conf and the token travel beside it. ParseJobSpec sets
// Enabled unless the row says enabled=false; the job stage gives a job
// without OutputOptions (and without LogpullOptions) the dataset's fields.
type JobSpec struct {
	Dataset                  string          `json:"dataset"`
	Name                     string          `json:"name,omitempty"`
	Enabled                  bool            `json:"enabled,omitempty"`
	OutputOptions            json.RawMessage `json:"output_options,omitempty"`
	LogpullOptions           string          `json:"logpull_options,omitempty"`
	Frequency                string          `json:"frequency,omitempty"`
	MaxUploadBytes           int             `json:"max_upload_bytes,omitempty"`
	MaxUploadIntervalSeconds int             `json:"max_upload_interval_seconds,omitempty"`
	MaxUploadRecords         int             `json:"max_upload_records,omitempty"`
	Filter                   string          `json:"filter,omitempty"`
}

// ParseJobSpec reads a job from an input row's extra columns. Errors are
// *FieldError naming the column.
func ParseJobSpec(extra map[string]string) (*JobSpec, error) {
	get := func(k string) string { return strings.TrimSpace(extra[k]) }
	// Enabled unless the row says enabled=false: onboarding ends when logs
	// flow, and Cloudflare creates a job disabled unless asked.
	j := &JobSpec{Dataset: get("dataset"), Name: get("job_name"), LogpullOptions: get("logpull_options"),
		Frequency: get("frequency"), Filter: get("filter"), Enabled: true}
	if j.Dataset == "" {
		return nil, &FieldError{Field: "dataset", Msg: "required with --create-job (e.g. http_requests)"}
	}
	if !cloudflare.OnlyChars(j.Dataset, "_-") {
		return nil, &FieldError{Field: "dataset", Msg: "use letters, digits, '_' and '-'"}
	}
	if j.Name != "" && (!cloudflare.OnlyChars(j.Name, ".-") || len(j.Name) > 512) {
		return nil, &FieldError{Field: "job_name", Msg: "use letters, digits, '.' and '-', at most 512"}
	}
	if v := get("enabled"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, &FieldError{Field: "enabled", Msg: "want true or false"}
		}
		j.Enabled = b
	}
	if v := get("output_options"); v != "" {
		if !json.Valid([]byte(v)) || !strings.HasPrefix(v, "{") {
			return nil, &FieldError{Field: "output_options", Msg: "want a JSON object"}
		}
		j.OutputOptions = json.RawMessage(v)
	}
	if j.Filter != "" && !json.Valid([]byte(j.Filter)) {
		return nil, &FieldError{Field: "filter", Msg: "want a JSON document"}
	}
	if j.Frequency != "" && j.Frequency != "high" && j.Frequency != "low" {
		return nil, &FieldError{Field: "frequency", Msg: "want high or low"}
	}
	for _, n := range []struct {
		col      string
		dst      *int
		min, max int
	}{
		{"max_upload_bytes", &j.MaxUploadBytes, 5_000_000, 1_000_000_000},
		{"max_upload_interval_seconds", &j.MaxUploadIntervalSeconds, 30, 300},
		{"max_upload_records", &j.MaxUploadRecords, 1_000, 1_000_000},
	} {
		v := get(n.col)
		if v == "" {
			continue
		}
		x, err := strconv.Atoi(v)
		if err != nil || x < n.min || x > n.max {
			return nil, &FieldError{Field: n.col, Msg: fmt.Sprintf("want a whole number from %d to %d", n.min, n.max)}
		}
		*n.dst = x
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
	return newTask(TypeCreateJob, "jo", p, p.Dest, o, 0)
}
