package worker_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logpush-onboard/logpush-onboard/metrics"
)

// newMetrics is the pipeline's metrics on a registry of the test's own.
func newMetrics(t testing.TB) *metrics.Metrics {
	t.Helper()
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return m
}
