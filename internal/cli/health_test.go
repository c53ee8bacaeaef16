package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

// TestJobHealth: a --create-job batch whose jobs are watched ends each
// destination by its job's health: flowing for a job that pushed,
// job_failing with Cloudflare's message (redacted) for one whose
// destination refuses the pushes, no_data_yet for a zone without traffic;
// one GET of the job per read; status, report and events show the states.
func TestJobHealth(t *testing.T) {
	t.Parallel()
	rdb, opt := testutil.Redis(t)
	url := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	const idleZone = "00000000000000000000000000000003"
	e := newE2E(t, rdb, e2eConfig{sim: simFlags{writeDelay: 50 * time.Millisecond, jobPushDelay: 500 * time.Millisecond,
		jobFailMatch: "refuses", noTraffic: idleZone}, healthDeadline: 3 * time.Second, healthInterval: 200 * time.Millisecond})
	dir := t.TempDir()
	const secret = "SPLUNKTOKEN0123"
	csv := "zone_id,account_id,destination_conf,dataset,enabled\n" +
		"00000000000000000000000000000001,,file://" + dir + "/ok,http_requests,\n" +
		"00000000000000000000000000000001,,https://refuses.example.com/in?header_Authorization=Splunk%20" + secret + ",http_requests,\n" +
		idleZone + ",,file://" + dir + "/idle,http_requests,\n" +
		"00000000000000000000000000000002,,file://" + dir + "/off,http_requests,false\n"
	code, out, stderr := run(t, csv, "enqueue", "--skip-preflight", "--create-job", "--redis", url, "-")
	if code != 0 {
		t.Fatalf("enqueue = %d: %s %s", code, out, stderr)
	}
	batch := strings.TrimSuffix(strings.Fields(out)[1], ":")
	st := e.wait(t, batch, time.Minute)
	want := map[events.State]int64{events.Flowing: 1, events.JobFailing: 1, events.NoDataYet: 1, events.Validated: 1}
	for s, n := range want {
		if st.Counts[s] != n {
			t.Errorf("%s: %d, want %d (%+v)", s, st.Counts[s], n, st.Counts)
		}
	}
	code, evs, _ := run(t, "", "events", "--redis", url, "--batch", batch)
	if code != 0 || strings.Contains(evs, secret) {
		t.Fatalf("events = %d %s", code, evs)
	}
	for _, w := range []string{`"event":"flowing"`, `"event":"no_data_yet"`, `"event":"job_failing"`,
		`is failing: error uploading to destination: AccessDenied: Access Denied, status code: 403"`} {
		if !strings.Contains(evs, w) {
			t.Errorf("events lack %s:\n%s", w, evs)
		}
	}
	// Each job enabled but the row's enabled=false one; the watched ones
	// read one GET per interval at most: within the 3 s deadline and its
	// 200 ms interval, at most 16 reads of the idle job, and far fewer of
	// the others.
	sim := e.sim.Stats()
	if sim.JobsCreated != 4 || sim.Total(simulator.EndpointJob) > 3*16 || sim.Total(simulator.EndpointJob) < 3 {
		t.Errorf("jobs %d, job reads %d: %s", sim.JobsCreated, sim.Total(simulator.EndpointJob), sim)
	}
	report := filepath.Join(t.TempDir(), "r.csv")
	if code, _, stderr := run(t, "", "report", "--redis", url, "--batch", batch, "--out", report); code != 0 {
		t.Fatalf("report = %d: %s", code, stderr)
	}
	b, _ := os.ReadFile(report)
	for _, w := range []string{"flowing", "job_failing", "no_data_yet", "AccessDenied"} {
		if !strings.Contains(string(b), w) {
			t.Errorf("report lacks %s:\n%s", w, b)
		}
	}
	// The challenge files are gone once the jobs exist (each on a path of
	// its own: no other challenge in flight there).
	for _, p := range []string{"ok", "idle", "off"} {
		if _, err := os.Stat(filepath.Join(dir, p, "ownership-challenge.txt")); !os.IsNotExist(err) {
			t.Errorf("challenge file of %s: %v, want deleted", p, err)
		}
	}
	code, out, _ = run(t, "", "status", "--redis", url, "--batch", batch)
	if code != 0 || !strings.Contains(out, "job_failing") || !strings.Contains(out, "flowing") {
		t.Errorf("status = %d %s", code, out)
	}
}

// TestRunExitsOnFailingJob: run's summary exits 1 when a job is failing,
// 0 when jobs only have no data yet.
func TestRunExitsOnFailingJob(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		state events.State
		code  int
	}{{events.JobFailing, 1}, {events.NoDataYet, 0}, {events.Flowing, 0}} {
		dir := t.TempDir()
		j, err := openJournal(filepath.Join(dir, "j.jsonl"), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		ev := events.Event{Event: events.Validated, DestinationID: "d1", Scope: "zone", ScopeID: "00000000000000000000000000000001", Destination: "file:///x", Line: 2}
		health := ev
		health.Event = c.state
		if err := j.append([]events.Event{ev, health}); err != nil {
			t.Fatal(err)
		}
		var stdout bytes.Buffer
		env := Env{Stdout: &stdout, Stderr: io.Discard, Getenv: func(string) string { return "" }}
		dests := []inputDest{{line: 2, id: "d1", scope: "zone", scopeID: ev.ScopeID, destination: "file:///x", destType: "file"}}
		err = finishRun(env, nil, "", j, dests, filepath.Join(dir, "r.csv"), filepath.Join(dir, "j.jsonl"), false, nil)
		j.close()
		got := 0
		var ee *exitError
		if errors.As(err, &ee) {
			got = ee.code
		} else if err != nil {
			got = -1
		}
		if got != c.code {
			t.Errorf("%s: exit %d (%v), want %d", c.state, got, err, c.code)
		}
		if !strings.Contains(stdout.String(), string(c.state)) {
			t.Errorf("%s: summary %s", c.state, stdout.String())
		}
	}
}
