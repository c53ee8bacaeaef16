package metrics_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logpush-onboard/logpush-onboard/metrics"
)

// TestNewRegistryUsed: New on a registry that has the pipeline's metrics
// already returns an error naming the clash instead of panicking, and a
// fresh registry takes them.
func TestNewRegistryUsed(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil || m == nil {
		t.Fatalf("New on a fresh registry = %v, %v", m, err)
	}
	m2, err := metrics.New(reg)
	if err == nil || m2 != nil || !strings.Contains(err.Error(), "metrics: ") || !strings.Contains(err.Error(), "duplicate") {
		t.Fatalf("New on a used registry = %v, %v; want an error", m2, err)
	}
}
