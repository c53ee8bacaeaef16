package cli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
)

var planAccount = fmt.Sprintf("%032x", 0xacc)

// planSim is a simulator holding zones, with the simulator at hand.
type planSim struct {
	sim *simulator.Simulator
	url string
}

func newPlanSim(t *testing.T, cfg simulator.Config) *planSim {
	t.Helper()
	if cfg.Write == nil {
		cfg.Write = writeFunc(&destination.File{})
	}
	cfg.APIToken = runToken
	sim, err := simulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &planSim{sim: sim, url: srv.URL}
}

// jobs lists the jobs of a zone or account through the client.
func (ps *planSim) jobs(t *testing.T, scope, id string) []cloudflare.Job {
	t.Helper()
	c, err := cloudflare.New(cloudflare.Config{BaseURL: ps.url, Credentials: cloudflare.Credentials{APIToken: runToken}})
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := c.ListJobs(context.Background(), cloudflare.Target{Scope: scope, ID: id})
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

func planZone(i int) simulator.Zone {
	st := "active"
	if i%12 == 5 {
		st = "pending"
	}
	return simulator.Zone{ID: fmt.Sprintf("%032x", 0xa000+i), Name: fmt.Sprintf("shop%03d.example.com", i), Status: st, AccountID: planAccount}
}

// readPlan reads a plan CSV into maps by column.
func readPlan(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(recs[0], ",") != "zone_id,account_id,destination_conf,credential,dataset,job_name,output_options,zone_name" {
		t.Fatalf("header %v", recs[0])
	}
	var rows []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, c := range recs[0] {
			m[c] = r[i]
		}
		rows = append(rows, m)
	}
	return rows
}

// TestPlanThenRun (issue 24, point 6): an account of 340 zones, 310 active
// over 7 pages of GET /zones, some with the job already, some at the job
// limit. plan leaves those out and counts them, spending one call per page
// and one job listing per zone and account; run --create-job then gives
// every planned row its job and creates nothing else; a second plan has no
// rows.
func TestPlanThenRun(t *testing.T) {
	t.Parallel()
	var zones []simulator.Zone
	active := 0
	for i := range 340 {
		z := planZone(i)
		zones = append(zones, z)
		if z.Status == "active" {
			active++
		}
	}
	ps := newPlanSim(t, simulator.Config{Zones: zones})
	dir := t.TempDir()
	tmpl := "file://" + dir + "/logs/{zone_name}/{dataset}"
	acctTmpl := "file://" + dir + "/account/{account_id}/{dataset}"
	exists, limit := map[string]bool{}, map[string]bool{}
	for i, z := range zones {
		switch {
		case z.Status != "active":
		case i%17 == 0: // the job of the plan exists already
			ps.sim.AddJob("zone", z.ID, "http_requests", "file://"+dir+"/logs/"+z.Name+"/http_requests")
			exists[z.ID] = true
		case i%29 == 1: // four other jobs: the zone is at its limit
			for k := range 4 {
				ps.sim.AddJob("zone", z.ID, "dns_logs", fmt.Sprintf("https://logs.example.com/other/%d", k))
			}
			limit[z.ID] = true
		case i%31 == 2: // three other jobs: room for one
			for k := range 3 {
				ps.sim.AddJob("zone", z.ID, "dns_logs", fmt.Sprintf("https://logs.example.com/other/%d", k))
			}
		}
	}
	if active <= 300 || len(exists) == 0 || len(limit) == 0 {
		t.Fatalf("setup: %d active, %d exist, %d at limit", active, len(exists), len(limit))
	}
	env := map[string]string{"CLOUDFLARE_API_TOKEN": runToken}
	planFile := filepath.Join(dir, "plan.csv")
	args := []string{"plan", "--cloudflare-api-url", ps.url, "--api-rate", "0", "--account", planAccount,
		"--dataset", "http_requests,audit_logs", "--destination", tmpl, "--account-destination", acctTmpl, "-o", planFile}
	code, out, stderr := runEnv(t, env, "", args...)
	if code != 0 {
		t.Fatalf("plan = %d:\n%s\n%s", code, out, stderr)
	}
	st := ps.sim.Stats()
	pages := st.Count(simulator.EndpointZones, 200)
	listings := st.Count(simulator.EndpointJobs, 200)
	if pages != 7 || listings != active+1 {
		t.Fatalf("plan spent %d zone pages and %d job listings, want 7 and %d (one per zone and the account)", pages, listings, active+1)
	}
	rows := readPlan(t, planFile)
	wantRows := active - len(exists) - len(limit) + 1
	if len(rows) != wantRows {
		t.Fatalf("%d rows planned, want %d", len(rows), wantRows)
	}
	byZone := map[string]bool{}
	for _, r := range rows {
		switch {
		case r["account_id"] == planAccount:
			if r["zone_id"] != "" || r["dataset"] != "audit_logs" || r["destination_conf"] != "file://"+dir+"/account/"+planAccount+"/audit_logs" {
				t.Fatalf("account row %v", r)
			}
		case exists[r["zone_id"]] || limit[r["zone_id"]]:
			t.Fatalf("row of a zone left out: %v", r)
		default:
			if r["destination_conf"] != "file://"+dir+"/logs/"+r["zone_name"]+"/http_requests" || r["job_name"] != r["zone_name"] || byZone[r["zone_id"]] {
				t.Fatalf("zone row %v", r)
			}
			byZone[r["zone_id"]] = true
		}
	}
	for _, z := range zones {
		if z.Status != "active" && byZone[z.ID] {
			t.Fatalf("pending zone %s planned", z.Name)
		}
	}
	for _, want := range []string{
		fmt.Sprintf("plan: %d zones listed (status active) over 7 pages", active),
		fmt.Sprintf("plan: %d rows planned (%d zone, 1 account)", wantRows, wantRows-1),
		fmt.Sprintf("left out: %d rows exists, %d rows at the job limit", len(exists), len(limit)),
		fmt.Sprintf("API calls spent: %d (7 zone pages, %d job listings, 0 field lists", 7+active+1, active+1),
		fmt.Sprintf("run --create-job will spend about %d API calls", 3*wantRows+wantRows),
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("summary lacks %q:\n%s", want, stderr)
		}
	}

	created := ps.sim.Stats().JobsCreated
	code, out, stderr = runEnv(t, env, "", "run", "--cloudflare-api-url", ps.url, "--api-rate", "0", "--poll-first", "0",
		"--poll-interval", "100ms", "--progress-interval", "1s", "--skip-preflight", "--create-job", planFile)
	if code != 0 {
		t.Fatalf("run = %d:\n%s\n%s", code, out, stderr)
	}
	st = ps.sim.Stats()
	if n := st.JobsCreated - created; n != wantRows || st.JobsRejectedLimit+st.JobsRejectedDuplicate != 0 {
		t.Fatalf("run created %d jobs (%d refused at the limit, %d duplicates), want %d", n, st.JobsRejectedLimit, st.JobsRejectedDuplicate, wantRows)
	}
	for _, r := range rows {
		scope, id := "zone", r["zone_id"]
		if id == "" {
			scope, id = "account", r["account_id"]
		}
		found := 0
		for _, j := range ps.jobs(t, scope, id) {
			if j.Dataset == r["dataset"] && j.DestinationConf == r["destination_conf"] {
				found++
			}
		}
		if found != 1 {
			t.Fatalf("%s %s has %d jobs of its row", scope, id, found)
		}
	}

	again := filepath.Join(dir, "again.csv")
	args[len(args)-1] = again
	code, out, stderr = runEnv(t, env, "", args...)
	if code != 0 {
		t.Fatalf("second plan = %d:\n%s\n%s", code, out, stderr)
	}
	if rows := readPlan(t, again); len(rows) != 0 {
		t.Fatalf("second plan has %d rows:\n%s", len(rows), stderr)
	}
	if want := fmt.Sprintf("left out: %d rows exists, %d rows at the job limit", len(exists)+wantRows, len(limit)); !strings.Contains(stderr, want) ||
		!strings.Contains(stderr, "nothing to do") {
		t.Fatalf("second plan summary lacks %q:\n%s", want, stderr)
	}
}

// TestPlanBadInput: bad input is exit 2 with an error naming the cause,
// and nothing is written, planned or enqueued.
func TestPlanBadInput(t *testing.T) {
	t.Parallel()
	long := simulator.Zone{ID: fmt.Sprintf("%032x", 0xb00), Name: "a-zone-name-so-long-that-no-bucket-can-carry-it-whole.example.com", Status: "active", AccountID: planAccount}
	zones := []simulator.Zone{planZone(0), planZone(1), long}
	ps := newPlanSim(t, simulator.Config{Zones: zones})
	forbidden := newPlanSim(t, simulator.Config{Zones: zones, ZoneRead: simulator.ZoneReadForbidden})
	empty := newPlanSim(t, simulator.Config{Zones: zones, ZoneRead: simulator.ZoneReadEmpty})
	env := map[string]string{"CLOUDFLARE_API_TOKEN": runToken}
	for _, tc := range []struct {
		name string
		url  string
		args []string
		want []string
	}{
		{"unknown account", ps.url, []string{"--account", fmt.Sprintf("%032x", 0xdead), "--dataset", "http_requests", "--destination", "https://logs.example.com/{zone_name}"},
			[]string{"account 0000000000000000000000000000dead: GET /zones lists no zones", "Zone Read"}},
		{"account not hex", ps.url, []string{"--account", "example", "--dataset", "http_requests", "--destination", "https://logs.example.com/{zone_name}"},
			[]string{`-account "example": an account id is 32 hex characters`}},
		{"unknown placeholder", ps.url, []string{"--account", planAccount, "--dataset", "http_requests", "--destination", "https://logs.example.com/{zone}/{DATE}"},
			[]string{"-destination: unknown placeholder {zone} (known: {zone_name} {zone_id} {account_id} {dataset}"}},
		{"zone placeholder in account template", ps.url, []string{"--account", planAccount, "--dataset", "audit_logs", "--account-destination", "https://logs.example.com/{zone_name}"},
			[]string{"-account-destination: unknown placeholder {zone_name}"}},
		{"no valid conf", ps.url, []string{"--account", planAccount, "--dataset", "http_requests", "--destination", "r2://logs-{zone_name}/x?account-id=" + planAccount + "&access-key-id=AKIDPLAN&secret-access-key=PLANSECRET"},
			[]string{"-destination for zone " + long.Name + " (" + long.ID + "), dataset http_requests: r2://logs-" + long.Name + "/x?account-id=", "is no valid destination_conf: ", "invalid bucket name"}},
		{"account dataset without template", ps.url, []string{"--account", planAccount, "--dataset", "gateway_dns", "--destination", "https://logs.example.com/{zone_name}"},
			[]string{"-account-destination: the template of account rows is required for gateway_dns"}},
		{"unknown dataset", ps.url, []string{"--account", planAccount, "--dataset", "http_request", "--destination", "https://logs.example.com/{zone_name}"},
			[]string{`-dataset "http_request": not a Logpush dataset`}},
		{"no zone read, refused", forbidden.url, []string{"--account", planAccount, "--dataset", "http_requests", "--destination", "https://logs.example.com/{zone_name}"},
			[]string{"cannot list zones", "http 403", "Zone Read"}},
		{"no zone read, no zones", empty.url, []string{"--account", planAccount, "--dataset", "http_requests", "--destination", "https://logs.example.com/{zone_name}"},
			[]string{"lists no zones", "Zone Read"}},
		{"unknown field", ps.url, []string{"--account", planAccount, "--dataset", "http_requests", "--destination", "https://logs.example.com/{zone_name}", "--fields", "RayID,ClientIp,EdgeStartTimestmp"},
			[]string{`-fields: http_requests has no field "ClientIp" (did you mean ClientIP?); "EdgeStartTimestmp" (did you mean EdgeStartTimestamp`}},
		{"unknown credential", ps.url, []string{"--account", planAccount, "--dataset", "http_requests", "--destination", "https://logs.example.com/{zone_name}", "--credential", "nosuch"},
			[]string{"-credential nosuch: not in the credentials file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "plan.csv")
			args := append([]string{"plan", "--cloudflare-api-url", tc.url, "--api-rate", "0", "-o", out}, tc.args...)
			code, stdout, stderr := runEnv(t, env, "", args...)
			if code != 2 {
				t.Fatalf("plan = %d, want 2:\n%s\n%s", code, stdout, stderr)
			}
			if strings.Contains(stderr, "PLANSECRET") {
				t.Errorf("a secret leaked:\n%s", stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a plan was written: %v", err)
			}
			// run with the same selection starts nothing.
			journal := filepath.Join(dir, "j.journal.jsonl")
			rargs := append([]string{"run", "--cloudflare-api-url", tc.url, "--api-rate", "0", "--skip-preflight", "--journal", journal}, tc.args...)
			code, stdout, stderr = runEnv(t, env, "", rargs...)
			if code != 2 {
				t.Fatalf("run = %d, want 2:\n%s\n%s", code, stdout, stderr)
			}
			if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 0 {
				t.Errorf("run left files: %v", m)
			}
		})
	}
	for _, s := range []*planSim{ps, forbidden, empty} {
		if st := s.sim.Stats(); st.ChallengesIssued != 0 || st.Count(simulator.EndpointJobs, 200) != 0 {
			t.Fatalf("bad input reached the jobs: %d challenges, %d job listings", st.ChallengesIssued, st.Count(simulator.EndpointJobs, 200))
		}
	}
}

// TestPlanFieldsAndSkip: --fields resolves once per (scope kind, dataset)
// into output_options; --skip-existing-check lists no jobs and plans every
// row; --zones keeps the matching zones; --credential picks the credential
// and rows carry its name.
func TestPlanFieldsAndSkip(t *testing.T) {
	t.Parallel()
	var zones []simulator.Zone
	for i := range 12 {
		zones = append(zones, planZone(i))
	}
	ps := newPlanSim(t, simulator.Config{Zones: zones})
	ps.sim.AddJob("zone", zones[0].ID, "http_requests", "https://logs.example.com/"+zones[0].Name+"/http_requests/{DATE}")
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds.yaml")
	if err := os.WriteFile(creds, []byte("lister:\n  token: "+runToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "plan.csv")
	code, stdout, stderr := runEnv(t, nil, "", "plan", "--cloudflare-api-url", ps.url, "--api-rate", "0", "-o", out,
		"--credentials", creds, "--credential", "lister", "--account", planAccount, "--dataset", "http_requests,firewall_events",
		"--destination", "https://logs.example.com/{zone_name}/{dataset}/{DATE}", "--fields", "RayID,ClientIP", "--zones", "shop00*,shop011.example.com",
		"--skip-existing-check")
	if code != 0 {
		t.Fatalf("plan = %d:\n%s\n%s", code, stdout, stderr)
	}
	st := ps.sim.Stats()
	if st.Count(simulator.EndpointJobs, 200) != 0 || st.Count(simulator.EndpointFields, 200) != 2 {
		t.Fatalf("%d job listings, %d field lists: want 0 and 2", st.Count(simulator.EndpointJobs, 200), st.Count(simulator.EndpointFields, 200))
	}
	rows := readPlan(t, out)
	var want int
	for _, z := range zones {
		if z.Status == "active" && (strings.HasPrefix(z.Name, "shop00") || z.Name == "shop011.example.com") {
			want += 2
		}
	}
	if len(rows) != want {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), want, stderr)
	}
	for _, r := range rows {
		var opts struct {
			FieldNames      []string `json:"field_names"`
			TimestampFormat string   `json:"timestamp_format"`
		}
		if err := json.Unmarshal([]byte(r["output_options"]), &opts); err != nil || strings.Join(opts.FieldNames, ",") != "RayID,ClientIP" ||
			opts.TimestampFormat != "rfc3339" || r["credential"] != "lister" || !strings.HasSuffix(r["destination_conf"], "/"+r["dataset"]+"/{DATE}") {
			t.Fatalf("row %v (%v)", r, err)
		}
	}
	if !strings.Contains(stderr, "no job listing (--skip-existing-check)") || !strings.Contains(stderr, "zones left out") && !strings.Contains(stderr, "zone name not matching --zones") {
		t.Fatalf("summary:\n%s", stderr)
	}

	// --fields all: every field the dataset lists, in name order.
	code, stdout, stderr = runEnv(t, map[string]string{"CLOUDFLARE_API_TOKEN": runToken}, "", "plan", "--cloudflare-api-url", ps.url, "--api-rate", "0",
		"--account", planAccount, "--dataset", "dns_logs", "--destination", "https://logs.example.com/{zone_id}", "--fields", "all", "--timestamp-format", "unixnano")
	if code != 0 {
		t.Fatalf("plan --fields all = %d:\n%s", code, stderr)
	}
	recs, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
	if err != nil || len(recs) < 2 {
		t.Fatalf("plan on stdout: %v\n%s", err, stdout)
	}
	want2, _ := json.Marshal(map[string]any{"field_names": simulator.DatasetFields("zone", "dns_logs"), "timestamp_format": "unixnano"})
	if recs[1][6] != string(want2) {
		t.Fatalf("output_options %s, want %s", recs[1][6], want2)
	}
}

// TestRunSelection (issue 24, point 4): run --account plans, writes the
// plan beside the journal and onboards it with jobs; the same command again
// goes on with that plan and creates nothing more.
func TestRunSelection(t *testing.T) {
	t.Parallel()
	var zones []simulator.Zone
	for i := range 8 {
		zones = append(zones, planZone(i))
	}
	ps := newPlanSim(t, simulator.Config{Zones: zones, WriteDelay: 20 * time.Millisecond})
	dir := t.TempDir()
	journal := filepath.Join(dir, "acct.journal.jsonl")
	env := map[string]string{"CLOUDFLARE_API_TOKEN": runToken}
	args := []string{"run", "--cloudflare-api-url", ps.url, "--api-rate", "0", "--poll-first", "0", "--poll-interval", "100ms",
		"--progress-interval", "1s", "--skip-preflight", "--journal", journal, "--report", filepath.Join(dir, "acct.results.csv"),
		"--account", planAccount, "--dataset", "http_requests", "--destination", "file://" + dir + "/logs/{zone_name}", "--fields", "default"}
	code, out, stderr := runEnv(t, env, "", args...)
	if code != 0 {
		t.Fatalf("run = %d:\n%s\n%s", code, out, stderr)
	}
	plans, _ := filepath.Glob(filepath.Join(dir, "logpush-plan-*.csv"))
	if len(plans) != 1 || !strings.Contains(out, "run: plan written to "+plans[0]) {
		t.Fatalf("plan files %v:\n%s", plans, out)
	}
	rows := readPlan(t, plans[0])
	active := 0
	for _, z := range zones {
		if z.Status == "active" {
			active++
		}
	}
	st := ps.sim.Stats()
	if len(rows) != active || st.JobsCreated != active {
		t.Fatalf("%d rows, %d jobs created, want %d", len(rows), st.JobsCreated, active)
	}
	jobs := ps.jobs(t, "zone", rows[0]["zone_id"])
	var opts struct {
		FieldNames []string `json:"field_names"`
	}
	if len(jobs) != 1 || json.Unmarshal(jobs[0].OutputOptions, &opts) != nil || len(opts.FieldNames) != len(simulator.DatasetFields("zone", "http_requests")) {
		t.Fatalf("job %v: %s", jobs, jobs[0].OutputOptions)
	}
	code, out, stderr = runEnv(t, env, "", args...)
	if code != 0 || !strings.Contains(out, "going on with the plan "+plans[0]) || !strings.Contains(out, "is finished already") {
		t.Fatalf("second run = %d:\n%s\n%s", code, out, stderr)
	}
	if st2 := ps.sim.Stats(); st2.JobsCreated != st.JobsCreated || st2.Count(simulator.EndpointZones, 200) != st.Count(simulator.EndpointZones, 200) {
		t.Fatalf("the second run planned or created again")
	}
}

// TestDemoAccount (issue 24, point 5): demo --account-zones onboards an
// account from a template: every active zone without the job gets it.
func TestDemoAccount(t *testing.T) {
	t.Parallel()
	code, out, stderr := runEnv(t, nil, "", "demo", "--account-zones", "60", "-write-delay", "10ms", "-write-jitter", "10ms", "-error-rate", "0",
		"-rate-limit-rate", "0", "-poll-first", "0", "-progress-interval", "1s")
	if code != 0 {
		t.Fatalf("demo = %d:\n%s\n%s", code, out, stderr)
	}
	active, existing := 0, 0
	for i, z := range demoZones(60) {
		if z.Status == "active" {
			active++
			if i%25 == 7 {
				existing++
			}
		}
	}
	for _, want := range []string{
		fmt.Sprintf("plan: %d zones listed (status active) over 2 pages", active),
		fmt.Sprintf("left out: %d rows exists", existing),
		fmt.Sprintf("%d/%d done (100%%)", active-existing, active-existing),
		fmt.Sprintf("jobs created: %d (of 60 zones", active-existing),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

// TestPlanRetries: 5xx and 429 answers to the zone pages and job listings
// are retried (the worker's backoff, Retry-After honoured); the plan is the
// same as without them, and its count of calls includes the retries.
func TestPlanRetries(t *testing.T) {
	t.Parallel()
	var zones []simulator.Zone
	for i := range 70 {
		zones = append(zones, planZone(i))
	}
	ps := newPlanSim(t, simulator.Config{Zones: zones, ErrorRate: 0.15, RateLimitRate: 0.05, Seed: 7})
	ps.sim.AddJob("zone", zones[0].ID, "http_requests", "https://logs.example.com/"+zones[0].Name)
	code, stdout, stderr := runEnv(t, map[string]string{"CLOUDFLARE_API_TOKEN": runToken}, "", "plan", "--cloudflare-api-url", ps.url, "--api-rate", "0",
		"--account", planAccount, "--dataset", "http_requests", "--destination", "https://logs.example.com/{zone_name}")
	if code != 0 {
		t.Fatalf("plan = %d:\n%s", code, stderr)
	}
	recs, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	active := 0
	for _, z := range zones {
		if z.Status == "active" {
			active++
		}
	}
	if len(recs)-1 != active-1 {
		t.Fatalf("%d rows, want %d:\n%s", len(recs)-1, active-1, stderr)
	}
	st := ps.sim.Stats()
	failed := st.ServerErrorsInjected + st.RateLimitedInjected
	if failed == 0 || st.Count(simulator.EndpointZones, 200) != 2 || st.Count(simulator.EndpointJobs, 200) != active {
		t.Fatalf("%d injected failures; %d zone pages and %d listings answered 200", failed, st.Count(simulator.EndpointZones, 200), st.Count(simulator.EndpointJobs, 200))
	}
	if want := fmt.Sprintf("API calls spent: %d (2 zone pages, %d job listings", 2+active+failed, active); !strings.Contains(stderr, want) {
		t.Fatalf("summary lacks %q:\n%s", want, stderr)
	}
}

// fakeZonesAPI answers pages that overlap, as when a zone is added while
// the pages are followed, and lists no jobs.
// fakeZonesAPI answers the zone pages it holds and no jobs; GetJob, which
// a plan does not call, is the nil planAPI's (a call panics).
type fakeZonesAPI struct {
	planAPI
	pages [][]cloudflare.Zone
}

func (f *fakeZonesAPI) ListZones(_ context.Context, _ cloudflare.ZoneFilter, page int) (cloudflare.ZonePage, error) {
	return cloudflare.ZonePage{Zones: f.pages[page-1], Page: page, TotalPages: len(f.pages)}, nil
}
func (f *fakeZonesAPI) ListJobs(context.Context, cloudflare.Target) ([]cloudflare.Job, error) {
	return nil, nil
}
func (f *fakeZonesAPI) Fields(context.Context, cloudflare.Target, string) (map[string]string, error) {
	return nil, nil
}

// TestPlanShiftedPages: a zone that comes on two pages gets one row.
func TestPlanShiftedPages(t *testing.T) {
	t.Parallel()
	z := func(i int) cloudflare.Zone {
		return cloudflare.Zone{ID: fmt.Sprintf("%032x", 0xc00+i), Name: fmt.Sprintf("z%02d.example.com", i), Status: "active", AccountID: planAccount}
	}
	api := &fakeZonesAPI{pages: [][]cloudflare.Zone{{z(0), z(1), z(2)}, {z(2), z(3)}}}
	p := &planner{api: api}
	res, err := p.makePlan(context.Background(), planSpec{accounts: []string{planAccount}, concurrency: 2, tsFormat: "rfc3339",
		datasets: []planDataset{{name: "http_requests", scope: cloudflare.ScopeZone}}, zoneTmpl: "https://logs.example.com/{zone_id}"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.rows) != 4 || res.zones != 4 || res.pages != 2 || res.listings != 4 {
		t.Fatalf("%d rows of %d zones, %d pages, %d listings", len(res.rows), res.zones, res.pages, res.listings)
	}
}
