package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// TestLiveQueries runs a small fleet for real and queries it through a real
// Prometheus: the Cloudflare API simulator (with injected 5xx and 429
// answers); a healthy worker onboarding the compose demo's batch
// (deploy/examples/destinations.csv: 180 file:// destinations, 20 that need
// no challenge); a worker with a wrong API token on its own Redis
// database, whose 403s archive tasks and pause its queue; and a jobs
// --watch serving the health of an account's 3 jobs. Prometheus scrapes
// both every second and loads deploy/prometheus/alerts.yml. Then every
// dashboard query must parse and return at least one series, every metric
// it names must exist in Prometheus (so "or vector(0)" could not hide a
// typo), every alert and autoscaler query must parse, and every alert rule
// must evaluate without error.
func TestLiveQueries(t *testing.T) {
	t.Parallel()
	promBin := requireTool(t, "prometheus")
	root := repoRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "logpush-onboard")
	build := exec.Command("go", "build", "-o", bin, "./cmd/logpush-onboard")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	rdbGood, optGood := testutil.Redis(t)
	rdbBad, optBad := testutil.Redis(t)
	simAddr, goodAddr, badAddr, promAddr := testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t), testutil.FreeAddr(t)
	const token = "live-test-token"

	start(t, dir, "simulator", bin, []string{"CLOUDFLARE_API_TOKEN=" + token},
		"simulate", "--addr", simAddr, "--write-delay", "200ms", "--write-jitter", "800ms",
		"--error-rate", "0.05", "--rate-limit-rate", "0.05", "--log-level", "warn")
	waitHTTP(t, "http://"+simAddr+"/", 0)
	apiURL := "http://" + simAddr + "/client/v4"
	start(t, dir, "worker-good", bin, []string{"CLOUDFLARE_API_TOKEN=" + token},
		"worker", "--redis", redisURL(optGood), "--cloudflare-api-url", apiURL, "--metrics-addr", goodAddr,
		"--api-rate", "6000/1m", "--concurrency", "20", "--shutdown-timeout", "2s", "--log-level", "warn")
	start(t, dir, "worker-bad-token", bin, []string{"CLOUDFLARE_API_TOKEN=wrong-token"},
		"worker", "--redis", redisURL(optBad), "--cloudflare-api-url", apiURL, "--metrics-addr", badAddr,
		"--api-rate", "6000/1m", "--concurrency", "2", "--auth-pause-after", "2", "--shutdown-timeout", "2s", "--log-level", "error")
	waitHTTP(t, "http://"+goodAddr+"/healthz", http.StatusOK)
	waitHTTP(t, "http://"+badAddr+"/healthz", http.StatusOK)

	// jobs --watch, scraped in the same job as the workers: the jobs of an
	// account (the simulator serves it no zones: its own jobs only).
	watchAddr := testutil.FreeAddr(t)
	const watchAccount = "00000000000000000000000000000abc"
	createJobs(t, apiURL, token, watchAccount, 3)
	start(t, dir, "jobs-watch", bin, []string{"CLOUDFLARE_API_TOKEN=" + token},
		"jobs", "--account", watchAccount, "--watch", "--listen", watchAddr, "--interval", "1s",
		"--cloudflare-api-url", apiURL, "--api-rate", "0", "--log-level", "error")
	waitHTTP(t, "http://"+watchAddr+"/metrics", http.StatusOK)

	alerts, err := filepath.Abs(filepath.Join("prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	promCfg := filepath.Join(dir, "prometheus.yml")
	writeFile(t, promCfg, fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: %s
    static_configs:
      - targets: [%q, %q, %q]
`, alerts, job, goodAddr, badAddr, watchAddr))
	start(t, dir, "prometheus", promBin, nil,
		"--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	prom := "http://" + promAddr
	waitHTTP(t, prom+"/-/ready", http.StatusOK)

	// enqueue checks the credential against the API before enqueueing: the
	// bad-token worker's batch is enqueued with the good one.
	enqEnv := []string{"CLOUDFLARE_API_TOKEN=" + token, "CLOUDFLARE_API_URL=" + apiURL}
	batchGood := enqueueCSV(t, dir, bin, enqEnv, optGood, "good", composeDemoCSV(t, dir))
	enqueueCSV(t, dir, bin, enqEnv, optBad, "bad", fileCSV(dir, "bad", 5))

	ctx := ctxTimeout(t, 100*time.Second)
	st := waitBatch(ctx, t, rdbGood, batchGood)
	waitPaused(ctx, t, rdbBad)
	// Wait until Prometheus has scraped the final counts, then a few more
	// scrapes so that every rate has samples on both sides.
	done := st.Counts[events.Validated] + st.Counts[events.Failed]
	waitQuery(ctx, t, prom, fmt.Sprintf(`sum(logpush_onboard_destinations_total{instance=%q}) == %d`, goodAddr, done))
	waitQuery(ctx, t, prom, fmt.Sprintf(`sum(logpush_onboard_logpush_jobs{instance=%q}) >= 3`, watchAddr))
	time.Sleep(3 * time.Second)
	t.Logf("batch %s: %d validated, %d failed, %d not_required of %d", batchGood,
		st.Counts[events.Validated], st.Counts[events.Failed], st.Counts[events.NotRequired], st.Total)

	names := map[string]bool{}
	var nameList []string
	if err := promGet(ctx, prom, "/api/v1/label/__name__/values", nil, &nameList); err != nil {
		t.Fatal(err)
	}
	for _, n := range nameList {
		names[n] = true
	}

	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "panel\tref\tseries\tfirst value\texpr")
	for _, tg := range loadDashboard(t).targets() {
		expr, unknown := substitute(tg.expr)
		if len(unknown) > 0 {
			t.Errorf("panel %q %s: unknown variables %v", tg.panel, tg.ref, unknown)
		}
		res, err := instant(ctx, prom, expr)
		if err != nil {
			t.Errorf("panel %q %s: %v\n  %s", tg.panel, tg.ref, err, expr)
			fmt.Fprintf(tw, "%s\t%s\tERROR\t\t%s\n", tg.panel, tg.ref, expr)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", tg.panel, tg.ref, len(res), res.first(), expr)
		if len(res) == 0 {
			t.Errorf("panel %q %s: no series\n  %s", tg.panel, tg.ref, expr)
		}
		for _, n := range metricRef.FindAllString(expr, -1) {
			if !names[n] {
				t.Errorf("panel %q %s: Prometheus has no series named %s%s", tg.panel, tg.ref, n, wiringHint(n))
			}
		}
	}
	tw.Flush()
	t.Logf("dashboard queries against the live fleet:\n%s", table.String())

	table.Reset()
	fmt.Fprintln(tw, "alert / scaler\tseries\texpr")
	var exprs []namedExpr
	for _, r := range loadAlerts(t) {
		exprs = append(exprs, namedExpr{r.Alert, r.Expr})
	}
	exprs = append(exprs, scalerQueries(t)...)
	for _, e := range exprs {
		res, err := instant(ctx, prom, e.expr)
		if err != nil {
			t.Errorf("%s: %v", e.name, err)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", e.name, len(res), strings.Join(strings.Fields(e.expr), " "))
	}
	tw.Flush()
	t.Logf("alert and autoscaler queries (parse check; series now):\n%s", table.String())

	// Rules are evaluated every second: 20s is plenty.
	checkRulesHealthy(ctxTimeout(t, 20*time.Second), t, prom)
}

// createJobs creates n enabled HTTPS jobs (no ownership challenge needed)
// of account on the simulator at apiURL, retrying its injected failures.
func createJobs(t *testing.T, apiURL, token, account string, n int) {
	t.Helper()
	api, err := cloudflare.New(cloudflare.Config{BaseURL: apiURL, Credentials: cloudflare.Credentials{APIToken: token}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 30*time.Second)
	for i := range n {
		req := cloudflare.JobRequest{DestinationConf: fmt.Sprintf("https://logs.example.com/in/%d", i), JobSpec: cloudflare.JobSpec{Dataset: "audit_logs", Enabled: true}}
		err := cloudflare.Retry(ctx, cloudflare.VerifyPolicy{Attempts: 20}, func() error {
			_, err := api.CreateJob(ctx, cloudflare.Target{Scope: cloudflare.ScopeAccount, ID: account}, req)
			return err
		})
		if err != nil {
			t.Fatalf("create job %d: %v", i, err)
		}
	}
}

// wiringHint explains a missing asynq_* series.
func wiringHint(name string) string {
	if strings.HasPrefix(name, "asynq_") {
		return " (is metrics.NewQueueCollector registered on the worker's registry in internal/cli/worker.go?)"
	}
	return ""
}

// checkRulesHealthy waits until Prometheus has evaluated every rule of
// alerts.yml without error, and for the paused queue of the bad-token
// worker to show up as a pending or firing LogpushOnboardQueuePaused.
func checkRulesHealthy(ctx context.Context, t *testing.T, prom string) {
	t.Helper()
	want := len(loadAlerts(t))
	var last string
	for {
		var rules struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
					State     string `json:"state"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := promGet(ctx, prom, "/api/v1/rules", url.Values{"type": {"alert"}}, &rules); err != nil {
			t.Fatal(err)
		}
		n, ok, paused := 0, 0, ""
		var bad []string
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				n++
				if r.Health == "ok" {
					ok++
				} else {
					bad = append(bad, fmt.Sprintf("%s: %s %s", r.Name, r.Health, r.LastError))
				}
				if r.Name == "LogpushOnboardQueuePaused" {
					paused = r.State
				}
			}
		}
		last = fmt.Sprintf("%d rules loaded, %d healthy, QueuePaused %q; %v", n, ok, paused, bad)
		if n == want && ok == want && (paused == "pending" || paused == "firing") {
			t.Logf("rules: %s", last)
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("rules not all healthy: %s", last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// vector is an instant query's result.
type vector []struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (v vector) first() string {
	if len(v) == 0 {
		return "-"
	}
	s, _ := v[0].Value[1].(string)
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
		return strconv.FormatFloat(f, 'g', 4, 64)
	}
	return s
}

// instant runs an instant query; a scalar result counts as one series.
func instant(ctx context.Context, prom, expr string) (vector, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := promGet(ctx, prom, "/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	switch data.ResultType {
	case "vector":
		var v vector
		err := json.Unmarshal(data.Result, &v)
		return v, err
	case "scalar":
		var s [2]any
		if err := json.Unmarshal(data.Result, &s); err != nil {
			return nil, err
		}
		return vector{{Value: s}}, nil
	default:
		return nil, fmt.Errorf("result type %s, want vector", data.ResultType)
	}
}

// promGet calls the Prometheus HTTP API and decodes data into out; a
// status other than success is an error with Prometheus's message.
func promGet(ctx context.Context, prom, path string, q url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, prom+path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return fmt.Errorf("%s: HTTP %d: %w", path, resp.StatusCode, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s: %s: %s", path, env.ErrorType, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

func waitQuery(ctx context.Context, t *testing.T, prom, expr string) {
	t.Helper()
	for {
		res, err := instant(ctx, prom, expr)
		if err == nil && len(res) > 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last error %v)", expr, ctx.Err(), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func waitBatch(ctx context.Context, t *testing.T, rdb *redis.Client, id string) events.BatchStatus {
	t.Helper()
	store := ledger.NewStore(rdb, ledger.Config{})
	for {
		st, err := store.Batch(ctx, id)
		if err == nil && st.Total > 0 && st.Done() >= st.Total {
			return st
		}
		select {
		case <-ctx.Done():
			t.Fatalf("batch %s not done: %d/%d (%v)", id, st.Done(), st.Total, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func waitPaused(ctx context.Context, t *testing.T, rdb *redis.Client) {
	t.Helper()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	for {
		info, err := insp.GetQueueInfo(tasks.Queue)
		if err == nil && info.Paused {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("queue of the bad-token worker not paused: %v", err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

var batchLine = regexp.MustCompile(`batch (b-[0-9a-f]+):`)

// composeDemoCSV is the compose demo's batch (deploy/examples), its
// file:///data destinations moved under dir.
func composeDemoCSV(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("examples", "destinations.csv"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "file:///data/", "file://"+filepath.ToSlash(dir)+"/data/")
}

// fileCSV is n file:// destinations under dir, in the format of
// internal/cli's tests.
func fileCSV(dir, name string, n int) string {
	var b strings.Builder
	b.WriteString("zone_id,account_id,destination_conf\n")
	for i := range n {
		fmt.Fprintf(&b, "%032x,,file://%s\n", i+1, filepath.Join(dir, "dest-"+name, strconv.Itoa(i)))
	}
	return b.String()
}

// enqueueCSV enqueues the CSV content with the CLI and returns the batch
// id.
func enqueueCSV(t *testing.T, dir, bin string, env []string, opt *redis.Options, name, content string) string {
	t.Helper()
	csv := filepath.Join(dir, name+".csv")
	writeFile(t, csv, content)
	// enqueue's credential check before enqueueing does not retry, and the
	// simulator injects 5xx and 429 answers: try again, as an operator
	// would. Nothing is enqueued when the check fails.
	var out []byte
	for attempt := 1; ; attempt++ {
		cmd := exec.Command(bin, "enqueue", "--redis", redisURL(opt), "--log-level", "warn", csv)
		cmd.Env = append(os.Environ(), env...)
		var err error
		out, err = cmd.CombinedOutput()
		if err == nil {
			break
		}
		if attempt == 5 || !strings.Contains(string(out), "preflight") {
			t.Fatalf("enqueue %s: %v\n%s", name, err, out)
		}
		t.Logf("enqueue %s, attempt %d: %v: %s", name, attempt, err, bytes.TrimSpace(out))
		time.Sleep(200 * time.Millisecond)
	}
	m := batchLine.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("enqueue %s: no batch id in %q", name, out)
	}
	return m[1]
}

// start runs a process for the rest of the test, its output in
// dir/name.log (shown when the test fails); cleanup stops it with SIGTERM,
// then SIGKILL after 10s.
func start(t *testing.T, dir, name, bin string, env []string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log (%s):\n%s", name, strings.Join(args, " "), tail(string(b), 40))
		}
	})
}

func tail(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitHTTP waits until url answers with status (any status when 0).
func waitHTTP(t *testing.T, u string, status int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if status == 0 || resp.StatusCode == status {
				return
			}
			err = errors.New(resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not answer %d within 30s: %v", u, status, last)
}

// redisURL is the URL of a leased test database for the CLI's --redis.
func redisURL(opt *redis.Options) string {
	u := url.URL{Scheme: "redis", Host: opt.Addr, Path: "/" + strconv.Itoa(opt.DB)}
	if opt.Password != "" {
		u.User = url.UserPassword(opt.Username, opt.Password)
	}
	return u.String()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
