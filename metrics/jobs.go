package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Job health values (the health label of JobHealth.Jobs).
const (
	// JobFlowing: the job pushed (last_complete set) and is not failing.
	JobFlowing = "flowing"
	// JobFailing: Cloudflare reports the job failing (last_error set).
	JobFailing = "failing"
	// JobNoData: enabled, but it has neither pushed nor failed yet.
	JobNoData = "no_data"
	// JobDisabled: the job is not enabled.
	JobDisabled = "disabled"
)

// JobHealths are the health values, worst first.
var JobHealths = []string{JobFailing, JobDisabled, JobNoData, JobFlowing}

// JobKey is one series of JobHealth.Jobs. Its labels are bounded: a
// health, a dataset of Cloudflare's list and a destination type, never a
// job, zone or account.
type JobKey struct {
	Health, Dataset, DestinationType string
}

// JobHealth holds the gauges of `jobs --watch`.
type JobHealth struct {
	// Jobs is the number of Logpush jobs by health, dataset and
	// destination type, as of the last listing.
	Jobs *prometheus.GaugeVec
	// LastListed is when the last listing of every job succeeded (Unix
	// seconds): Jobs is as old as this.
	LastListed prometheus.Gauge
	// ListFailures counts listings that failed (Jobs kept its values).
	ListFailures prometheus.Counter

	mu   sync.Mutex
	last map[JobKey]bool
}

// NewJobHealth registers the job health gauges on reg.
func NewJobHealth(reg prometheus.Registerer) *JobHealth {
	f := promauto.With(reg)
	return &JobHealth{
		Jobs: f.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "logpush_jobs",
			Help: "Logpush jobs by health (flowing, failing, no_data, disabled), dataset and destination type, as of the last listing.",
		}, []string{"health", "dataset", "destination_type"}),
		LastListed: f.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "logpush_jobs_listed_timestamp_seconds",
			Help: "When every Logpush job was last listed successfully (Unix seconds).",
		}),
		ListFailures: f.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "logpush_jobs_list_failures_total",
			Help: "Listings of the Logpush jobs that failed; the job gauges keep the last listing's counts.",
		}),
		last: map[JobKey]bool{},
	}
}

// Set makes Jobs the counts of a listing done at at: every series of
// counts set, then the series of the previous listing that are not in
// counts removed (a scrape never sees the gauges empty).
func (h *JobHealth) Set(counts map[JobKey]int, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, n := range counts {
		h.Jobs.WithLabelValues(k.Health, k.Dataset, k.DestinationType).Set(float64(n))
	}
	for k := range h.last {
		if _, ok := counts[k]; !ok {
			h.Jobs.DeleteLabelValues(k.Health, k.Dataset, k.DestinationType)
		}
	}
	h.last = make(map[JobKey]bool, len(counts))
	for k := range counts {
		h.last[k] = true
	}
	h.LastListed.Set(float64(at.Unix()))
}
