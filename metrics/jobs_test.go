package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestJobHealthSet: a listing replaces the counts of the last one; a
// series the new listing has no job for is removed, not left at its old
// count.
func TestJobHealthSet(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	h := NewJobHealth(reg)
	failing := JobKey{Health: JobFailing, Dataset: "http_requests", DestinationType: "s3"}
	flowing := JobKey{Health: JobFlowing, Dataset: "http_requests", DestinationType: "s3"}
	h.Set(map[JobKey]int{failing: 2, flowing: 3}, time.Unix(100, 0))
	if n := testutil.CollectAndCount(h.Jobs); n != 2 {
		t.Fatalf("%d series, want 2", n)
	}
	h.Set(map[JobKey]int{flowing: 5}, time.Unix(200, 0))
	if n := testutil.CollectAndCount(h.Jobs); n != 1 {
		t.Fatalf("%d series after the failing jobs recovered, want 1 (flowing)", n)
	}
	if v := testutil.ToFloat64(h.Jobs.WithLabelValues(JobFlowing, "http_requests", "s3")); v != 5 {
		t.Fatalf("flowing = %v, want 5", v)
	}
	if v := testutil.ToFloat64(h.LastListed); v != 200 {
		t.Fatalf("listed at %v, want 200", v)
	}
}
