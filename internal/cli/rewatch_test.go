package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
)

// TestRunWatchesAgainWhatItValidated: a run stopped while it watched the
// jobs it had created leaves them validated in its journal, without a
// health outcome. The same command again watches those jobs to their
// outcome (flowing), without a challenge, a validation or a job of its
// own, and leaves the destinations the journal has finished alone.
func TestRunWatchesAgainWhatItValidated(t *testing.T) {
	t.Parallel()
	rs := newRunSim(t, simulator.Config{WriteDelay: 20 * time.Millisecond, JobPushDelay: 300 * time.Millisecond})
	dir := t.TempDir()
	var csv strings.Builder
	csv.WriteString("zone_id,account_id,destination_conf,dataset\n")
	for i := range 3 {
		fmt.Fprintf(&csv, "%032x,,file://%s/own/%d,http_requests\n", i+1, dir, i)
	}
	in := filepath.Join(dir, "in.csv")
	if err := os.WriteFile(in, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CLOUDFLARE_API_TOKEN": runToken}
	args := rs.runArgs("--skip-preflight", "--create-job", "--health-interval", "100ms", in)
	if code, out, stderr := runEnv(t, env, "", args...); code != 0 {
		t.Fatalf("run = %d:\n%s\n%s", code, out, stderr)
	}

	// The stop: the journal loses the health outcomes of zones 1 and 2,
	// as if the run had been killed while it watched their jobs.
	journal := filepath.Join(dir, "in.journal.jsonl")
	b, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if strings.Contains(l, `"event":"flowing"`) && !strings.Contains(l, fmt.Sprintf(`"scope_id":"%032x"`, 3)) {
			continue
		}
		kept = append(kept, l)
	}
	if err := os.WriteFile(journal, []byte(strings.Join(kept, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	before := rs.sim.Stats()

	code, out, stderr := runEnv(t, env, "", args...)
	if code != 0 || !strings.Contains(out, "resuming: 1 destination finished already") || !strings.Contains(out, "2 to go, 2 jobs validated to watch again") {
		t.Fatalf("second run = %d, want 0, resuming with 1 finished and 2 jobs to watch:\n%s\n%s", code, out, stderr)
	}
	after := rs.sim.Stats()
	if after.ChallengesIssued != before.ChallengesIssued || after.ValidationsOK+after.ValidationsFailed != before.ValidationsOK+before.ValidationsFailed ||
		after.JobsCreated != before.JobsCreated {
		t.Errorf("the second run challenged %d, validated %d, created %d jobs; want none",
			after.ChallengesIssued-before.ChallengesIssued, after.ValidationsOK+after.ValidationsFailed-before.ValidationsOK-before.ValidationsFailed,
			after.JobsCreated-before.JobsCreated)
	}
	last := map[string]events.Event{}
	for _, e := range readJournal(t, journal) {
		last[e.ScopeID] = e
	}
	for i := range 3 {
		if e := last[fmt.Sprintf("%032x", i+1)]; e.Event != events.Flowing || e.JobID == 0 {
			t.Errorf("zone %d: last journaled %s (job %d), want flowing with its job", i+1, e.Event, e.JobID)
		}
	}
	report, _ := os.ReadFile(filepath.Join(dir, "in.results.csv"))
	if n := strings.Count(string(report), ",flowing,"); n != 3 {
		t.Errorf("report: %d rows flowing, want 3:\n%s", n, report)
	}
}
