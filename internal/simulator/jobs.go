package simulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
)

// Codes of the job routes (see doc.go).
const (
	// codeIncorrectChallenge is Cloudflare's "incorrect ownership
	// challenge", on validate and on job creation.
	codeIncorrectChallenge = 1002
	// codeJobExists is the simulator's code for a second job of the same
	// dataset to the same destination_conf (Cloudflare no longer refuses
	// one).
	codeJobExists = 1003
	// codeJobLimit is Cloudflare's "not allowed", answered with 403; here
	// for the job limit ("exceeded max jobs allowed").
	codeJobLimit = 1004
)

// Limits of the job fields, from Cloudflare's schema.
const (
	maxDataset        = 256
	maxJobName        = 512
	maxLogpullOptions = 4096
)

// job is a stored Logpush job, in the shape of the schema's logpush_job.
// What was not set is answered null: the schema's enums and ranges exclude
// the empty values (kind "", max_upload_bytes 0...). A job never changes
// once stored; its health fields (LastComplete, LastError, ErrorMessage)
// are filled in on each answer by withHealth, from the time it was
// enabled.
type job struct {
	ID                       int             `json:"id"`
	Dataset                  *string         `json:"dataset"`
	Name                     *string         `json:"name"`
	DestinationConf          string          `json:"destination_conf"`
	Enabled                  bool            `json:"enabled"`
	Kind                     *string         `json:"kind"`
	Frequency                *string         `json:"frequency"`
	LogpullOptions           *string         `json:"logpull_options"`
	OutputOptions            json.RawMessage `json:"output_options"` // nil answers null
	Filter                   *string         `json:"filter,omitempty"`
	MaxUploadBytes           *int            `json:"max_upload_bytes"`
	MaxUploadIntervalSeconds *int            `json:"max_upload_interval_seconds"`
	MaxUploadRecords         *int            `json:"max_upload_records"`
	LastComplete             *string         `json:"last_complete"`
	LastError                *string         `json:"last_error"`
	ErrorMessage             *string         `json:"error_message"`

	// target is the zone or account the job belongs to; createdAt is when
	// it was created, enabled or not (the simulator has no PUT: a job is
	// enabled from its creation or never).
	target    target    `json:"-"`
	createdAt time.Time `json:"-"`
}

// withHealth returns a copy of j with the health fields Cloudflare would
// answer at now: nothing before the job is enabled and JobPushDelay has
// passed (Cloudflare: "If the job has never run or has just been enabled
// and hasn't run yet then the field will be empty"); then, for a
// destination JobPushError fails, last_error and error_message (the job is
// failing, and never completed); for a zone or account NoTraffic names,
// nothing (no logs, nothing pushed); otherwise last_complete, the end of
// the last minute pushed.
func (s *Simulator) withHealth(j *job, now time.Time) *job {
	c := *j
	first := j.createdAt.Add(s.cfg.JobPushDelay)
	if !j.Enabled || now.Before(first) {
		return &c
	}
	if s.cfg.JobPushError != nil {
		if msg := s.cfg.JobPushError(j.DestinationConf); msg != "" {
			at := now.UTC().Truncate(time.Second).Format(time.RFC3339)
			c.LastError, c.ErrorMessage = &at, &msg
			return &c
		}
	}
	if s.cfg.NoTraffic != nil && s.cfg.NoTraffic(j.target.scope, j.target.id) {
		return &c
	}
	at := now.UTC().Truncate(time.Minute).Format(time.RFC3339)
	if now.Sub(first) < time.Minute {
		// The first range pushed ends a minute after it began.
		at = first.UTC().Truncate(time.Minute).Add(time.Minute).Format(time.RFC3339)
	}
	c.LastComplete = &at
	return &c
}

// getJob answers one job of the scope with its health, or 404 code 1000
// for an id that is not a job of this zone or account.
func (s *Simulator) getJob(w http.ResponseWriter, t target) {
	now := s.cfg.Now()
	s.mu.Lock()
	var found *job
	for _, j := range s.jobs[scopeKey(t)] {
		if j.ID == t.job {
			found = s.withHealth(j, now)
			break
		}
	}
	s.mu.Unlock()
	if found == nil {
		writeFailure(w, fail(http.StatusNotFound, message{Code: 1000, Message: "job not found"}))
		return
	}
	writeJSON(w, http.StatusOK, success(found))
}

// jobRequest is the body of a job creation.
type jobRequest struct {
	DestinationConf          *string         `json:"destination_conf"`
	OwnershipChallenge       *string         `json:"ownership_challenge"`
	Dataset                  *string         `json:"dataset"`
	Name                     *string         `json:"name"`
	Enabled                  *bool           `json:"enabled"`
	Kind                     *string         `json:"kind"`
	Frequency                *string         `json:"frequency"`
	LogpullOptions           *string         `json:"logpull_options"`
	OutputOptions            json.RawMessage `json:"output_options"`
	Filter                   *string         `json:"filter"`
	MaxUploadBytes           *int            `json:"max_upload_bytes"`
	MaxUploadIntervalSeconds *int            `json:"max_upload_interval_seconds"`
	MaxUploadRecords         *int            `json:"max_upload_records"`
}

// scopeKey identifies a zone or account.
func scopeKey(t target) string { return t.scope + "/" + t.id }

// destinationExists answers whether a job of the scope, of any dataset, has
// the byte-identical destination_conf.
func (s *Simulator) destinationExists(w http.ResponseWriter, r *http.Request, t target) {
	req, f := decode(w, r, false)
	if f != nil {
		writeFailure(w, f)
		return
	}
	s.mu.Lock()
	exists := s.hasJob(t, *req.DestinationConf)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, success(map[string]bool{"exists": exists}))
}

// hasJob reports whether a job of t pushes to conf. s.mu is held.
func (s *Simulator) hasJob(t target, conf string) bool {
	for _, j := range s.jobs[scopeKey(t)] {
		if j.DestinationConf == conf {
			return true
		}
	}
	return false
}

// hasDatasetJob reports whether a job of t pushes dataset to conf. s.mu is
// held.
func (s *Simulator) hasDatasetJob(t target, dataset, conf string) bool {
	for _, j := range s.jobs[scopeKey(t)] {
		if j.DestinationConf == conf && deref(j.Dataset) == dataset {
			return true
		}
	}
	return false
}

// listJobs answers the jobs of the scope, oldest first, with their health.
func (s *Simulator) listJobs(w http.ResponseWriter, t target) {
	now := s.cfg.Now()
	s.mu.Lock()
	jobs := make([]*job, 0, len(s.jobs[scopeKey(t)]))
	for _, j := range s.jobs[scopeKey(t)] {
		jobs = append(jobs, s.withHealth(j, now))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, success(jobs))
}

// createJob stores a job, once its destination's ownership is proven:
// 400 code 1002 for a wrong, stale or missing ownership challenge (on
// destinations that need one), 400 code 1003 for a second job of the same
// dataset to the same destination_conf (unless AllowDuplicateJobs; jobs of
// other datasets to one destination are accepted, as by Cloudflare), 403
// code 1004 past MaxJobsPerScope.
func (s *Simulator) createJob(w http.ResponseWriter, r *http.Request, t target) {
	j, tok, f := decodeJob(w, r)
	if f != nil {
		writeFailure(w, f)
		return
	}
	now := s.cfg.Now()
	key := scopeKey(t)

	s.mu.Lock()
	if needsChallenge(j.DestinationConf) {
		if s.check(tok, t, j.DestinationConf, now) != tokenValid {
			s.stats.JobsRejectedChallenge++
			s.mu.Unlock()
			writeFailure(w, fail(http.StatusBadRequest, message{Code: codeIncorrectChallenge, Message: "incorrect ownership challenge"}))
			return
		}
	}
	if !s.cfg.AllowDuplicateJobs && s.hasDatasetJob(t, deref(j.Dataset), j.DestinationConf) {
		s.stats.JobsRejectedDuplicate++
		s.mu.Unlock()
		writeFailure(w, fail(http.StatusBadRequest, message{Code: codeJobExists,
			Message: "Creating a new job is not allowed: a job of this dataset already exists for this destination"}))
		return
	}
	if len(s.jobs[key]) >= s.cfg.MaxJobsPerScope {
		s.stats.JobsRejectedLimit++
		s.mu.Unlock()
		writeFailure(w, fail(http.StatusForbidden, message{Code: codeJobLimit,
			Message: "Creating a new job is not allowed: exceeded max jobs allowed"}))
		return
	}
	s.lastJob++
	j.ID = s.lastJob
	j.target, j.createdAt = t, now
	s.jobs[key] = append(s.jobs[key], j)
	s.stats.JobsCreated++
	s.mu.Unlock()

	writeJSON(w, http.StatusOK, success(j))
}

// decodeJob reads and checks a job creation against the schema; code 1001
// for every problem. It returns the job to store (without its id) and the
// ownership challenge, if any.
func decodeJob(w http.ResponseWriter, r *http.Request) (*job, string, *failure) {
	invalid := func(msg string) (*job, string, *failure) {
		return nil, "", fail(http.StatusBadRequest, message{Code: 1001, Message: msg})
	}
	var req jobRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(&req); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && ute.Field != "" {
			return invalid(ute.Field + " has the wrong type")
		}
		return invalid("Malformed JSON in request body")
	}
	switch {
	case req.DestinationConf == nil || *req.DestinationConf == "":
		return invalid("destination_conf is required")
	case len(*req.DestinationConf) > maxConf:
		return invalid(fmt.Sprintf("destination_conf must be at most %d characters", maxConf))
	}
	if _, err := pathPrefix(*req.DestinationConf); err != nil {
		return invalid("destination_conf is invalid: " + err.Error())
	}
	tok := deref(req.OwnershipChallenge)
	if len(tok) > maxChallenge || !cloudflare.IsChallengeText(tok) {
		return invalid("ownership_challenge is invalid")
	}
	j := &job{
		DestinationConf: *req.DestinationConf,
		Dataset:         req.Dataset,
		Name:            req.Name,
		Enabled:         req.Enabled != nil && *req.Enabled,
		LogpullOptions:  req.LogpullOptions,
		Filter:          req.Filter,
	}
	if len(deref(req.Dataset)) > maxDataset || !cloudflare.OnlyChars(deref(req.Dataset), "_-") {
		return invalid("dataset is invalid")
	}
	if len(deref(req.Name)) > maxJobName || !cloudflare.OnlyChars(deref(req.Name), ".-") {
		return invalid("name is invalid: only letters, digits, '-' and '.' are allowed")
	}
	switch k := deref(req.Kind); k {
	case "": // Cloudflare's default, a Logpush job; answered null
	case "edge":
		j.Kind = &k
	default:
		return invalid("kind must be edge or empty")
	}
	switch fr := deref(req.Frequency); fr {
	case "":
	case "high", "low":
		j.Frequency = &fr
	default:
		return invalid("frequency must be high or low")
	}
	if len(deref(req.LogpullOptions)) > maxLogpullOptions {
		return invalid(fmt.Sprintf("logpull_options must be at most %d characters", maxLogpullOptions))
	}
	if fl := deref(req.Filter); fl != "" && !json.Valid([]byte(fl)) {
		return invalid("filter is not valid JSON")
	}
	var msg string
	if j.MaxUploadBytes, msg = bounded("max_upload_bytes", req.MaxUploadBytes, 5_000_000, 1_000_000_000); msg != "" {
		return invalid(msg)
	}
	if j.MaxUploadIntervalSeconds, msg = bounded("max_upload_interval_seconds", req.MaxUploadIntervalSeconds, 30, 300); msg != "" {
		return invalid(msg)
	}
	if j.MaxUploadRecords, msg = bounded("max_upload_records", req.MaxUploadRecords, 1_000, 1_000_000); msg != "" {
		return invalid(msg)
	}
	if opts := bytes.TrimSpace(req.OutputOptions); len(opts) > 0 && !bytes.Equal(opts, []byte("null")) {
		if msg := checkOutputOptions(opts); msg != "" {
			return invalid(msg)
		}
		j.OutputOptions = opts
	}
	return j, tok, nil
}

// bounded checks an upload bound: absent or 0 (Cloudflare's "disabled",
// answered null, the schema's minimum excluding 0), or in [lo, hi].
func bounded(name string, v *int, lo, hi int) (*int, string) {
	if v == nil || *v == 0 {
		return nil, ""
	}
	if *v < lo || *v > hi {
		return nil, fmt.Sprintf("%s must be between %d and %d, or 0", name, lo, hi)
	}
	return v, ""
}

// checkOutputOptions checks the output_options object against the schema
// and returns what is wrong, or "". Unknown keys are accepted: Cloudflare
// adds options over time.
func checkOutputOptions(raw json.RawMessage) string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return "output_options must be an object"
	}
	for k, v := range m {
		bad := "output_options." + k + " is invalid"
		switch k {
		case "output_type", "timestamp_format":
			var s *string
			allowed := []string{"ndjson", "csv"}
			if k == "timestamp_format" {
				allowed = []string{"unixnano", "unix", "rfc3339"}
			}
			if json.Unmarshal(v, &s) != nil || s == nil || !slices.Contains(allowed, *s) {
				return bad + ": one of " + strings.Join(allowed, ", ")
			}
		case "field_names":
			var names *[]string
			if json.Unmarshal(v, &names) != nil || names == nil {
				return bad + ": a list of field names"
			}
		case "sample_rate":
			var f *float64
			if json.Unmarshal(v, &f) != nil || f != nil && (*f < 0 || *f > 1) {
				return bad + ": a number in [0, 1]"
			}
		case "CVE-2021-44228", "CVE-2021-4428": // the API's key, the schema's
			var b *bool
			if json.Unmarshal(v, &b) != nil {
				return bad + ": a boolean"
			}
		case "batch_prefix", "batch_suffix", "field_delimiter", "record_delimiter", "record_prefix", "record_suffix", "record_template":
			var s *string
			if json.Unmarshal(v, &s) != nil {
				return bad + ": a string"
			}
		}
	}
	return ""
}

// needsChallenge reports whether Cloudflare asks for an ownership challenge
// before creating a job to conf: AWS S3 (not S3-compatible storage, which
// has endpoint=, nor a conf with access-key-id and secret-access-key),
// Google Cloud Storage, Azure, Sumo Logic, and file (the simulator's
// stand-in for a bucket). R2, BigQuery, Kinesis, IBM Cloud Logs,
// SentinelOne and the HTTP-like destinations need none (Cloudflare's Logpush
// FAQ and destination pages).
func needsChallenge(conf string) bool {
	u, err := url.Parse(conf)
	if err != nil {
		return true
	}
	switch strings.ToLower(u.Scheme) {
	case "s3":
		q := u.Query()
		return !q.Has("endpoint") && (q.Get("access-key-id") == "" || q.Get("secret-access-key") == "")
	case "r2", "https", "datadog", "splunk", "bq", "kinesis", "ibmcl", "sentinelone":
		return false
	}
	return true
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
