package metrics

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

const namespace = "logpush_onboard"

// Metrics holds every collector of the pipeline.
type Metrics struct {
	// APIRequests counts Cloudflare API calls by endpoint, HTTP status
	// code ("error" when no answer came back) and credential (the name of
	// a credentials file's credential; "" for the default one).
	APIRequests *prometheus.CounterVec
	// APIDuration is the latency of Cloudflare API calls by endpoint.
	APIDuration *prometheus.HistogramVec
	// Tasks counts handler runs by task type and outcome (success, retry,
	// snooze, failed, superseded, dropped: asynq deletes the task with no
	// outcome recorded, for an undecodable payload or a failure Redis
	// refused to record), and the tasks the worker's archive sweep took out
	// of asynq's archive (swept).
	Tasks *prometheus.CounterVec
	// Destinations counts destination outcomes (validated, failed,
	// not_required, awaiting_token) and, for the jobs the worker watches,
	// their health (flowing, job_failing, no_data_yet), counted after the
	// validated or not_required of the job stage.
	Destinations *prometheus.CounterVec
	// PollAttempts is the number of polls a destination needed before its
	// challenge file was found.
	PollAttempts prometheus.Histogram
	// OnboardingDuration is the time from enqueue to outcome, by outcome.
	OnboardingDuration *prometheus.HistogramVec
	// StorageRequests counts reads of challenge files and listings of
	// destinations by destination type, op (read, list) and outcome (ok,
	// not_found, stale, transient_error, denied, permanent_error).
	StorageRequests *prometheus.CounterVec
	// BudgetWait is the time workers waited for the shared API budget, by
	// credential.
	BudgetWait *prometheus.HistogramVec
	// Cooldowns counts shared pauses started after a 429, by credential.
	Cooldowns *prometheus.CounterVec
	// QueuePauses counts pauses of the queue by reason (auth: repeated
	// 401/403 answers).
	QueuePauses *prometheus.CounterVec
	// HandedBack counts rows a worker handed back to the queue because
	// Cloudflare refused its copy of their credential, by credential.
	HandedBack *prometheus.CounterVec
}

// New registers the pipeline's metrics on reg, or returns the error of
// the first that reg refuses (a registry that has them already: use one
// Metrics per registry).
func New(reg prometheus.Registerer) (*Metrics, error) {
	rec := &recorder{Registerer: reg}
	f := promauto.With(rec)
	m := &Metrics{
		APIRequests: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "api_requests_total",
			Help: "Cloudflare API requests by endpoint, HTTP status code (error: no answer) and credential (a credentials file's name; empty: the default).",
		}, []string{"endpoint", "code", "credential"}),
		APIDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "api_request_duration_seconds",
			Help:    "Cloudflare API request latency by endpoint.",
			Buckets: []float64{.025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint"}),
		Tasks: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "tasks_total",
			Help: "Task handler runs by task type and outcome (success, retry, snooze, failed, superseded, dropped: deleted with no outcome recorded; swept: deleted from asynq's archive by a worker).",
		}, []string{"type", "outcome"}),
		Destinations: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "destinations_total",
			Help: "Destination outcomes: validated, failed, not_required, awaiting_token; and a watched job's health after them: flowing, job_failing, no_data_yet.",
		}, []string{"outcome"}),
		PollAttempts: f.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "poll_attempts",
			Help:    "Polls of the destination per validated challenge.",
			Buckets: []float64{1, 2, 3, 5, 8, 13, 21, 34, 55},
		}),
		OnboardingDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "onboarding_duration_seconds",
			Help:    "Time from enqueue to outcome per destination, by outcome.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 16),
		}, []string{"outcome"}),
		StorageRequests: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "storage_requests_total",
			Help: "Reads of challenge files (op=read), and listings that stand for them (op=list), by destination type and outcome (ok, not_found, stale, transient_error, denied, permanent_error).",
		}, []string{"type", "op", "outcome"}),
		BudgetWait: f.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "budget_wait_seconds",
			Help:    "Time a worker waited for the shared Cloudflare API budget before a call, by credential (empty: the default).",
			Buckets: []float64{.001, .01, .1, .5, 1, 2, 5, 10, 30, 60, 300},
		}, []string{"credential"}),
		Cooldowns: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "budget_cooldowns_total",
			Help: "Shared pauses of all API calls on a credential after a 429 or Retry-After, by credential (empty: the default).",
		}, []string{"credential"}),
		QueuePauses: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "queue_pauses_total",
			Help: "Pauses of the logpush queue by reason (auth: repeated authentication failures).",
		}, []string{"reason"}),
		HandedBack: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "credential_handed_back_total",
			Help: "Rows this worker handed back to the queue, for a worker whose copy of their credential works, because Cloudflare refused its own copy, by credential (empty: the default).",
		}, []string{"credential"}),
	}
	// Series that exist from the start, so that increase() and rate() see
	// their first increment.
	for _, o := range []string{"validated", "failed", "not_required", "awaiting_token", "flowing", "job_failing", "no_data_yet"} {
		m.Destinations.WithLabelValues(o)
	}
	if rec.err != nil {
		return nil, fmt.Errorf("metrics: %w", rec.err)
	}
	m.QueuePauses.WithLabelValues("auth")
	m.Credential("")
	return m, nil
}

// recorder is a Registerer whose MustRegister keeps the first error
// instead of panicking, so that New can return it.
type recorder struct {
	prometheus.Registerer
	err error
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil && r.err == nil {
			r.err = err
		}
	}
}

// Credential makes the per-credential series of the credential called
// name ("" the default) exist, so that increase() and rate() see their
// first increment. Names come from configuration (a credentials file),
// never from input rows: the label stays bounded.
func (m *Metrics) Credential(name string) {
	m.BudgetWait.WithLabelValues(name)
	m.Cooldowns.WithLabelValues(name)
	m.HandedBack.WithLabelValues(name)
}

// ObserveAPI records one Cloudflare API call of the default credential;
// status 0 means no answer.
func (m *Metrics) ObserveAPI(endpoint string, status int, d time.Duration) {
	m.observeAPI("", endpoint, status, d)
}

// ObserveAPIFor is ObserveAPI for the calls of the credential called name.
func (m *Metrics) ObserveAPIFor(name string) func(endpoint string, status int, d time.Duration) {
	return func(endpoint string, status int, d time.Duration) { m.observeAPI(name, endpoint, status, d) }
}

func (m *Metrics) observeAPI(name, endpoint string, status int, d time.Duration) {
	code := "error"
	if status > 0 {
		code = strconv.Itoa(status)
	}
	m.APIRequests.WithLabelValues(endpoint, code, name).Inc()
	m.APIDuration.WithLabelValues(endpoint).Observe(d.Seconds())
}
