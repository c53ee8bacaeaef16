package tasks_test

import (
	"strings"
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

// TestParseJobSpecSchema: a row whose job Cloudflare's schema refuses (the
// rules CreateJob checks) fails its line check, naming the input column; a
// row inside the schema passes.
func TestParseJobSpecSchema(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, col, val, field string
	}{
		{"dataset of 300 characters", "dataset", strings.Repeat("d", 300), "dataset"},
		{"logpull_options with a space", "logpull_options", "fields=RayID &timestamps=rfc3339", "logpull_options"},
		{"logpull_options over 4096", "logpull_options", strings.Repeat("a", 4097), "logpull_options"},
		{"job_name of 513 characters", "job_name", strings.Repeat("n", 513), "job_name"},
		{"job_name with an underscore", "job_name", "my_job", "job_name"},
		{"max_upload_bytes too small", "max_upload_bytes", "1000", "max_upload_bytes"},
		{"max_upload_records zero", "max_upload_records", "0", "max_upload_records"},
		{"output_options not JSON", "output_options", `{"a":`, "output_options"},
		{"frequency", "frequency", "medium", "frequency"},
		{"filter", "filter", "ClientCountry != ca", "filter"},
	} {
		row := map[string]string{"dataset": "http_requests", c.col: c.val}
		_, err := tasks.ParseJobSpec(row)
		fe, ok := err.(*tasks.FieldError)
		if !ok || fe.Field != c.field {
			t.Errorf("%s: error %v, want a field error naming %s", c.name, err, c.field)
		}
	}
	j, err := tasks.ParseJobSpec(map[string]string{"dataset": strings.Repeat("d", 256), "job_name": "example.com",
		"logpull_options": "fields=RayID&timestamps=rfc3339", "max_upload_records": "1000"})
	if err != nil || j.Check() != nil {
		t.Fatalf("a job inside the schema: %v", err)
	}
}
