package simulator_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
)

func jobsPath(scope, id string) string { return "/client/v4/" + scope + "/" + id + "/logpush/jobs" }

func existsPath(scope, id string) string {
	return "/client/v4/" + scope + "/" + id + "/logpush/validate/destination/exists"
}

func jsonBody(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// token challenges conf and returns the token written.
func (b *testBundle) token(t *testing.T, scope, id, conf string) string {
	t.Helper()
	n := len(b.w.all())
	b.challenge(t, scope, id, conf)
	waitFor(t, func() bool { return len(b.w.all()) > n })
	w := b.w.all()
	return w[len(w)-1].body
}

// createJob posts a job creation.
func (b *testBundle) createJob(t *testing.T, scope, id string, req map[string]any) answer {
	t.Helper()
	return b.do(t, request("POST", jobsPath(scope, id), "token", jsonBody(req)))
}

// exists asks whether a job pushes to conf.
func (b *testBundle) exists(t *testing.T, scope, id, conf string) bool {
	t.Helper()
	a := b.do(t, request("POST", existsPath(scope, id), "token", body(map[string]string{"destination_conf": conf})))
	var r struct {
		Exists *bool `json:"exists"`
	}
	if a.status != 200 || json.Unmarshal(a.env.Result, &r) != nil || r.Exists == nil {
		t.Fatalf("destination exists: %d %s", a.status, a.body)
	}
	return *r.Exists
}

// jobs lists the jobs of a scope, each as a JSON object.
func (b *testBundle) jobs(t *testing.T, scope, id string) []map[string]any {
	t.Helper()
	a := b.do(t, request("GET", jobsPath(scope, id), "token", ""))
	var jobs []map[string]any
	if a.status != 200 || json.Unmarshal(a.env.Result, &jobs) != nil || jobs == nil {
		t.Fatalf("list jobs: %d %s", a.status, a.body)
	}
	return jobs
}

// failed checks a failure's status and codes.
func failed(t *testing.T, name string, a answer, status, code int) {
	t.Helper()
	if a.status != status || fmt.Sprint(a.codes()) != fmt.Sprint([]int{code}) || a.env.Success || string(a.env.Result) != "null" {
		t.Errorf("%s: got %d %s; want %d code %d", name, a.status, a.body, status, code)
	}
}

func TestCreateJob(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{})
	tok := b.token(t, "zones", zoneID, conf)
	if b.exists(t, "zones", zoneID, conf) {
		t.Fatal("exists before any job")
	}
	failed(t, "wrong token", b.createJob(t, "zones", zoneID, map[string]any{"destination_conf": conf, "ownership_challenge": "not.the.token"}), 400, 1002)
	failed(t, "no token", b.createJob(t, "zones", zoneID, map[string]any{"destination_conf": conf}), 400, 1002)

	opts := json.RawMessage(`{"field_names":["ClientIP","RayID"],"output_type":"ndjson","timestamp_format":"rfc3339","sample_rate":0.5,"CVE-2021-44228":true,"record_prefix":null,"merge_subrequests":true}`)
	full := map[string]any{
		"destination_conf": conf, "ownership_challenge": tok, "dataset": "http_requests", "name": "example.com",
		"enabled": true, "output_options": opts, "logpull_options": "fields=RayID&timestamps=rfc3339",
		"frequency": "low", "max_upload_bytes": 5_000_000, "max_upload_interval_seconds": 30, "max_upload_records": 1000,
		"filter": `{"where":{"key":"ClientCountry","operator":"neq","value":"ca"}}`, "kind": "edge",
	}
	a := b.createJob(t, "zones", zoneID, full)
	if a.status != 200 || !a.env.Success {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	var got map[string]any
	_ = json.Unmarshal(a.env.Result, &got)
	want := map[string]any{"id": 1.0, "last_complete": nil, "last_error": nil, "error_message": nil}
	for k, v := range full {
		if k != "ownership_challenge" {
			want[k] = v
		}
	}
	var wantOpts map[string]any
	_ = json.Unmarshal(opts, &wantOpts)
	want["output_options"] = wantOpts
	for _, k := range []string{"max_upload_bytes", "max_upload_interval_seconds", "max_upload_records"} {
		want[k] = float64(want[k].(int))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("job =\n%v\nwant\n%v", got, want)
	}
	if strings.Contains(a.body, tok) {
		t.Fatal("the answer holds the ownership challenge")
	}

	if !b.exists(t, "zones", zoneID, conf) {
		t.Fatal("exists is false after the job was created")
	}
	if jobs := b.jobs(t, "zones", zoneID); len(jobs) != 1 || fmt.Sprint(jobs[0]) != fmt.Sprint(got) {
		t.Fatalf("jobs = %v", jobs)
	}
	// Byte-identical confs only, and per zone or account.
	for _, c := range []struct{ scope, id, conf string }{
		{"zones", zoneID, conf + "&x=1"}, {"zones", accountID, conf}, {"accounts", zoneID, conf},
	} {
		if b.exists(t, c.scope, c.id, c.conf) {
			t.Errorf("%s/%s %s: exists", c.scope, c.id, c.conf)
		}
	}
	if jobs := b.jobs(t, "accounts", zoneID); len(jobs) != 0 {
		t.Fatalf("another scope's jobs = %v", jobs)
	}

	failed(t, "second job", b.createJob(t, "zones", zoneID, map[string]any{"destination_conf": conf, "ownership_challenge": tok, "dataset": "http_requests"}), 400, 1003)
	// Another dataset to the same destination is another job, as on
	// Cloudflare (several jobs per destination since May 2022).
	if a := b.createJob(t, "zones", zoneID, map[string]any{"destination_conf": conf, "ownership_challenge": tok, "dataset": "firewall_events"}); a.status != 200 {
		t.Fatalf("job of another dataset: %d %s", a.status, a.body)
	}

	// A minimal job: what was not set is null.
	r2 := "r2://bucket/logs?account-id=" + accountID
	a = b.createJob(t, "zones", zoneID, map[string]any{"destination_conf": r2, "kind": "", "max_upload_bytes": 0, "output_options": nil})
	if a.status != 200 {
		t.Fatalf("minimal job: %d %s", a.status, a.body)
	}
	const minimal = `{"id":3,"dataset":null,"name":null,"destination_conf":"%s","enabled":false,"kind":null,"frequency":null,` +
		`"logpull_options":null,"output_options":null,"max_upload_bytes":null,"max_upload_interval_seconds":null,` +
		`"max_upload_records":null,"last_complete":null,"last_error":null,"error_message":null}`
	if string(a.env.Result) != fmt.Sprintf(minimal, r2) {
		t.Fatalf("minimal job = %s", a.env.Result)
	}

	st := b.sim.Stats()
	if st.JobsCreated != 3 || st.JobsRejectedChallenge != 2 || st.JobsRejectedDuplicate != 1 || st.JobsRejectedLimit != 0 ||
		st.Count(simulator.EndpointCreateJob, 200) != 3 || st.Count(simulator.EndpointCreateJob, 400) != 3 ||
		st.Total(simulator.EndpointDestinationExists) != 5 || st.Total(simulator.EndpointJobs) != 2 {
		t.Fatalf("stats = %+v", st)
	}
	if s := st.String(); !strings.Contains(s, "create_job 6") || !strings.Contains(s, "jobs created 3, refused 2 challenge 1 duplicate 0 limit") {
		t.Fatalf("stats line: %s", s)
	}
}

// TestCreateJobNeedsAnUnexpiredToken: job creation takes any unexpired
// token of the destination (as validate does), and no other.
func TestCreateJobNeedsAnUnexpiredToken(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{TokenTTL: time.Hour})
	b.token(t, "zones", zoneID, conf)
	b.clock.Advance(time.Second)
	latest := b.token(t, "zones", zoneID, conf)
	other := b.token(t, "accounts", accountID, conf)
	for _, c := range []struct {
		name      string
		conf, tok string
	}{
		{"another scope's token", conf, other},
		{"conf not byte-identical", conf + " ", latest},
	} {
		failed(t, c.name, b.createJob(t, "zones", zoneID, map[string]any{"destination_conf": c.conf, "ownership_challenge": c.tok}), 400, 1002)
	}
	b.clock.Advance(time.Hour)
	failed(t, "expired token", b.createJob(t, "zones", zoneID, map[string]any{"destination_conf": conf, "ownership_challenge": latest}), 400, 1002)
	if a := b.createJob(t, "accounts", accountID, map[string]any{"destination_conf": conf, "ownership_challenge": other}); a.status != 400 {
		t.Fatalf("expired account token: %d", a.status)
	}
	latest = b.token(t, "zones", zoneID, conf)
	if a := b.createJob(t, "zones", zoneID, map[string]any{"destination_conf": conf, "ownership_challenge": latest}); a.status != 200 {
		t.Fatalf("fresh token: %d %s", a.status, a.body)
	}
}

func TestCreateJobChallengeByDestination(t *testing.T) {
	t.Parallel()
	cases := []struct {
		conf  string
		needs bool
	}{
		{"s3://bucket/logs?region=us-east-1", true},
		{"s3://bucket/logs?region=auto&endpoint=https://minio.example.com", false},
		{"r2://bucket/logs?account-id=" + accountID, false},
		{"gs://bucket/logs", true},
		{"azure://container/logs?sv=2020&sig=abc", true},
		{"sumo://endpoint.collection.sumologic.com/receiver/v1/http/abc", true},
		{"file:///tmp/logs", true},
		{"https://logs.example.com/ingest?header_Authorization=Basic%20xyz", false},
		{"datadog://http-intake.logs.datadoghq.com/v1/input?header_DD-API-KEY=k", false},
		{"splunk://splunk.example.com:8088/services/collector/raw?channel=x&header_Authorization=Splunk%20t", false},
	}
	b := setup(t, simulator.Config{MaxJobsPerScope: len(cases)})
	for _, c := range cases {
		a := b.createJob(t, "zones", zoneID, map[string]any{"destination_conf": c.conf})
		if c.needs != (a.status == 400) || (c.needs && fmt.Sprint(a.codes()) != "[1002]") || (!c.needs && a.status != 200) {
			t.Errorf("%s without a challenge: %d %s", c.conf, a.status, a.body)
		}
	}
}

func TestJobLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{})
	r2 := func(i int) map[string]any {
		return map[string]any{"destination_conf": fmt.Sprintf("r2://bucket/d%d?account-id=%s", i, accountID)}
	}
	ids := []float64{}
	for i := range simulator.DefaultMaxJobsPerScope {
		a := b.createJob(t, "zones", zoneID, r2(i))
		var j map[string]any
		if a.status != 200 || json.Unmarshal(a.env.Result, &j) != nil {
			t.Fatalf("job %d: %d %s", i, a.status, a.body)
		}
		ids = append(ids, j["id"].(float64))
	}
	a := b.createJob(t, "zones", zoneID, r2(99))
	failed(t, "over the limit", a, 403, 1004)
	if !strings.Contains(a.body, "exceeded max jobs allowed") {
		t.Errorf("limit message: %s", a.body)
	}
	// Another zone and an account have limits of their own; ids keep
	// increasing across scopes.
	for _, sc := range []struct{ scope, id string }{{"zones", accountID}, {"accounts", accountID}} {
		a := b.createJob(t, sc.scope, sc.id, r2(0))
		var j map[string]any
		if a.status != 200 || json.Unmarshal(a.env.Result, &j) != nil || j["id"].(float64) <= ids[len(ids)-1] {
			t.Fatalf("%s: %d %s", sc.scope, a.status, a.body)
		}
		ids = append(ids, j["id"].(float64))
	}
	if fmt.Sprint(ids) != "[1 2 3 4 5 6]" {
		t.Fatalf("ids = %v", ids)
	}
	if n := len(b.jobs(t, "zones", zoneID)); n != simulator.DefaultMaxJobsPerScope {
		t.Fatalf("%d jobs listed", n)
	}
	if st := b.sim.Stats(); st.JobsCreated != 6 || st.JobsRejectedLimit != 1 {
		t.Fatalf("stats = %+v", st)
	}

	one := setup(t, simulator.Config{MaxJobsPerScope: 1})
	if a := one.createJob(t, "accounts", accountID, r2(0)); a.status != 200 {
		t.Fatalf("first: %d", a.status)
	}
	failed(t, "limit of one", one.createJob(t, "accounts", accountID, r2(1)), 403, 1004)
}

func TestAllowDuplicateJobs(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{AllowDuplicateJobs: true})
	tok := b.token(t, "zones", zoneID, conf)
	for i := range 2 {
		if a := b.createJob(t, "zones", zoneID, map[string]any{"destination_conf": conf, "ownership_challenge": tok}); a.status != 200 {
			t.Fatalf("job %d: %d %s", i, a.status, a.body)
		}
	}
	if jobs := b.jobs(t, "zones", zoneID); len(jobs) != 2 || jobs[0]["id"] == jobs[1]["id"] {
		t.Fatalf("jobs = %v", jobs)
	}
}

func TestCreateJobBodyChecks(t *testing.T) {
	t.Parallel()
	const r2 = "r2://bucket/logs?account-id=" + accountID
	with := func(k string, v any) string {
		return jsonBody(map[string]any{"destination_conf": r2, k: v})
	}
	opts := func(s string) string { return with("output_options", json.RawMessage(s)) }
	cases := []struct {
		name, body, message string
	}{
		{"malformed JSON", `{"destination_conf":`, "Malformed JSON"},
		{"not an object", `[]`, "Malformed JSON"},
		{"no destination_conf", `{"dataset":"http_requests"}`, "destination_conf is required"},
		{"destination_conf too long", jsonBody(map[string]any{"destination_conf": "r2://b/" + strings.Repeat("x", 4090)}), "at most 4096"},
		{"destination_conf without scheme", jsonBody(map[string]any{"destination_conf": "bucket/logs"}), "destination_conf is invalid"},
		{"malformed challenge", with("ownership_challenge", "a b"), "ownership_challenge is invalid"},
		{"enabled not a boolean", with("enabled", "yes"), "enabled has the wrong type"},
		{"max_upload_bytes not a number", with("max_upload_bytes", "5MB"), "max_upload_bytes has the wrong type"},
		{"dataset with a space", with("dataset", "http requests"), "dataset is invalid"},
		{"dataset too long", with("dataset", strings.Repeat("a", 257)), "dataset is invalid"},
		{"name with an underscore", with("name", "my_job"), "name is invalid"},
		{"unknown kind", with("kind", "instant"), "kind must be edge or empty"},
		{"unknown frequency", with("frequency", "medium"), "frequency must be high or low"},
		{"logpull_options too long", with("logpull_options", strings.Repeat("a", 4097)), "logpull_options must be at most 4096"},
		{"filter not JSON", with("filter", "ClientCountry != ca"), "filter is not valid JSON"},
		{"max_upload_bytes too small", with("max_upload_bytes", 1000), "max_upload_bytes must be between 5000000 and 1000000000"},
		{"max_upload_interval_seconds too large", with("max_upload_interval_seconds", 301), "max_upload_interval_seconds must be between 30 and 300"},
		{"max_upload_records negative", with("max_upload_records", -1), "max_upload_records must be between 1000 and 1000000"},
		{"output_options a string", with("output_options", "fields=RayID"), "output_options must be an object"},
		{"unknown output_type", opts(`{"output_type":"xml"}`), "output_options.output_type is invalid"},
		{"null output_type", opts(`{"output_type":null}`), "output_options.output_type is invalid"},
		{"unknown timestamp_format", opts(`{"timestamp_format":"iso"}`), "output_options.timestamp_format is invalid"},
		{"field_names null", opts(`{"field_names":null}`), "output_options.field_names is invalid"},
		{"field_names of numbers", opts(`{"field_names":[1,2]}`), "output_options.field_names is invalid"},
		{"sample_rate over 1", opts(`{"sample_rate":1.5}`), "output_options.sample_rate is invalid"},
		{"CVE flag a string", opts(`{"CVE-2021-44228":"yes"}`), "output_options.CVE-2021-44228 is invalid"},
		{"record_prefix a number", opts(`{"record_prefix":1}`), "output_options.record_prefix is invalid"},
	}
	b := setup(t, simulator.Config{})
	for _, tc := range cases {
		a := b.do(t, request("POST", jobsPath("zones", zoneID), "token", tc.body))
		if a.status != 400 || fmt.Sprint(a.codes()) != "[1001]" || !strings.Contains(a.body, tc.message) {
			t.Errorf("%s: got %d %s; want 400 1001 ~%q", tc.name, a.status, a.body, tc.message)
		}
	}
	if st := b.sim.Stats(); st.JobsCreated != 0 || st.JobsRejectedChallenge+st.JobsRejectedDuplicate+st.JobsRejectedLimit != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

// TestJobRoutesFaultsAndRateLimit checks that injected faults and the rate
// limit apply to the job routes, and that a failed call creates nothing.
func TestJobRoutesFaultsAndRateLimit(t *testing.T) {
	t.Parallel()
	const r2 = `{"destination_conf":"r2://bucket/logs?account-id=` + accountID + `"}`
	b := setup(t, simulator.Config{ErrorRate: 1})
	for _, r := range []struct{ method, path, body string }{
		{"POST", jobsPath("zones", zoneID), r2}, {"GET", jobsPath("zones", zoneID), ""}, {"POST", existsPath("accounts", accountID), r2},
	} {
		rec := httptest.NewRecorder()
		b.sim.ServeHTTP(rec, request(r.method, r.path, "token", r.body))
		if rec.Code < 500 {
			t.Errorf("%s %s: %d with ErrorRate 1", r.method, r.path, rec.Code)
		}
	}
	if st := b.sim.Stats(); st.JobsCreated != 0 || st.ServerErrorsInjected != 3 {
		t.Fatalf("stats = %+v", st)
	}

	rl := setup(t, simulator.Config{RateLimit: 2, RateWindow: time.Minute, Penalty: time.Minute})
	if a := rl.do(t, request("POST", jobsPath("zones", zoneID), "token", r2)); a.status != 200 {
		t.Fatalf("create: %d", a.status)
	}
	if a := rl.do(t, request("GET", jobsPath("zones", zoneID), "token", "")); a.status != 200 {
		t.Fatalf("list: %d", a.status)
	}
	a := rl.do(t, request("POST", existsPath("zones", zoneID), "token", r2))
	if a.status != 429 || a.header.Get("Retry-After") != "60" {
		t.Fatalf("over the limit: %d %v", a.status, a.header)
	}
	if st := rl.sim.Stats(); st.Count(simulator.EndpointDestinationExists, 429) != 1 || st.RateLimitedLimit != 1 {
		t.Fatalf("stats = %+v", st)
	}

	// A slow answer still creates the job, as on Cloudflare when the
	// client gives up first.
	slow := setup(t, simulator.Config{Hostile: 1, HostileKinds: []string{simulator.HostileSlow}, SlowDelay: time.Millisecond})
	if a := slow.do(t, request("POST", jobsPath("zones", zoneID), "token", r2)); a.status != 200 || slow.sim.Stats().JobsCreated != 1 {
		t.Fatalf("slow create: %d %s", a.status, a.body)
	}
}

// TestConcurrentJobCreation races creations against the limit (with -race):
// exactly the limit is created, each with its own id.
func TestConcurrentJobCreation(t *testing.T) {
	t.Parallel()
	const limit, n = 20, 64
	b := setup(t, simulator.Config{MaxJobsPerScope: limit})
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := httptest.NewRecorder()
			b.sim.ServeHTTP(rec, request("POST", jobsPath("zones", zoneID), "token",
				fmt.Sprintf(`{"destination_conf":"r2://bucket/d%d?account-id=%s"}`, i, accountID)))
			statuses[i] = rec.Code
		}()
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[200] != limit || count[403] != n-limit {
		t.Fatalf("statuses = %v", count)
	}
	seen := map[float64]bool{}
	for _, j := range b.jobs(t, "zones", zoneID) {
		id := j["id"].(float64)
		if seen[id] || id < 1 || id > limit {
			t.Fatalf("id %v repeated or out of range", id)
		}
		seen[id] = true
	}
	if len(seen) != limit {
		t.Fatalf("%d jobs listed", len(seen))
	}
}

// getJob reads one job of a scope: its status and, on 200, the job.
func (b *testBundle) getJob(t *testing.T, scope, id string, job int) (int, map[string]any) {
	t.Helper()
	a := b.do(t, request("GET", fmt.Sprintf("%s/%d", jobsPath(scope, id), job), "token", ""))
	var j map[string]any
	if a.status == 200 && (json.Unmarshal(a.env.Result, &j) != nil || j == nil) {
		t.Fatalf("get job: %s", a.body)
	}
	return a.status, j
}

// TestJobHealth: an enabled job answers last_complete once it pushed, a
// job to a destination that refuses its pushes last_error and
// error_message, a job of a zone without traffic and a disabled job
// neither; nothing before JobPushDelay; GET and the list agree.
func TestJobHealth(t *testing.T) {
	t.Parallel()
	const (
		failing  = "https://logs.example.com/refuses"
		idleZone = "123e105f4ecef8ad9ca31a8372d0c353"
		msg      = "error uploading to destination: 403 Forbidden"
	)
	b := setup(t, simulator.Config{
		JobPushDelay: 10 * time.Second,
		JobPushError: func(c string) string {
			if c == failing {
				return msg
			}
			return ""
		},
		NoTraffic: func(scope, id string) bool { return scope == "zone" && id == idleZone },
	})
	create := func(zone, conf string, enabled bool) int {
		a := b.createJob(t, "zones", zone, map[string]any{"destination_conf": conf, "dataset": "http_requests", "enabled": enabled})
		var j struct{ ID int }
		if a.status != 200 || json.Unmarshal(a.env.Result, &j) != nil {
			t.Fatalf("create %s: %d %s", conf, a.status, a.body)
		}
		return j.ID
	}
	flowing := create(zoneID, "https://logs.example.com/ok", true)
	bad := create(zoneID, failing, true)
	disabled := create(zoneID, "https://logs.example.com/off", false)
	idle := create(idleZone, "https://logs.example.com/idle", true)
	health := func(zone string, id int) string {
		status, j := b.getJob(t, "zones", zone, id)
		if status != 200 {
			t.Fatalf("job %d: %d", id, status)
		}
		return fmt.Sprint(j["last_complete"], " ", j["last_error"], " ", j["error_message"])
	}
	for _, id := range []int{flowing, bad, disabled} {
		if got := health(zoneID, id); got != "<nil> <nil> <nil>" {
			t.Errorf("job %d before its first push: %s", id, got)
		}
	}
	b.clock.Advance(10 * time.Second)
	if got := health(zoneID, flowing); got != "2026-03-01T12:01:00Z <nil> <nil>" {
		t.Errorf("pushing job: %s", got)
	}
	if got := health(zoneID, bad); got != "<nil> 2026-03-01T12:00:10Z "+msg {
		t.Errorf("failing job: %s", got)
	}
	for _, j := range []struct {
		zone string
		id   int
	}{{zoneID, disabled}, {idleZone, idle}} {
		if got := health(j.zone, j.id); got != "<nil> <nil> <nil>" {
			t.Errorf("job %d pushed: %s", j.id, got)
		}
	}
	b.clock.Advance(5 * time.Minute)
	if got := health(zoneID, flowing); got != "2026-03-01T12:05:00Z <nil> <nil>" {
		t.Errorf("pushing job later: %s", got)
	}
	listed := b.jobs(t, "zones", zoneID)
	if len(listed) != 3 || listed[0]["last_complete"] != "2026-03-01T12:05:00Z" || listed[1]["error_message"] != msg {
		t.Errorf("list: %v", listed)
	}
	// Another zone's job, and no job at all.
	if status, _ := b.getJob(t, "zones", idleZone, flowing); status != 404 {
		t.Errorf("another zone's job: %d", status)
	}
	if status, _ := b.getJob(t, "accounts", accountID, 99); status != 404 {
		t.Errorf("unknown job: %d", status)
	}
	a := b.do(t, request("GET", jobsPath("zones", zoneID)+"/x", "token", ""))
	failed(t, "bad job id", a, 400, 1001)
}
