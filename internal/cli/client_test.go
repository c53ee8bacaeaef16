package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// TestRetryCreateJobWithoutChallenge: a --create-job row whose destination
// needs no challenge (https) fails its job creation (the zone is at its job
// limit); once a slot is free, retry takes it the way enqueue does, to the
// job at once: it ends not_required with its job, and no challenge is
// issued for it, in the first round or the retry.
func TestRetryCreateJobWithoutChallenge(t *testing.T) {
	t.Parallel()
	rdb, opt := testutil.Redis(t)
	url := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	e := newE2E(t, rdb, e2eConfig{})
	const zone = "00000000000000000000000000000009"
	var existing []int
	for i := range simulator.DefaultMaxJobsPerScope {
		existing = append(existing, e.sim.AddJob("zone", zone, "dns_logs", fmt.Sprintf("https://other.example.com/%d", i)))
	}
	path := filepath.Join(e.dir, "jobs.csv")
	csv := "zone_id,account_id,destination_conf,dataset\n" + zone + ",,https://logs.example.com/in?header_Authorization=Basic%20x,http_requests\n"
	if err := os.WriteFile(path, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, "", "enqueue", "--skip-preflight", "--create-job", "--redis", url, path)
	if code != 0 {
		t.Fatalf("enqueue = %d: %s %s", code, out, stderr)
	}
	batch := strings.TrimSuffix(strings.Fields(out)[1], ":")
	if st := e.wait(t, batch, time.Minute); st.Counts[events.Failed] != 1 {
		t.Fatalf("outcomes = %+v, want the row failed at the job limit", st.Counts)
	}
	if !e.sim.RemoveJob("zone", zone, existing[0]) {
		t.Fatal("no job to remove")
	}
	code, out, stderr = run(t, "", "retry", "--create-job", "--redis", url, "--batch", batch)
	if code != 0 || !strings.Contains(out, "1 failed destinations re-enqueued") {
		t.Fatalf("retry = %d: %s %s", code, out, stderr)
	}
	st := e.wait(t, batch, time.Minute)
	sim := e.sim.Stats()
	if st.Counts[events.NotRequired] != 1 || sim.JobsCreated != 1 || sim.ChallengesIssued != 0 {
		t.Fatalf("after retry: %+v, %d jobs created, %d challenges; want not_required with its job and no challenge", st.Counts, sim.JobsCreated, sim.ChallengesIssued)
	}
	d, err := e.store.Get(context.Background(), ledger.Key{Batch: batch, Hash: tasks.Dest{Scope: "zone", ScopeID: zone,
		DestinationConf: "https://logs.example.com/in?header_Authorization=Basic%20x", Job: &tasks.JobSpec{Dataset: "http_requests"}}.Hash()})
	if err != nil || d.State != events.NotRequired || d.Round != 1 {
		t.Fatalf("the retried destination = %+v, %v; want not_required in round 1", d, err)
	}
}

// TestEnqueueRecordsAbsoluteSource: the batch records its input's absolute
// path, which retry opens when no FILE is given, from any directory: a
// relative one would name another file, or none, elsewhere.
func TestEnqueueRecordsAbsoluteSource(t *testing.T) {
	t.Parallel()
	rdb, opt := testutil.Redis(t)
	url := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	path := filepath.Join(t.TempDir(), "in.csv")
	if err := os.WriteFile(path, []byte("zone_id,account_id,destination_conf\n00000000000000000000000000000001,,https://logs.example.com/in\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(wd, path)
	if err != nil || filepath.IsAbs(rel) {
		t.Fatalf("no relative path to %s: %q, %v", path, rel, err)
	}
	code, out, stderr := run(t, "", "enqueue", "--skip-preflight", "--redis", url, rel)
	if code != 0 {
		t.Fatalf("enqueue %s = %d: %s %s", rel, code, out, stderr)
	}
	batch := strings.TrimSuffix(strings.Fields(out)[1], ":")
	st, err := ledger.NewStore(rdb, ledger.Config{}).Batch(context.Background(), batch)
	if err != nil || st.Source != path {
		t.Fatalf("batch source = %q, %v; want %s", st.Source, err, path)
	}
}

// TestSubmitTokenNamesDestination: a token given with the flags (one
// destination, no file) is named by its destination in messages, never by
// a "line 1" that no file has.
func TestSubmitTokenNamesDestination(t *testing.T) {
	t.Parallel()
	_, opt := testutil.Redis(t)
	url := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	const zone = "023e105f4ecef8ad9ca31a8372d0c353"
	code, out, stderr := run(t, "zone_id,account_id,destination_conf\n"+zone+",,sumo://endpoint1.collection.sumologic.com/receiver/v1/http/ZaVnC4dhaV3\n",
		"enqueue", "--skip-preflight", "--redis", url, "-")
	if code != 0 {
		t.Fatalf("enqueue = %d: %s %s", code, out, stderr)
	}
	batch := strings.TrimSuffix(strings.Fields(out)[1], ":")
	const other = "sumo://endpoint1.collection.sumologic.com/receiver/v1/http/NotEnqueued1"
	code, _, stderr = run(t, "0123456789abcdef0123456789abcdef\n", "submit-token", "--redis", url, "--batch", batch, "--wait", "0s",
		"--zone-id", zone, "--destination-conf", other)
	if code != 1 || strings.Contains(stderr, "line 1") || !strings.Contains(stderr, "zone "+zone+" sumo://endpoint1.collection.sumologic.com/") ||
		!strings.Contains(stderr, "has no such destination") || strings.Contains(stderr, "NotEnqueued1") {
		t.Fatalf("submit-token of a destination not in the batch = %d: %s; want it named by its zone and redacted conf, no line", code, stderr)
	}
}
