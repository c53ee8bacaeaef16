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

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/redact"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// migrateFleet is a simulator holding jobs over 40 zones.
type migrateFleet struct {
	sim   *simulator.Simulator
	url   string
	dir   string
	zones []string
	// jobs are the jobs as created, by zone and id.
	jobs map[string]map[int]cloudflare.Job
}

const (
	migrateToken   = "migrate-test-token"
	migrateAccount = "0123456789abcdef0123456789abcdef"
)

// newMigrateFleet is a fleet of 120 jobs, three per zone: one pushing to a
// path every zone shares, one to its own path, both file destinations
// (challenge, read by the worker), and one to S3 with access keys in the
// conf (no challenge: a PUT only).
func newMigrateFleet(t *testing.T, tweak ...func(*simulator.Config)) *migrateFleet {
	t.Helper()
	dir := t.TempDir()
	cfg := simulator.Config{Write: writeFunc(&destination.File{}), WriteDelay: 20 * time.Millisecond, WriteJitter: 30 * time.Millisecond,
		APIToken: migrateToken}
	for _, tw := range tweak {
		tw(&cfg)
	}
	return startMigrateFleet(t, cfg, dir, func(z int) []string {
		return []string{
			fmt.Sprintf(`{"destination_conf":"file://%s/shared/old","dataset":"http_requests","name":"z%d.example","enabled":true,`+
				`"output_options":{"field_names":["RayID","ClientIP"],"timestamp_format":"rfc3339","sample_rate":0.5},"max_upload_records":%d}`, dir, z, 1000+z),
			fmt.Sprintf(`{"destination_conf":"file://%s/own/%d/old","dataset":"firewall_events","frequency":"low",`+
				`"filter":"{\"where\":{\"key\":\"Action\",\"operator\":\"eq\",\"value\":\"block\"}}","max_upload_interval_seconds":%d}`, dir, z, 30+z),
			fmt.Sprintf(`{"destination_conf":"s3://logs-bucket/z%d?region=us-east-1&access-key-id=AKIAOLDKEY%04d&secret-access-key=OLDSECRET%04dxyz",`+
				`"dataset":"dns_logs","enabled":true,"kind":"edge","logpull_options":"fields=RayID&timestamps=unix"}`, z, z, z),
		}
	})
}

// startMigrateFleet starts a simulator on cfg (its zones set here) with
// 40 zones of migrateAccount, and creates the jobs that jobs
// returns for each zone (JSON bodies of a create).
func startMigrateFleet(t *testing.T, cfg simulator.Config, dir string, jobs func(z int) []string) *migrateFleet {
	t.Helper()
	var zones []simulator.Zone
	for z := range 40 {
		name := fmt.Sprintf("blog-%d.example.com", z)
		if z%2 == 0 {
			name = fmt.Sprintf("shop-%d.example.com", z)
		}
		zones = append(zones, simulator.Zone{ID: fmt.Sprintf("%032x", 0xa000+z), Name: name, Status: "active", AccountID: migrateAccount})
	}
	cfg.Zones = zones
	sim, err := simulator.New(cfg)
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
		for _, body := range jobs(z) {
			if _, err := sim.AddJobJSON("zone", zone, []byte(body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.jobs = f.list(t)
	for _, zone := range f.zones {
		if n := len(f.jobs[zone]); n != len(jobs(0)) {
			t.Fatalf("zone %s has %d jobs, want %d", zone, n, len(jobs(0)))
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

// checkMoved checks that every selected job (id -> new conf) moved once
// (one PUT) with its other settings unchanged, that no other job was
// touched, and that the journal has one outcome per job: migrated.
func (f *migrateFleet) checkMoved(t *testing.T, selected map[int]string, journal string) {
	t.Helper()
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
			want := was
			if to, ok := selected[id]; ok {
				want.DestinationConf = to
			}
			if got := now[zone][id]; fmt.Sprintf("%+v", jobFields(got)) != fmt.Sprintf("%+v", jobFields(want)) {
				t.Errorf("zone %s job %d:\n got %+v\nwant %+v", zone, id, jobFields(got), jobFields(want))
			}
		}
	}

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
		t.Errorf("%d outcomes in the journal, want %d", len(outcomes), len(selected))
	}
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

	// 1. Killed midway, on its embedded Redis: past the 20 S3 jobs (a PUT
	// each, no challenge), some challenged jobs moved, others not.
	f.killAfterPuts(t, startChildEnv(t, logPath, env, args...), 35, logPath)
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

	// Every selected job moved once, with its settings; no other touched;
	// one outcome per job in the journal.
	f.checkMoved(t, selected, journal)

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
	t.Logf("%d jobs selected, %d moved before the kill; simulator: %s", len(selected), movedFirst, f.sim.Stats())
}

// killAfterPuts waits until the simulator has taken n job updates (PUTs),
// then kills migrate's process c with SIGKILL and waits for it to end. It
// fails the test, with c's log at logPath, if c ends first or if the n
// updates take longer than hangAfter.
func (f *migrateFleet) killAfterPuts(t *testing.T, c *child, n int, logPath string) {
	t.Helper()
	deadline := time.Now().Add(hangAfter)
	for f.sim.Stats().JobsUpdated < n {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("%d jobs not moved after %s; log:\n%s", n, hangAfter, b)
		}
		select {
		case err := <-c.done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("migrate ended before the kill: %v\n%s", err, b)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.done
}

// jobFields are the settings of a job, the conf included, without health.
func jobFields(j cloudflare.Job) []any {
	return []any{j.ID, j.Dataset, j.Name, j.DestinationConf, j.Enabled, j.Kind, j.Frequency, j.LogpullOptions, string(j.OutputOptions),
		j.Filter, j.MaxUploadBytes, j.MaxUploadIntervalSeconds, j.MaxUploadRecords}
}

// runMigrateCmd runs migrate in this process and returns its exit code,
// standard output and error.
func runMigrateCmd(t *testing.T, f *migrateFleet, stdin string, args ...string) (int, string) {
	t.Helper()
	var out testutil.Buffer
	env := Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &out, Getenv: func(k string) string {
		if k == "CLOUDFLARE_API_TOKEN" {
			return migrateToken
		}
		return ""
	}}
	base := []string{"migrate", "--cloudflare-api-url", f.url, "--api-rate", "0", "--poll-first", "0", "--poll-interval", "50ms",
		"--log-level", "warn", "--progress-interval", "1s", "--journal", filepath.Join(t.TempDir(), "j.jsonl")}
	code := Run(context.Background(), append(base, args...), env)
	return code, out.String()
}

// TestMigrateSelect: selection by zone, dataset and --match, the template's
// placeholders, --dry-run (redacted, nothing changed, the calls counted),
// S3 key rotation (a PUT only), a failed migration leaving its job as it
// was (exit 1), --copy within the job limit, and secrets never shown.
func TestMigrateSelect(t *testing.T) {
	t.Parallel()
	f := newMigrateFleet(t)
	zones := func(zs ...int) string {
		var ids []string
		for _, z := range zs {
			ids = append(ids, f.zones[z])
		}
		return strings.Join(ids, ",")
	}
	// Two azure jobs, on one container.
	for _, z := range []int{0, 1} {
		if _, err := f.sim.AddJobJSON("zone", f.zones[z], []byte(fmt.Sprintf(`{"destination_conf":"azure://acct.blob.core.windows.net/cont/z%d?sv=2020-02-10&sp=w&sig=OLDSIGxyz","dataset":"nel_reports"}`, z))); err != nil {
			t.Fatal(err)
		}
	}
	before := f.list(t)
	secrets := regexp.MustCompile(`(OLD|NEW)SECRET|AKIA(OLD|NEW)KEY|(OLD|NEW)SIG|eyJ`)

	// Dry run: the own-path jobs of zones 0-3, their new confs, the calls.
	code, out := runMigrateCmd(t, f, "", "--zone", zones(0, 1, 2, 3), "--dataset", "firewall_events", "--match", `/own/\d+/old$`,
		"--to", "file://"+f.dir+"/moved/{zone_id}/{dataset}", "--dry-run")
	if code != 0 || strings.Count(out, "before:") != 4 || !strings.Contains(out, "/moved/"+f.zones[2]+"/firewall_events") ||
		!strings.Contains(out, "4 spent listing jobs, about 16 to migrate") {
		t.Fatalf("dry run: %d\n%s", code, out)
	}
	if st := f.sim.Stats(); st.JobsUpdated != 0 || st.ChallengesIssued != 0 {
		t.Fatalf("dry run changed something: %s", st)
	}
	// By account and zone name: shop-10 ... shop-18, {zone_name} filled.
	code, out = runMigrateCmd(t, f, "", "--account", migrateAccount, "--zones", "shop-1*", "--dataset", "firewall_events",
		"--to", "file://"+f.dir+"/byname/{zone_name}", "--dry-run")
	if code != 0 || strings.Count(out, "before:") != 5 || !strings.Contains(out, "/byname/shop-14.example.com") ||
		!strings.Contains(out, "6 spent listing jobs") {
		t.Fatalf("account dry run: %d\n%s", code, out)
	}
	// An azure SAS rotation, dry: both jobs, the SAS never shown.
	code, out = runMigrateCmd(t, f, "sv=2022-11-02&sp=w&sig=NEWSIGxyz", "--zone", zones(0, 1, 2), "--azure-sas", "-", "--dry-run")
	if code != 0 || strings.Count(out, "before:") != 2 || secrets.MatchString(out) {
		t.Fatalf("azure dry run: %d\n%s", code, out)
	}

	// The S3 keys of zones 0-9: PUTs, no challenge.
	code, out = runMigrateCmd(t, f, "access-key-id=AKIANEWKEYzz&secret-access-key=NEWSECRETzz", "--zone", zones(0, 1, 2, 3, 4, 5, 6, 7, 8, 9), "--s3-keys", "-")
	st := f.sim.Stats()
	if code != 0 || st.JobsUpdated != 10 || st.ChallengesIssued != 0 || secrets.MatchString(out) || !strings.Contains(out, "migrated 10") {
		t.Fatalf("s3 keys: %d, %s\n%s", code, st, out)
	}

	// The own paths of zones 0-3 move; a run again finds them unchanged.
	args := []string{"--zone", zones(0, 1, 2, 3), "--match", `/own/\d+/old$`, "--to", "file://" + f.dir + "/moved/{zone_id}/{dataset}"}
	if code, out = runMigrateCmd(t, f, "", args...); code != 0 || !strings.Contains(out, "migrated 4") {
		t.Fatalf("move: %d\n%s", code, out)
	}
	if code, out = runMigrateCmd(t, f, "", "--account", migrateAccount, "--zones", "shop-2*", "--dataset", "firewall_events",
		"--to", "file://"+f.dir+"/byname/{zone_name}"); code != 0 || !strings.Contains(out, "migrated 6") { // shop-2 and shop-20 ... shop-28
		t.Fatalf("account move: %d\n%s", code, out)
	}
	// A target the simulator cannot write to: the challenge file never
	// comes, the job fails and stays as it was.
	code, out = runMigrateCmd(t, f, "", "--zone", zones(5), "--dataset", "firewall_events", "--to", "file:///dev/null/cannot/{zone_id}",
		"--poll-deadline", "1s")
	if code != 1 || !strings.Contains(out, "failed 1") {
		t.Fatalf("failing move: %d\n%s", code, out)
	}
	// A copy of zone 6's own-path job: a second job, the first untouched;
	// a second copy would pass the 4 jobs of the zone: failed, no call.
	if code, out = runMigrateCmd(t, f, "", "--zone", zones(6), "--dataset", "firewall_events", "--to", "file://"+f.dir+"/copy/{zone_id}", "--copy"); code != 0 || !strings.Contains(out, "copied 1") {
		t.Fatalf("copy: %d\n%s", code, out)
	}
	creates := f.sim.Stats().Total(simulator.EndpointCreateJob)
	if code, out = runMigrateCmd(t, f, "", "--zone", zones(6), "--dataset", "http_requests", "--to", "file://"+f.dir+"/copy2/{zone_id}", "--copy"); code != 1 || !strings.Contains(out, "failed 1") {
		t.Fatalf("copy over the limit: %d\n%s", code, out)
	}
	if rb, _ := os.ReadFile(filepath.Join(filepath.Dir(strings.TrimSpace(out[strings.LastIndex(out, "report: ")+8:strings.LastIndex(out, "\njournal")])), "j.results.csv")); !strings.Contains(string(rb), "more than 4 jobs") {
		t.Errorf("copy over the limit: report\n%s", rb)
	}
	if f.sim.Stats().Total(simulator.EndpointCreateJob) != creates {
		t.Error("a copy over the limit was tried")
	}

	now := f.list(t)
	for z, zone := range f.zones {
		for id, was := range before[zone] {
			want := was
			switch {
			case was.Dataset == "dns_logs" && z < 10:
				want.DestinationConf = strings.NewReplacer(fmt.Sprintf("AKIAOLDKEY%04d", z), "AKIANEWKEYzz", fmt.Sprintf("OLDSECRET%04dxyz", z), "NEWSECRETzz").Replace(was.DestinationConf)
			case was.Dataset == "firewall_events" && (z == 2 || z >= 20 && z < 30) && z%2 == 0:
				want.DestinationConf = fmt.Sprintf("file://%s/byname/shop-%d.example.com", f.dir, z)
			case was.Dataset == "firewall_events" && z < 4:
				want.DestinationConf = "file://" + f.dir + "/moved/" + zone + "/firewall_events"
			}
			if fmt.Sprint(jobFields(now[zone][id])) != fmt.Sprint(jobFields(want)) {
				t.Errorf("zone %d job %d:\n got %v\nwant %v", z, id, jobFields(now[zone][id]), jobFields(want))
			}
		}
	}
	if n := len(now[f.zones[6]]); n != 4 {
		t.Errorf("zone 6 has %d jobs, want 4 (3 and the copy)", n)
	}
	t.Logf("simulator: %s", f.sim.Stats())
}

// TestRotationApply: a new SAS replaces an azure conf's whole query, new
// keys replace only the key parameters of an s3 conf that has them; every
// other byte stays; other confs are not the rotation's.
func TestRotationApply(t *testing.T) {
	t.Parallel()
	sas := &rotation{azure: true, raw: "sv=2022-11-02&sp=w&sig=NEW%2Bsig"}
	keys := &rotation{raw: "access-key-id=AKIANEW&secret-access-key=new/secret", keys: map[string][]string{
		"access-key-id": {"AKIANEW"}, "secret-access-key": {"new/secret"}}}
	for _, tc := range []struct {
		r        *rotation
		old, new string
	}{
		{sas, "azure://acct.blob.core.windows.net/cont/logs/{DATE}?sv=2020-02-10&sp=w&sig=old", "azure://acct.blob.core.windows.net/cont/logs/{DATE}?sv=2022-11-02&sp=w&sig=NEW%2Bsig"},
		{sas, "s3://bkt/p?region=us-east-1", ""},
		{keys, "s3://bkt/p/{DATE}?region=eu-west-1&access-key-id=AKIAOLD&secret-access-key=old&sse=AES256",
			"s3://bkt/p/{DATE}?region=eu-west-1&access-key-id=AKIANEW&secret-access-key=new%2Fsecret&sse=AES256"},
		{keys, "s3://bkt/p?region=us-east-1", ""},
		{keys, "azure://acct.blob.core.windows.net/cont/x?sig=old", ""},
	} {
		c, err := tasks.ParseConf(tc.old)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := tc.r.apply(c)
		if ok != (tc.new != "") || got != tc.new {
			t.Errorf("%s:\n got %q %v\nwant %q", redact.String(tc.old), got, ok, tc.new)
		}
	}
}

// TestExpand: the template's placeholders, and the current query kept
// when the template has none.
func TestExpand(t *testing.T) {
	t.Parallel()
	old, _ := tasks.ParseConf("s3://old/team/http/{DATE}?region=us-east-1&sse=AES256")
	job := cloudflare.Job{ID: 3, Dataset: "http_requests"}
	if got := expand("s3://new/{zone_id}/{dataset}/{path}", "zone", "0123", job, old); got != "s3://new/0123/http_requests/team/http/{DATE}?region=us-east-1&sse=AES256" {
		t.Errorf("got %q", got)
	}
	if got := expand("gs://new/{account_id}{zone_id}", "account", "ab", job, old); got != "gs://new/ab?region=us-east-1&sse=AES256" {
		t.Errorf("got %q", got)
	}
	if got := expand("s3://new/x?region=eu-west-1", "zone", "z", job, old); got != "s3://new/x?region=eu-west-1" {
		t.Errorf("got %q", got)
	}
}

// TestMigrateCredentialsAndBudget: migrate runs on a credentials file
// alone (no CLOUDFLARE_API_TOKEN): --credential names the selection's
// credential and FILE's rows name theirs. The selection's listings (a zone
// page and 20 zones' jobs) take from that credential's budget (api_rate
// 5/1s), so that they never meet Cloudflare's limit of the token (20 per
// second here); the progress line counts the moves; and a run that finds
// its jobs on their target sends one unchanged event per job to the Redis
// stream, as the worker sends its outcomes.
func TestMigrateCredentialsAndBudget(t *testing.T) {
	t.Parallel()
	const tenantToken = "tenant-token-0123456789"
	f := newMigrateFleet(t, func(c *simulator.Config) {
		c.APIToken = "" // any token but revoked ones
		c.TokenRateLimits = map[string]int{tenantToken: 20}
		c.RateWindow, c.Penalty = time.Second, 10*time.Second
	})
	dir := t.TempDir()
	credFile := filepath.Join(dir, "credentials.yaml")
	if err := os.WriteFile(credFile, []byte("tenant:\n  token: "+tenantToken+"\n  api_rate: 5/1s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rdb, opt := testutil.Redis(t)
	redisURL := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	run := func(stdin string, args ...string) (int, string) {
		var out testutil.Buffer
		env := Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }}
		base := []string{"migrate", "--cloudflare-api-url", f.url, "--credentials", credFile, "--poll-first", "0", "--poll-interval", "50ms",
			"--log-level", "warn", "--progress-interval", "1s"}
		return Run(context.Background(), append(base, args...), env), out.String()
	}
	sel := []string{"--account", migrateAccount, "--zones", "shop-*", "--credential", "tenant", "--dataset", "firewall_events",
		"--match", `/(own/(2|4)/old|tenant/[0-9a-f]{32})$`, "--to", "file://" + f.dir + "/tenant/{zone_id}"}
	code, out := run("", append(sel, "--journal", filepath.Join(dir, "a.jsonl"))...)
	st := f.sim.Stats()
	if code != 0 || !strings.Contains(out, "migrated 2") || st.JobsUpdated != 2 {
		t.Fatalf("by --credential: %d, %s\n%s", code, st, out)
	}
	if st.RateLimitedLimit != 0 {
		t.Errorf("%d calls met the token's rate limit: the listings bypass the budget (%s)", st.RateLimitedLimit, st)
	}
	if !strings.Contains(out, "jobs: migrated 2  copied 0") {
		t.Errorf("the progress line does not count the moved jobs:\n%s", out)
	}

	// FILE: the row names its credential.
	var own cloudflare.Job
	for _, j := range f.jobs[f.zones[6]] {
		if j.Dataset == "firewall_events" {
			own = j
		}
	}
	rows := fmt.Sprintf("zone_id,account_id,job_id,destination_conf,credential\n%s,,%d,file://%s/tenant/file6,tenant\n", f.zones[6], own.ID, f.dir)
	code, out = run(rows, "--journal", filepath.Join(dir, "b.jsonl"), "-")
	if code != 0 || !strings.Contains(out, "migrated 1") {
		t.Fatalf("FILE with a credential column: %d\n%s", code, out)
	}

	// Again, on a shared Redis: both jobs are on their target (the match
	// selects them there).
	code, out = run("", append(sel, "--journal", filepath.Join(dir, "c.jsonl"), "--redis", redisURL)...)
	if code != 0 || !strings.Contains(out, "unchanged 2") {
		t.Fatalf("again: %d\n%s", code, out)
	}
	entries, err := ledger.NewStore(rdb, ledger.Config{}).Read(context.Background(), "0", 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	unchanged := map[int]bool{}
	for _, e := range entries {
		if e.Event.Event == events.Unchanged {
			unchanged[e.Event.JobID] = true
		}
	}
	if len(unchanged) != 2 || len(entries) != 2 {
		t.Errorf("stream: %d events, %d unchanged jobs; want 2 unchanged events", len(entries), len(unchanged))
	}
	if strings.Contains(out, tenantToken) {
		t.Error("the token is in the output")
	}
	if st := f.sim.Stats(); st.RateLimitedLimit != 0 || st.JobsUpdated != 3 {
		t.Errorf("after all runs: %s", st)
	}
}
