package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
	"github.com/logpush-onboard/logpush-onboard/metrics"
)

// Secrets of the seeded confs: none may appear in any output.
const (
	jobsS3Secret     = "s3SecretKeyAbc123"
	jobsHeaderSecret = "hdrTokenXyz789"
	jobsSASSecret    = "sasSigQwe456"
)

var (
	jobsAccount = fmt.Sprintf("%032x", 0x10b5)
	jobsOther   = fmt.Sprintf("%032x", 0x20b5)
)

func jobsZone(i int, acct string) simulator.Zone {
	return simulator.Zone{ID: fmt.Sprintf("%032x", 0xb000+i), Name: fmt.Sprintf("z%02d.example.com", i), Status: "active", AccountID: acct}
}

// jobsSim seeds an account with one job of every health:
//
//	z01 http_requests to S3, enabled, pushes        -> flowing
//	z01 dns_logs, disabled                           -> disabled
//	z02 firewall_events to Azure, the bucket refuses -> failing
//	z03 http_requests, enabled, zone without traffic -> no_data
//	account audit_logs to HTTPS, enabled, pushes     -> flowing
//
// and a zone of another account, whose job must not be listed.
func jobsSim(t *testing.T) (*planSim, map[string]int) {
	t.Helper()
	z1, z2, z3, other := jobsZone(1, jobsAccount), jobsZone(2, jobsAccount), jobsZone(3, jobsAccount), jobsZone(9, jobsOther)
	s3 := "s3://logs/http?region=us-east-1&access-key-id=AKIAJOBS&secret-access-key=" + jobsS3Secret
	azure := "azure://logs/fw?sv=2022-11-02&sp=w&sig=" + jobsSASSecret
	ps := newPlanSim(t, simulator.Config{
		Zones:        []simulator.Zone{z1, z2, z3, other},
		JobPushDelay: -1,
		JobPushError: func(conf string) string {
			if strings.HasPrefix(conf, "azure://") {
				// Cloudflare's messages quote the destination: the client
				// must mask it.
				return "error uploading to " + conf + ": 403 AuthorizationPermissionMismatch"
			}
			return ""
		},
		NoTraffic: func(scope, id string) bool { return id == z3.ID },
	})
	add := func(scope, id, dataset, conf string, enabled bool) int {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"dataset": dataset, "destination_conf": conf, "enabled": enabled})
		jid, err := ps.sim.AddJobJSON(scope, id, body)
		if err != nil {
			t.Fatal(err)
		}
		return jid
	}
	ids := map[string]int{
		"flowing-zone":    add("zone", z1.ID, "http_requests", s3, true),
		"disabled":        add("zone", z1.ID, "dns_logs", "gs://logs/dns", false),
		"failing":         add("zone", z2.ID, "firewall_events", azure, true),
		"no_data":         add("zone", z3.ID, "http_requests", "r2://logs/z3?account-id=abc", true),
		"flowing-account": add("account", jobsAccount, "audit_logs", "https://logs.example.com/in?header_Authorization=Bearer%20"+jobsHeaderSecret, true),
		"other-account":   add("zone", other.ID, "http_requests", "gs://other/x", true),
	}
	return ps, ids
}

func jobsArgs(ps *planSim, extra ...string) []string {
	return append([]string{"jobs", "--cloudflare-api-url", ps.url, "--api-rate", "0", "--account", jobsAccount}, extra...)
}

var jobsEnv = map[string]string{"CLOUDFLARE_API_TOKEN": runToken}

func noSecrets(t *testing.T, what, s string) {
	t.Helper()
	for _, sec := range []string{jobsS3Secret, jobsHeaderSecret, jobsSASSecret, runToken} {
		if strings.Contains(s, sec) {
			t.Errorf("%s holds the secret %q:\n%s", what, sec, s)
		}
	}
}

// TestJobsJSON: every job of the account and its zones, none of the other
// account's, failing first, then disabled, then not pushing, then
// flowing; with Cloudflare's error message, masked.
func TestJobsJSON(t *testing.T) {
	t.Parallel()
	ps, ids := jobsSim(t)
	code, out, stderr := runEnv(t, jobsEnv, "", jobsArgs(ps, "--format", "json")...)
	if code != 0 {
		t.Fatalf("jobs = %d:\n%s\n%s", code, out, stderr)
	}
	noSecrets(t, "stdout", out)
	noSecrets(t, "stderr", stderr)
	var recs []map[string]any
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	var order []string
	byID := map[int]map[string]any{}
	for _, r := range recs {
		order = append(order, r["health"].(string))
		byID[int(r["job_id"].(float64))] = r
	}
	if got := strings.Join(order, ","); got != "failing,disabled,no_data,flowing,flowing" {
		t.Fatalf("health order %s, want failing,disabled,no_data,flowing,flowing:\n%s", got, out)
	}
	if _, ok := byID[ids["other-account"]]; ok {
		t.Fatalf("the job of another account's zone is listed:\n%s", out)
	}
	f := byID[ids["failing"]]
	msg, _ := f["error_message"].(string)
	if !strings.Contains(msg, "AuthorizationPermissionMismatch") || !strings.Contains(msg, "REDACTED") || f["last_error"] == nil || f["zone_name"] != "z02.example.com" {
		t.Fatalf("failing job %v: want its masked error message, last_error and zone", f)
	}
	if dst := f["destination"].(string); !strings.HasPrefix(dst, "azure://logs/fw?") || !strings.Contains(dst, "sig=REDACTED") {
		t.Fatalf("failing job's destination %q: want the conf with its sig masked", dst)
	}
	fl := byID[ids["flowing-zone"]]
	if fl["last_complete"] == nil || fl["last_complete_age_seconds"] == nil || fl["enabled"] != true || fl["last_error"] != nil {
		t.Fatalf("flowing job %v", fl)
	}
	for _, k := range []string{"disabled", "no_data"} {
		if r := byID[ids[k]]; r["last_complete"] != nil || r["last_error"] != nil {
			t.Fatalf("%s job %v: pushed nothing, failed nothing", k, r)
		}
	}
	acct := byID[ids["flowing-account"]]
	if acct["zone_id"] != nil || acct["account_id"] != jobsAccount || acct["dataset"] != "audit_logs" {
		t.Fatalf("account job %v", acct)
	}
	if !strings.Contains(stderr, "5 jobs in 3 zones and 1 account (1 zone pages, 4 job listings)") {
		t.Fatalf("summary: %s", stderr)
	}
	// One page of zones, one listing per zone and for the account: no call
	// for the other account's zone.
	st := ps.sim.Stats()
	if pages, listings := st.Count(simulator.EndpointZones, 200), st.Count(simulator.EndpointJobs, 200); pages != 1 || listings != 4 {
		t.Fatalf("%d zone pages and %d job listings, want 1 and 4", pages, listings)
	}
}

// TestJobsCSVAndTable: the same jobs in the same order as CSV and as a
// table, nothing secret in either.
func TestJobsCSVAndTable(t *testing.T) {
	t.Parallel()
	ps, ids := jobsSim(t)
	code, out, stderr := runEnv(t, jobsEnv, "", jobsArgs(ps, "--format", "csv")...)
	if code != 0 {
		t.Fatalf("jobs csv = %d:\n%s\n%s", code, out, stderr)
	}
	noSecrets(t, "csv", out)
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(recs[0], ",") != strings.Join(jobColumns, ",") || len(recs) != 6 {
		t.Fatalf("csv:\n%s", out)
	}
	wantFirst := []string{"failing", "disabled", "no_data", "flowing", "flowing"}
	for i, r := range recs[1:] {
		if r[7] != wantFirst[i] {
			t.Fatalf("row %d health %s, want %s:\n%s", i+1, r[7], wantFirst[i], out)
		}
	}
	if recs[1][3] != fmt.Sprint(ids["failing"]) || recs[1][12] == "" || recs[1][11] == "" {
		t.Fatalf("first row %v: want the failing job with last_error and its message", recs[1])
	}

	code, out, stderr = runEnv(t, jobsEnv, "", jobsArgs(ps, "--zone", jobsZone(1, jobsAccount).ID)...)
	if code != 0 {
		t.Fatalf("jobs table = %d:\n%s\n%s", code, out, stderr)
	}
	noSecrets(t, "table", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// --zone z01: its two jobs and the account's own (an account's jobs
	// before its zones' within one health).
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "HEALTH") || !strings.HasPrefix(lines[1], "disabled") ||
		!strings.HasPrefix(lines[2], "flowing") || !strings.HasPrefix(lines[3], "flowing") {
		t.Fatalf("table with --zone z01:\n%s", out)
	}
	if !strings.Contains(lines[1], "never") || !strings.Contains(lines[2], "account "+jobsAccount) || !strings.Contains(lines[3], "z01.example.com") {
		t.Fatalf("table rows:\n%s", out)
	}
}

// TestJobsBadInput: exit 2 for bad flags and a zone of no given account,
// 1 when the API fails.
func TestJobsBadInput(t *testing.T) {
	t.Parallel()
	ps, _ := jobsSim(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"jobs", "--cloudflare-api-url", ps.url, "--api-rate", "0"}, "-account: at least one"},
		{[]string{"jobs", "--cloudflare-api-url", ps.url, "--api-rate", "0", "--account", "nothex"}, "32 hex"},
		{jobsArgs(ps, "--format", "yaml"), "-format"},
		{jobsArgs(ps, "--zone", "zz"), "-zone"},
		{jobsArgs(ps, "--zone", jobsZone(9, jobsOther).ID), "not a zone of account"},
		{jobsArgs(ps, "--watch", "--interval", "10ms"), "-interval"},
		{jobsArgs(ps, "--watch", "--format", "json"), "-format"},
		{jobsArgs(ps, "extra"), "no operand"},
	} {
		code, out, stderr := runEnv(t, jobsEnv, "", c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v = %d, want 2 with %q:\n%s\n%s", c.args[1:], code, c.want, out, stderr)
		}
	}
	// No credential at all.
	if code, _, stderr := runEnv(t, nil, "", jobsArgs(ps)...); code != 2 || !strings.Contains(stderr, "credentials") {
		t.Errorf("without a credential = %d:\n%s", code, stderr)
	}
	// A credential Cloudflare refuses the listing.
	if code, _, stderr := runEnv(t, map[string]string{"CLOUDFLARE_API_TOKEN": "wrong-token"}, "", jobsArgs(ps)...); code != 2 {
		t.Errorf("with a refused credential = %d, want 2:\n%s", code, stderr)
	}
	// The API answers what is no Cloudflare answer: exit 1.
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"success":false,"errors":[{"code":7003,"message":"Could not route"}],"messages":[],"result":null}`)
	}))
	defer broken.Close()
	code, out, stderr := runEnv(t, jobsEnv, "", "jobs", "--cloudflare-api-url", broken.URL, "--api-rate", "0", "--account", jobsAccount)
	if code != 1 {
		t.Errorf("API failing = %d, want 1:\n%s\n%s", code, out, stderr)
	}
}

// lineSignal is a writer that sends re's first submatch on match once
// the text written matches.
type lineSignal struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	re    *regexp.Regexp
	match chan string // buffered
	sent  bool
}

func (l *lineSignal) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if m := l.re.FindStringSubmatch(l.buf.String()); m != nil && !l.sent {
		l.match <- m[1]
		l.sent = true
	}
	return len(p), nil
}

func (l *lineSignal) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestJobsWatch: --watch serves the counts by health, dataset and
// destination type, with no job, zone or account label and no secret.
func TestJobsWatch(t *testing.T) {
	t.Parallel()
	ps, _ := jobsSim(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan string, 1)
	stderr := &lineSignal{re: regexp.MustCompile(`on http://(\S+)/metrics`), match: served}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, jobsArgs(ps, "--watch", "--listen", "127.0.0.1:0", "--interval", "1h"),
			Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: stderr, Getenv: func(k string) string { return jobsEnv[k] }})
	}()
	var addr string
	select {
	case addr = <-served:
	case code := <-done:
		t.Fatalf("jobs --watch exited %d before serving:\n%s", code, stderr)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	noSecrets(t, "metrics", string(body))
	got := map[string]string{}
	re := regexp.MustCompile(`(?m)^logpush_onboard_logpush_jobs\{([^}]*)\} (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(string(body), -1) {
		got[m[1]] = m[2]
	}
	want := map[string]string{
		`dataset="firewall_events",destination_type="azure",health="failing"`: "1",
		`dataset="dns_logs",destination_type="gs",health="disabled"`:          "1",
		`dataset="http_requests",destination_type="r2",health="no_data"`:      "1",
		`dataset="http_requests",destination_type="s3",health="flowing"`:      "1",
		`dataset="audit_logs",destination_type="https",health="flowing"`:      "1",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("gauges\n got %v\nwant %v\n%s", got, want, body)
	}
	if !strings.Contains(string(body), "logpush_onboard_logpush_jobs_listed_timestamp_seconds ") {
		t.Fatalf("no listing time:\n%s", body)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("jobs --watch stopped = %d, want 0:\n%s", code, stderr)
	}
}

// TestJobsCredentialAndEmptyAccount: the jobs are listed with the named
// credential of --credentials (none in the environment); a credential
// Cloudflare refuses and a name the file lacks are bad input. An account
// whose zones GET /zones does not show is warned about, and its own jobs
// are listed still.
func TestJobsCredentialAndEmptyAccount(t *testing.T) {
	t.Parallel()
	ps, ids := jobsSim(t)
	file := filepath.Join(t.TempDir(), "credentials.yaml")
	if err := os.WriteFile(file, []byte("lister:\n  token: "+runToken+"\nstranger: {token: not-the-token}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := fmt.Sprintf("%032x", 0x30b5) // an account without zones
	accountJob, err := ps.sim.AddJobJSON("account", empty, []byte(`{"dataset":"gateway_dns","destination_conf":"gs://gw/dns","enabled":true}`))
	if err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runEnv(t, nil, "", jobsArgs(ps, "--credentials", file, "--credential", "lister", "--account", empty, "--format", "csv")...)
	if code != 0 {
		t.Fatalf("jobs --credential lister = %d:\n%s\n%s", code, out, stderr)
	}
	noSecrets(t, "stdout", out)
	noSecrets(t, "stderr", stderr)
	for _, id := range []int{ids["failing"], ids["flowing-account"], accountJob} {
		if !strings.Contains(out, ","+fmt.Sprint(id)+",") {
			t.Errorf("job %d not listed:\n%s", id, out)
		}
	}
	if !strings.Contains(stderr, "warning: account "+empty+": GET /zones lists no zones") {
		t.Errorf("no warning about the account without zones:\n%s", stderr)
	}
	for _, c := range []struct{ cred, want string }{
		{"stranger", "cannot list zones"},
		{"nobody", "not in the credentials file"},
	} {
		code, out, stderr := runEnv(t, nil, "", jobsArgs(ps, "--credentials", file, "--credential", c.cred)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("--credential %s = %d, want 2 with %q:\n%s\n%s", c.cred, code, c.want, out, stderr)
		}
		noSecrets(t, "stderr", stderr)
	}
}

// TestJobsRelist: each listing of --watch replaces the counts; a failed
// one keeps the last counts and counts a failure.
func TestJobsRelist(t *testing.T) {
	t.Parallel()
	ps, _ := jobsSim(t)
	newPlannerAt := func(url string) *planner {
		api, err := cloudflare.New(cloudflare.Config{BaseURL: url, Credentials: cloudflare.Credentials{APIToken: runToken}})
		if err != nil {
			t.Fatal(err)
		}
		return &planner{api: api, retry: cloudflare.VerifyPolicy{Attempts: 1}}
	}
	sel := jobSelection{accounts: []string{jobsAccount}, concurrency: 2}
	h := metrics.NewJobHealth(prometheus.NewRegistry())
	var log bytes.Buffer
	ctx := context.Background()
	relistJobs(ctx, &log, newPlannerAt(ps.url), sel, h)
	failing := func() float64 { return gaugeValue(h.Jobs, metrics.JobFailing, "firewall_events", "azure") }
	if v := failing(); v != 1 {
		t.Fatalf("failing firewall_events/azure = %v, want 1", v)
	}
	// A second failing job, then a listing that fails: the counts stay.
	if _, err := ps.sim.AddJobJSON("zone", jobsZone(2, jobsAccount).ID, []byte(`{"dataset":"http_requests","destination_conf":"azure://logs/http?sig=`+jobsSASSecret+`","enabled":true}`)); err != nil {
		t.Fatal(err)
	}
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"success":false,"errors":[{"code":7003,"message":"Could not route"}],"messages":[],"result":null}`)
	}))
	defer broken.Close()
	relistJobs(ctx, &log, newPlannerAt(broken.URL), sel, h)
	if v := promtestutil.ToFloat64(h.ListFailures); v != 1 || failing() != 1 || !strings.Contains(log.String(), "listing failed") {
		t.Fatalf("after a failed listing: %v failures, failing = %v, log %q; want 1, 1 (kept), and why", v, failing(), log.String())
	}
	relistJobs(ctx, &log, newPlannerAt(ps.url), sel, h)
	if v := gaugeValue(h.Jobs, metrics.JobFailing, "http_requests", "azure"); v != 1 {
		t.Fatalf("the new failing job: %v, want 1", v)
	}
	if n := promtestutil.CollectAndCount(h.Jobs); n != 6 {
		t.Fatalf("%d series, want 6", n)
	}
	noSecrets(t, "log", log.String())
}

// gaugeValue is the value of vec's series of these label values (health,
// dataset, destination_type), -1 when it has none; it makes no series.
func gaugeValue(vec *prometheus.GaugeVec, values ...string) float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() { vec.Collect(ch); close(ch) }()
	found := -1.0
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			continue
		}
		got := map[string]string{}
		for _, l := range d.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if got["health"] == values[0] && got["dataset"] == values[1] && got["destination_type"] == values[2] {
			found = d.GetGauge().GetValue()
		}
	}
	return found
}
