package tasks_test

import (
	"testing"

	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// TestParseJobSpecEnabled: a job is enabled unless the row says
// enabled=false; a bad value names the column.
func TestParseJobSpecEnabled(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		enabled string
		want    bool
	}{{"", true}, {"true", true}, {"TRUE", true}, {"1", true}, {"false", false}, {"0", false}, {" false ", false}} {
		j, err := tasks.ParseJobSpec(map[string]string{"dataset": "http_requests", "enabled": c.enabled})
		if err != nil || j.Enabled != c.want {
			t.Errorf("enabled=%q: %+v %v, want enabled %v", c.enabled, j, err, c.want)
		}
	}
	_, err := tasks.ParseJobSpec(map[string]string{"dataset": "http_requests", "enabled": "yes please"})
	if fe, ok := err.(*tasks.FieldError); !ok || fe.Field != "enabled" {
		t.Errorf("bad enabled: %v", err)
	}
}
