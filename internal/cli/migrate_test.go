package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

// migrateFleet is a simulator holding 120 jobs over 40 zones, three per
// zone: one pushing to a path every zone shares, one to its own path, both
// file destinations (challenge, read by the worker), and one to S3 with
// access keys in the conf (no challenge: a PUT only).
type migrateFleet struct {
	sim   *simulator.Simulator
	url   string
	dir   string
	zones []string
	// jobs are the jobs as created, by zone and id.
	jobs map[string]map[int]cloudflare.Job
}

const migrateToken = "migrate-test-token"

func newMigrateFleet(t *testing.T) *migrateFleet {
	t.Helper()
	dir := t.TempDir()
	sim, err := simulator.New(simulator.Config{Write: writeFunc(&destination.File{}), WriteDelay: 20 * time.Millisecond,
		WriteJitter: 30 * time.Millisecond, APIToken: migrateToken})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	f := &migrateFleet{sim: sim, url: srv.URL + "/client/v4", dir: dir, jobs: map[string]map[int]cloudflare.Job{}}
	for z := range 40 {
		zone := fmt.Sprintf("%032x", 0xa000+z)
		f.zones = append(f.zones, zone)
		f.jobs[zone] = map[int]cloudflare.Job{}
		for _, body := range []string{
			fmt.Sprintf(`{"destination_conf":"file://%s/shared/old","dataset":"http_requests","name":"z%d.example","enabled":true,`+
				`"output_options":{"field_names":["RayID","ClientIP"],"timestamp_format":"rfc3339","sample_rate":0.5},"max_upload_records":%d}`, dir, z, 1000+z),
			fmt.Sprintf(`{"destination_conf":"file://%s/own/%d/old","dataset":"firewall_events","frequency":"low",`+
				`"filter":"{\"where\":{\"key\":\"Action\",\"operator\":\"eq\",\"value\":\"block\"}}","max_upload_interval_seconds":%d}`, dir, z, 30+z),
			fmt.Sprintf(`{"destination_conf":"s3://logs-bucket/z%d?region=us-east-1&access-key-id=AKIAOLDKEY%04d&secret-access-key=OLDSECRET%04dxyz",`+
				`"dataset":"dns_logs","enabled":true,"kind":"edge","logpull_options":"fields=RayID&timestamps=unix"}`, z, z, z),
		} {
			if _, err := sim.AddJob("zone", zone, []byte(body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	api, err := cloudflare.New(cloudflare.Config{BaseURL: f.url, Credentials: cloudflare.Credentials{APIToken: migrateToken}})
	if err != nil {
		t.Fatal(err)
	}
	for _, zone := range f.zones {
		jobs, err := api.ListJobs(context.Background(), cloudflare.Target{Scope: "zone", ID: zone})
		if err != nil || len(jobs) != 3 {
			t.Fatalf("jobs of %s: %v %v", zone, jobs, err)
		}
		for _, j := range jobs {
			f.jobs[zone][j.ID] = j
		}
	}
	return f
}

// list returns the jobs as the simulator has them now.
func (f *migrateFleet) list(t *testing.T) map[string]map[int]cloudflare.Job {
	t.Helper()
	api, _ := cloudflare.New(cloudflare.Config{BaseURL: f.url, Credentials: cloudflare.Credentials{APIToken: migrateToken}})
	out := map[string]map[int]cloudflare.Job{}
	for _, zone := range f.zones {
		jobs, err := api.ListJobs(context.Background(), cloudflare.Target{Scope: "zone", ID: zone})
		if err != nil {
			t.Fatal(err)
		}
		out[zone] = map[int]cloudflare.Job{}
		for _, j := range jobs {
			out[zone][j.ID] = j
		}
	}
	return out
}

// newConf is where the test moves a job: the shared path to another shared
// path, an own path to another own path, S3 to new access keys.
func (f *migrateFleet) newConf(z int, j cloudflare.Job) string {
	switch j.Dataset {
	case "http_requests":
		return "file://" + f.dir + "/shared/new"
	case "firewall_events":
		return fmt.Sprintf("file://%s/own/%d/new", f.dir, z)
	}
	return fmt.Sprintf("s3://logs-bucket/z%d?region=us-east-1&access-key-id=AKIANEWKEY%04d&secret-access-key=NEWSECRET%04dxyz", z, z, z)
}

// TestMigrateKillResume moves the 60 jobs of every other zone with
// migrate FILE, kills the process with SIGKILL midway, and runs the same
// command again (on a shared Redis this time): every selected job moved
// exactly once, its other settings as they were, no other job touched,
// one outcome per job in the journal, and no secret in the output, the
// journal, the report or Redis.
func TestMigrateKillResume(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the migrate command twice as a process")
	}
	t.Parallel()
	f := newMigrateFleet(t)
	var rows strings.Builder
	rows.WriteString("zone_id,account_id,job_id,destination_conf\n")
	selected := map[int]string{} // job id -> new conf
	for z, zone := range f.zones {
		if z%2 == 1 {
			continue
		}
		for id, j := range f.jobs[zone] {
			selected[id] = f.newConf(z, j)
			fmt.Fprintf(&rows, "%s,,%d,%s\n", zone, id, selected[id])
		}
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "moves.csv")
	if err := os.WriteFile(file, []byte(rows.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "migrate.log")
	args := []string{"migrate", file, "--cloudflare-api-url", f.url, "--api-rate", "0", "--poll-first", "0", "--poll-interval", "50ms",
		"--concurrency", "20", "--log-level", "warn", "--progress-interval", "1s"}
	env := []string{"CLOUDFLARE_API_TOKEN=" + migrateToken}

	// 1. Killed midway, on its embedded Redis.
	a := startChildEnv(t, logPath, env, args...)
	deadline := time.Now().Add(2 * time.Minute)
	// Past the 20 S3 jobs (a PUT each, no challenge): some challenged
	// jobs moved, others not.
	for f.sim.Stats().JobsUpdated < 35 {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("35 jobs not moved after 2 minutes; log:\n%s", b)
		}
		select {
		case err := <-a.done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("migrate ended before the kill: %v\n%s", err, b)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.done
	movedFirst := f.sim.Stats().JobsUpdated
	journal := strings.TrimSuffix(file, ".csv") + ".journal.jsonl"
	if jb, err := os.ReadFile(journal); err == nil {
		t.Logf("killed with %d jobs moved, %d outcomes journaled", movedFirst, strings.Count(string(jb), `"event":"migrated"`))
	}
	if movedFirst >= len(selected) {
		t.Fatalf("every job moved before the kill (%d): the test did not kill midway", movedFirst)
	}

	// 2. The same command again, on a shared Redis, to the end.
	rdb, opt := testutil.Redis(t)
	b := startChildEnv(t, logPath, env, append(args, "--redis", fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB))...)
	select {
	case err := <-b.done:
		if err != nil {
			out, _ := os.ReadFile(logPath)
			t.Fatalf("second run: %v\n%s", err, out)
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("second run did not end in 3 minutes")
	}

	// Every selected job moved once, with its settings; no other touched.
	st := f.sim.Stats()
	for id := range selected {
		if st.JobMoves[id] != 1 {
			t.Errorf("job %d moved %d times", id, st.JobMoves[id])
		}
	}
	if len(st.JobMoves) != len(selected) || st.JobsUpdated != len(selected) {
		t.Errorf("%d jobs moved, %d PUTs; want %d", len(st.JobMoves), st.JobsUpdated, len(selected))
	}
	now := f.list(t)
	for _, zone := range f.zones {
		for id, was := range f.jobs[zone] {
			is := now[zone][id]
			want := was
			if to, ok := selected[id]; ok {
				want.DestinationConf = to
			}
			if fmt.Sprintf("%+v", jobFields(is)) != fmt.Sprintf("%+v", jobFields(want)) {
				t.Errorf("zone %s job %d:\n got %+v\nwant %+v", zone, id, jobFields(is), jobFields(want))
			}
		}
	}

	// One outcome per job in the journal: migrated.
	jf, err := os.Open(journal)
	if err != nil {
		t.Fatal(err)
	}
	defer jf.Close()
	outcomes := map[int]string{}
	sc := bufio.NewScanner(jf)
	for sc.Scan() {
		var l migLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		if l.Event.Event == plannedLine {
			continue
		}
		if prev, dup := outcomes[l.JobID]; dup {
			t.Errorf("job %d: second outcome %s after %s", l.JobID, l.Event.Event, prev)
		}
		outcomes[l.JobID] = string(l.Event.Event)
	}
	for id := range selected {
		if outcomes[id] != "migrated" {
			t.Errorf("job %d: outcome %q, want migrated", id, outcomes[id])
		}
	}
	if len(outcomes) != len(selected) {
		t.Errorf("%d outcomes, want %d", len(outcomes), len(selected))
	}

	// No secret anywhere.
	logs, _ := os.ReadFile(logPath)
	jb, _ := os.ReadFile(journal)
	rb, _ := os.ReadFile(strings.TrimSuffix(file, ".csv") + ".results.csv")
	if !strings.Contains(string(rb), "migrated") {
		t.Errorf("report:\n%s", rb)
	}
	secret := regexp.MustCompile(`(OLD|NEW)SECRET|AKIA(OLD|NEW)KEY|eyJ`)
	for name, s := range map[string]string{"output": string(logs), "journal": string(jb), "report": string(rb), "redis": testutil.DumpRedis(t, rdb)} {
		if m := secret.FindString(s); m != "" {
			t.Errorf("%s holds a secret (%q)", name, m)
		}
	}
	t.Logf("%d jobs selected, %d moved before the kill; simulator: %s", len(selected), movedFirst, st)
}

// jobFields are the settings of a job, the conf included, without health.
func jobFields(j cloudflare.Job) []any {
	return []any{j.ID, j.Dataset, j.Name, j.DestinationConf, j.Enabled, j.Kind, j.Frequency, j.LogpullOptions, string(j.OutputOptions),
		j.Filter, j.MaxUploadBytes, j.MaxUploadIntervalSeconds, j.MaxUploadRecords}
}
