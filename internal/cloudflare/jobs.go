package cloudflare

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/redact"
)

// Limits of Cloudflare's schema for the job fields.
const (
	// MaxDataset is dataset's maxLength.
	MaxDataset = 256
	// MaxJobName is name's maxLength.
	MaxJobName = 512
	// MaxLogpullOptions is logpull_options' maxLength.
	MaxLogpullOptions = 4096
)

// Job is a Logpush job as Cloudflare lists or creates it. Fields Cloudflare
// answers null are zero.
//
// DestinationConf is kept raw, exactly as Cloudflare answered it, so that a
// caller can compare it byte for byte with the conf it onboarded; it may
// hold secrets. String, GoString, Format and LogValue show it redacted, but
// the field itself must never be logged or put in an event, metric or
// error: show redact.String(DestinationConf).
type Job struct {
	// ID is Cloudflare's id of the job, at least 1.
	ID int
	// Dataset is the dataset pushed, such as "http_requests".
	Dataset string
	// Name is the job's human-readable name; not unique.
	Name string
	// DestinationConf is where the job pushes, raw: it may hold secrets
	// (access keys, SAS signatures, header_* values, tokens in URLs).
	DestinationConf string
	// Enabled reports whether the job pushes logs.
	Enabled bool
	// Kind is "" for a Logpush job, "edge" for Edge Log Delivery.
	Kind string
	// Frequency is the deprecated "high" or "low".
	Frequency string
	// LogpullOptions is the deprecated options string.
	LogpullOptions string
	// OutputOptions is the output_options object as answered; nil when
	// null or absent.
	OutputOptions json.RawMessage
	// Filter is the job's filter, a JSON document in a string.
	Filter string
	// MaxUploadBytes, MaxUploadIntervalSeconds and MaxUploadRecords bound a
	// batch of logs; 0 when unset or disabled.
	MaxUploadBytes, MaxUploadIntervalSeconds, MaxUploadRecords int
	// LastComplete is the end of the last range of logs pushed; zero when
	// the job has not pushed yet (or the time could not be read).
	LastComplete time.Time
	// LastError is when the job last failed; zero when it is not failing.
	LastError time.Time
	// ErrorMessage says why the job is failing, redacted; empty when it is
	// not failing.
	ErrorMessage string
}

// String describes the job with its destination redacted.
func (j Job) String() string {
	state := "disabled"
	if j.Enabled {
		state = "enabled"
	}
	return fmt.Sprintf("logpush job %d (%s, %s, %s)", j.ID, j.Dataset, redact.String(j.DestinationConf), state)
}

// GoString is String, so that %#v does not print the raw destination.
func (j Job) GoString() string { return j.String() }

// Format prints String for every verb, so that no verb reaches the raw
// destination.
func (j Job) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, j.String()) }

// LogValue logs the job with its destination redacted.
func (j Job) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("id", j.ID), slog.String("dataset", j.Dataset), slog.String("name", j.Name),
		slog.String("destination", redact.String(j.DestinationConf)), slog.Bool("enabled", j.Enabled))
}

// JobRequest is the body of CreateJob. Only the fields set are sent: the
// zero value of a field means "Cloudflare's default", which also keeps the
// request inside the schema's enums and ranges (0 is outside them).
//
// DestinationConf and OwnershipChallenge are secrets: String, GoString,
// Format and LogValue redact the one and never show the other.
type JobRequest struct {
	// DestinationConf is where the job pushes, byte-identical to the conf
	// whose ownership was proven. Required.
	DestinationConf string `json:"destination_conf"`
	// OwnershipChallenge is the token Cloudflare wrote into the
	// destination. Required by Cloudflare for destinations that need a
	// challenge (AWS S3, GCS, Azure, Sumo Logic).
	OwnershipChallenge string `json:"ownership_challenge,omitempty"`
	// JobSpec is every other setting of the job, sent beside the conf and
	// the challenge (its fields are the body's own keys).
	JobSpec
}

// String describes the request with its destination redacted and without
// the ownership challenge.
func (r JobRequest) String() string {
	return fmt.Sprintf("logpush job request (%s, %s, challenge set: %t)", r.Dataset, redact.String(r.DestinationConf), r.OwnershipChallenge != "")
}

// GoString is String, so that %#v does not print the secrets.
func (r JobRequest) GoString() string { return r.String() }

// Format prints String for every verb, so that no verb reaches the secrets.
func (r JobRequest) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, r.String()) }

// LogValue logs the request with its destination redacted and without the
// ownership challenge.
func (r JobRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("dataset", r.Dataset), slog.String("name", r.Name),
		slog.String("destination", redact.String(r.DestinationConf)), slog.Bool("enabled", r.Enabled))
}

// check checks the request against the schema, so that a request Cloudflare
// would refuse is not sent. It never quotes the conf or the challenge.
func (r JobRequest) check() error {
	if err := checkConf(r.DestinationConf); err != nil {
		return err
	}
	if r.OwnershipChallenge != "" {
		if err := checkChallenge(r.OwnershipChallenge); err != nil {
			return err
		}
	}
	return r.JobSpec.Check()
}

// Spec is the job's settings besides its destination, as read.
func (j Job) Spec() JobSpec {
	return JobSpec{Dataset: j.Dataset, Name: j.Name, Enabled: j.Enabled, OutputOptions: j.OutputOptions,
		LogpullOptions: j.LogpullOptions, Frequency: j.Frequency, MaxUploadBytes: j.MaxUploadBytes,
		MaxUploadIntervalSeconds: j.MaxUploadIntervalSeconds, MaxUploadRecords: j.MaxUploadRecords, Filter: j.Filter, Kind: j.Kind}
}

// JobSpec is a Logpush job's settings besides its destination: what an
// input row asks for with --create-job (tasks.ParseJobSpec reads it, and a
// destination's task carries it) and what CreateJob and UpdateJob send
// beside the conf and the challenge. It holds no secret. The zero value of
// a field means Cloudflare's default. Check holds Cloudflare's rules for
// every field: the line check and CreateJob apply the same ones.
type JobSpec struct {
	// Dataset is the dataset to push, such as "http_requests" (at most
	// MaxDataset characters of [a-zA-Z0-9_-]).
	Dataset string `json:"dataset,omitempty"`
	// Name is a human-readable name, such as the domain (at most
	// MaxJobName characters of [a-zA-Z0-9.-]).
	Name string `json:"name,omitempty"`
	// Enabled starts the job at once; false creates it disabled.
	Enabled bool `json:"enabled,omitempty"`
	// OutputOptions is the output_options object, passed through as is
	// (see JobRequest). Nil: not sent.
	OutputOptions json.RawMessage `json:"output_options,omitempty"`
	// LogpullOptions is the deprecated options string (at most
	// MaxLogpullOptions characters, no spaces).
	LogpullOptions string `json:"logpull_options,omitempty"`
	// Frequency is the deprecated "high" or "low".
	Frequency string `json:"frequency,omitempty"`
	// MaxUploadBytes bounds a batch's uncompressed size (UploadBounds).
	MaxUploadBytes int `json:"max_upload_bytes,omitempty"`
	// MaxUploadIntervalSeconds bounds a batch's interval (UploadBounds).
	MaxUploadIntervalSeconds int `json:"max_upload_interval_seconds,omitempty"`
	// MaxUploadRecords bounds a batch's lines (UploadBounds).
	MaxUploadRecords int `json:"max_upload_records,omitempty"`
	// Filter selects the events pushed: a JSON document.
	Filter string `json:"filter,omitempty"`
	// Kind is "" for a Logpush job or "edge" for Edge Log Delivery.
	Kind string `json:"kind,omitempty"`
}

// UploadBounds are the ranges of the max_upload_* fields in Cloudflare's
// schema (0, unset, means Cloudflare's default).
var UploadBounds = []struct {
	Field    string
	Min, Max int
}{
	{"max_upload_bytes", 5_000_000, 1_000_000_000},
	{"max_upload_interval_seconds", 30, 300},
	{"max_upload_records", 1_000, 1_000_000},
}

// FieldError is a job setting outside Cloudflare's schema. It never quotes
// a secret: job settings hold none.
type FieldError struct {
	// Field is the API's name of the field, such as "dataset".
	Field string
	// Msg says what the field must be, in lower case.
	Msg string
}

// Error returns "<field>: <msg>".
func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// CheckDataset checks a dataset name against Cloudflare's schema: up to
// MaxDataset characters of [a-zA-Z0-9_-]. An empty name passes (a caller
// that requires one says so). The error is a *FieldError.
func CheckDataset(dataset string) error {
	if len(dataset) > MaxDataset || !OnlyChars(dataset, "_-") {
		return &FieldError{Field: "dataset", Msg: fmt.Sprintf("use up to %d letters, digits, '_' and '-'", MaxDataset)}
	}
	return nil
}

// Check checks the settings against Cloudflare's schema, so that a job
// Cloudflare would refuse is refused before any call. The error joins one
// *FieldError per field outside the schema, in field order; nil when every
// field fits.
func (s JobSpec) Check() error {
	var errs []error
	bad := func(field, msg string) { errs = append(errs, &FieldError{Field: field, Msg: msg}) }
	if err := CheckDataset(s.Dataset); err != nil {
		errs = append(errs, err)
	}
	if len(s.Name) > MaxJobName || !OnlyChars(s.Name, ".-") {
		bad("name", fmt.Sprintf("use up to %d letters, digits, '.' and '-'", MaxJobName))
	}
	if s.OutputOptions != nil {
		t := bytes.TrimSpace(s.OutputOptions)
		if !json.Valid(t) || !(bytes.HasPrefix(t, []byte("{")) || bytes.Equal(t, []byte("null"))) {
			bad("output_options", "want a JSON object")
		}
	}
	if len(s.LogpullOptions) > MaxLogpullOptions || hasControl(s.LogpullOptions, false) {
		bad("logpull_options", fmt.Sprintf("use up to %d characters without spaces or control characters", MaxLogpullOptions))
	}
	if s.Frequency != "" && s.Frequency != "high" && s.Frequency != "low" {
		bad("frequency", "want high or low")
	}
	for i, v := range []int{s.MaxUploadBytes, s.MaxUploadIntervalSeconds, s.MaxUploadRecords} {
		if b := UploadBounds[i]; v != 0 && (v < b.Min || v > b.Max) {
			bad(b.Field, fmt.Sprintf("want a whole number from %d to %d", b.Min, b.Max))
		}
	}
	if s.Filter != "" && !json.Valid([]byte(s.Filter)) {
		bad("filter", "want a JSON document")
	}
	if s.Kind != "" && s.Kind != "edge" {
		bad("kind", "want empty or edge")
	}
	return errors.Join(errs...)
}

// ListJobs returns the Logpush jobs of the zone or account, of every
// dataset: GET .../logpush/jobs. Each Job's DestinationConf is raw and may
// hold secrets (see Job).
func (c *Client) ListJobs(ctx context.Context, t Target) ([]Job, error) {
	path, err := t.path()
	if err != nil {
		return nil, invalidRequest(EndpointJobs, err)
	}
	cl := call{endpoint: EndpointJobs, method: http.MethodGet, path: path + "/logpush/jobs", list: true}
	status, raw, err := c.do(ctx, cl)
	if err != nil {
		return nil, err
	}
	var rs []*jobResult
	if err := json.Unmarshal(raw, &rs); err != nil {
		return nil, garbage(cl.endpoint, status, "result is not a list of jobs", nil)
	}
	jobs := make([]Job, 0, len(rs))
	for _, r := range rs {
		if r == nil {
			continue // the schema's items are nullable
		}
		if r.ID < 1 {
			return nil, garbage(cl.endpoint, status, "job without an id in result", nil)
		}
		jobs = append(jobs, c.job(r, call{conf: r.DestinationConf}))
	}
	return jobs, nil
}

// GetJob returns one Logpush job of the zone or account, with its health
// (LastComplete, LastError, ErrorMessage): GET .../logpush/jobs/{job_id}.
// A job that is not there is a Permanent error. The Job's DestinationConf
// is raw and may hold secrets (see Job); ErrorMessage is redacted.
func (c *Client) GetJob(ctx context.Context, t Target, id int) (Job, error) {
	path, err := t.path()
	if err == nil && id < 1 {
		err = fmt.Errorf("job id must be at least 1, got %d", id)
	}
	if err != nil {
		return Job{}, invalidRequest(EndpointJob, err)
	}
	cl := call{endpoint: EndpointJob, method: http.MethodGet, path: path + "/logpush/jobs/" + strconv.Itoa(id)}
	return c.oneJob(ctx, cl, id)
}

// CreateJob creates a Logpush job: POST .../logpush/jobs. A wrong, stale or
// missing ownership challenge is a StaleChallenge error (400 code 1002); the
// job limit of the zone or account is a Permanent error (403 code 1004,
// CodeNotAllowed).
//
// CreateJob is not idempotent: Cloudflare accepts several jobs for one
// destination, and a Transient error (a timeout, a 5xx, a garbled answer)
// may come after the job was created. Look in ListJobs before trying again.
func (c *Client) CreateJob(ctx context.Context, t Target, j JobRequest) (Job, error) {
	path, err := t.path()
	if err == nil {
		err = j.check()
	}
	if err != nil {
		return Job{}, invalidRequest(EndpointCreateJob, err)
	}
	cl := call{endpoint: EndpointCreateJob, method: http.MethodPost, path: path + "/logpush/jobs",
		body: j, conf: j.DestinationConf, challenge: j.OwnershipChallenge}
	return c.oneJob(ctx, cl, 0)
}

// jobResult is a job as Cloudflare answers it; null decodes as zero.
type jobResult struct {
	ID                       int             `json:"id"`
	Dataset                  string          `json:"dataset"`
	Name                     string          `json:"name"`
	DestinationConf          string          `json:"destination_conf"`
	Enabled                  bool            `json:"enabled"`
	Kind                     string          `json:"kind"`
	Frequency                string          `json:"frequency"`
	LogpullOptions           string          `json:"logpull_options"`
	OutputOptions            json.RawMessage `json:"output_options"`
	Filter                   string          `json:"filter"`
	MaxUploadBytes           int             `json:"max_upload_bytes"`
	MaxUploadIntervalSeconds int             `json:"max_upload_interval_seconds"`
	MaxUploadRecords         int             `json:"max_upload_records"`
	LastComplete             string          `json:"last_complete"`
	LastError                string          `json:"last_error"`
	ErrorMessage             string          `json:"error_message"`
}

// job converts r; cl's conf and challenge are masked in the error message.
func (c *Client) job(r *jobResult, cl call) Job {
	opts := r.OutputOptions
	if bytes.Equal(bytes.TrimSpace(opts), []byte("null")) {
		opts = nil
	}
	return Job{
		ID:                       r.ID,
		Dataset:                  r.Dataset,
		Name:                     r.Name,
		DestinationConf:          r.DestinationConf,
		Enabled:                  r.Enabled,
		Kind:                     r.Kind,
		Frequency:                r.Frequency,
		LogpullOptions:           r.LogpullOptions,
		OutputOptions:            opts,
		Filter:                   r.Filter,
		MaxUploadBytes:           r.MaxUploadBytes,
		MaxUploadIntervalSeconds: r.MaxUploadIntervalSeconds,
		MaxUploadRecords:         r.MaxUploadRecords,
		LastComplete:             parseTime(r.LastComplete),
		LastError:                parseTime(r.LastError),
		ErrorMessage:             c.clean(r.ErrorMessage, cl),
	}
}

// parseTime reads an RFC 3339 time; zero when it cannot. A job's times are
// informational: an odd one must not fail the call.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// OnlyChars reports whether s holds only ASCII letters, digits and the
// bytes of extra.
func OnlyChars(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || strings.IndexByte(extra, c) >= 0) {
			return false
		}
	}
	return true
}

// UpdateFrom is the PUT body that moves j to conf with token (the
// ownership challenge of conf; "" for a conf that needs none) and keeps
// every other setting of j as read: output_options whole (a PUT replaces
// it as a whole: cloudflare-docs #31523), and the dataset, which Cloudflare
// does not let a PUT change, as it is.
func UpdateFrom(j Job, conf, token string) JobRequest {
	return JobRequest{DestinationConf: conf, OwnershipChallenge: token, JobSpec: j.Spec()}
}

// UpdateJob replaces the settings of job id with j: PUT
// .../logpush/jobs/{job_id}. What j leaves unset is sent unset: build j
// with UpdateFrom from the job as GetJob read it, so that no setting is
// reset. A new destination_conf that needs a challenge needs its fresh
// ownership challenge in j; a wrong or stale one is a StaleChallenge error
// (400 code 1002), and the job is left as it was.
//
// UpdateJob is idempotent: the same PUT twice leaves the job the same.
func (c *Client) UpdateJob(ctx context.Context, t Target, id int, j JobRequest) (Job, error) {
	path, err := t.path()
	if err == nil && id < 1 {
		err = fmt.Errorf("job id must be at least 1, got %d", id)
	}
	if err == nil {
		err = j.check()
	}
	if err != nil {
		return Job{}, invalidRequest(EndpointUpdateJob, err)
	}
	cl := call{endpoint: EndpointUpdateJob, method: http.MethodPut, path: path + "/logpush/jobs/" + strconv.Itoa(id),
		body: j, conf: j.DestinationConf, challenge: j.OwnershipChallenge}
	return c.oneJob(ctx, cl, id)
}

// oneJob makes cl, whose result is job id (GetJob, UpdateJob), or a new
// job with an id of its own when id is 0 (CreateJob). A call that sends
// no destination_conf (a GET) masks the job's own conf in its
// ErrorMessage, as ListJobs does; a POST or PUT masks the conf it sent.
func (c *Client) oneJob(ctx context.Context, cl call, id int) (Job, error) {
	status, raw, err := c.do(ctx, cl)
	if err != nil {
		return Job{}, err
	}
	var r jobResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return Job{}, garbage(cl.endpoint, status, "result is not a job", nil)
	}
	switch {
	case r.ID < 1:
		return Job{}, garbage(cl.endpoint, status, "job without an id in result", nil)
	case id != 0 && r.ID != id:
		return Job{}, garbage(cl.endpoint, status, fmt.Sprintf("asked for job %d, answered job %d", id, r.ID), nil)
	}
	if cl.conf == "" {
		cl.conf = r.DestinationConf
	}
	return c.job(&r, cl), nil
}
