package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
)

// TestDryRunCountsDestinations: enqueue --dry-run counts a repeated row
// once, as the batch does, and says how long the busiest shared path
// takes, its destinations onboarding one at a time.
func TestDryRunCountsDestinations(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("zone_id,account_id,destination_conf\n")
	for i := range 100 {
		fmt.Fprintf(&b, "%032x,,s3://logs/http/{DATE}?region=us-east-1\n", i+1)
	}
	fmt.Fprintf(&b, "%032x,,s3://logs/http/{DATE}?region=us-east-1\n", 1) // line 2 again
	for i := range 3 {
		fmt.Fprintf(&b, "%032x,,gs://own-%d/p\n", 0x200+i, i)
	}
	in := filepath.Join(t.TempDir(), "in.csv")
	os.WriteFile(in, []byte(b.String()), 0o600)
	code, out, stderr := run(t, "", "enqueue", "--dry-run", in)
	if code != 0 {
		t.Fatalf("enqueue --dry-run = %d:\n%s\n%s", code, out, stderr)
	}
	for _, want := range []string{
		": 104 valid rows (103 destinations: 1 row repeats an earlier one), 0 invalid, 103 need a challenge\n",
		"  s3        100\n", "  gs        3\n",
		"100 rows on s3://logs/http/{DATE} run one at a time (one challenge file per path): about 6m40s at 4s per file",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	// Every path its own: no such line; one row is "1 valid row".
	one := filepath.Join(t.TempDir(), "one.csv")
	os.WriteFile(one, []byte(fmt.Sprintf("zone_id,account_id,destination_conf\n%032x,,gs://one-bucket/p\n", 1)), 0o600)
	if code, out, _ := run(t, "", "enqueue", "--dry-run", one); code != 0 || !strings.Contains(out, ": 1 valid row, 0 invalid") || strings.Contains(out, "one at a time") {
		t.Errorf("dry run of one row = %d:\n%s", code, out)
	}
}

// TestProgressAwaitingToken: once only rows awaiting a token are left,
// the frame says so and what brings them, never "ETA 0s".
func TestProgressAwaitingToken(t *testing.T) {
	t.Parallel()
	st := events.BatchStatus{ID: "b-1", Total: 300, Counts: map[events.State]int64{events.Validated: 295, events.AwaitingToken: 5}}
	for _, terminal := range []bool{false, true} {
		var w bytes.Buffer
		v := &view{w: &w, terminal: terminal}
		v.draw(frame{st: st, elapsed: time.Minute})
		out := w.String()
		if strings.Contains(out, "ETA") || !strings.Contains(out, "5 awaiting token: logpush-onboard submit-token --batch b-1") {
			t.Errorf("terminal %v: final frame with 5 awaiting a token:\n%s", terminal, out)
		}
	}
	st.Counts = map[events.State]int64{events.Validated: 290, events.AwaitingToken: 5, events.Polling: 5}
	var w bytes.Buffer
	(&view{w: &w}).draw(frame{st: st, eta: 10 * time.Second})
	if !strings.Contains(w.String(), "ETA 10s") {
		t.Errorf("a frame with rows in flight lost its ETA:\n%s", w.String())
	}
}

// TestProgressWatchingJobs: once every row in flight is a job created and
// watched for its first push, the frame says so, not "ETA 0s" from the
// onboarding's rate.
func TestProgressWatchingJobs(t *testing.T) {
	t.Parallel()
	st := events.BatchStatus{ID: "b-1", Total: 29, Counts: map[events.State]int64{events.Watching: 28, events.Flowing: 1}}
	for _, terminal := range []bool{false, true} {
		var w bytes.Buffer
		(&view{w: &w, terminal: terminal}).draw(frame{st: st, elapsed: 10 * time.Second})
		if out := w.String(); strings.Contains(out, "ETA") || !strings.Contains(out, "28 jobs created, waiting for their first push") {
			t.Errorf("terminal %v: a frame with only jobs watched in flight:\n%s", terminal, out)
		}
	}
	st.Counts[events.Watching], st.Counts[events.Polling] = 27, 1
	var w bytes.Buffer
	(&view{w: &w}).draw(frame{st: st, eta: 3 * time.Second})
	if !strings.Contains(w.String(), "ETA 3s") {
		t.Errorf("a frame with a row still onboarding lost its ETA:\n%s", w.String())
	}
}
