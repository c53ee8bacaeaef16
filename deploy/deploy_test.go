package deploy_test

import (
	"bytes"
	"cmp"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v4"

	"github.com/logpush-onboard/logpush-onboard/metrics"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// job is the scrape job of the workers: alert rules, the dashboard's $job,
// the ServiceMonitor's jobLabel and prometheus.yml agree on it.
const job = "logpush-onboard"

// skipPrometheusEnv lets a machine without Prometheus skip the tests that
// need promtool or prometheus; without it they fail.
const skipPrometheusEnv = "LOGPUSH_SKIP_PROMETHEUS"

// requireTool returns the path of promtool or prometheus. A missing tool
// fails the test (CI must not pass by skipping the checks) unless
// LOGPUSH_SKIP_PROMETHEUS=1.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv(skipPrometheusEnv) == "1" {
		t.Skipf("%s not found and %s=1: skipped", name, skipPrometheusEnv)
	}
	t.Fatalf("%s not found on PATH: run scripts/ensure-prometheus (installs Debian's prometheus package, which has promtool and prometheus), or set %s=1 to skip the checks that need it", name, skipPrometheusEnv)
	return ""
}

// repoRoot is the directory of go.mod, above this package's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// loadStrict decodes the single YAML document in path into v, rejecting
// fields v does not declare.
func loadStrict(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Load(b, v, yaml.WithKnownFields()); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func runTool(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ruleFile is a Prometheus rule file (and a PrometheusRule's spec).
type ruleFile struct {
	Groups []ruleGroup `yaml:"groups"`
}

type ruleGroup struct {
	Name     string `yaml:"name"`
	Interval string `yaml:"interval,omitempty"`
	Rules    []rule `yaml:"rules"`
}

type rule struct {
	Alert       string            `yaml:"alert,omitempty"`
	Record      string            `yaml:"record,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

func loadAlerts(t *testing.T) []rule {
	t.Helper()
	var rf ruleFile
	loadStrict(t, filepath.Join("prometheus", "alerts.yml"), &rf)
	var rules []rule
	for _, g := range rf.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}

// TestPromtool checks the rules and the scrape config with promtool and runs
// the rules' unit tests.
func TestPromtool(t *testing.T) {
	t.Parallel()
	promtool := requireTool(t, "promtool")
	dir := "prometheus"
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"check", "config", "prometheus.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		out := runTool(t, dir, promtool, args...)
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

// alertsTestFile is the part of a promtool unit test file this test reads.
type alertsTestFile struct {
	RuleFiles          []string `yaml:"rule_files"`
	EvaluationInterval string   `yaml:"evaluation_interval"`
	Tests              []struct {
		Name        string `yaml:"name"`
		Interval    string `yaml:"interval"`
		InputSeries []struct {
			Series string `yaml:"series"`
			Values string `yaml:"values"`
		} `yaml:"input_series"`
		AlertRuleTest []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `yaml:"exp_labels"`
				ExpAnnotations map[string]string `yaml:"exp_annotations"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestAlertRules checks what promtool does not: every alert has a severity,
// a summary and a description, selects the workers' job, and has a unit test
// where it fires and one where it does not.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	rules := loadAlerts(t)
	if len(rules) == 0 {
		t.Fatal("no rules in alerts.yml")
	}
	var tf alertsTestFile
	loadStrict(t, filepath.Join("prometheus", "alerts_test.yml"), &tf)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tf.Tests {
		for _, at := range tc.AlertRuleTest {
			if len(at.ExpAlerts) > 0 {
				fires[at.Alertname] = true
			} else {
				quiet[at.Alertname] = true
			}
		}
	}
	severities := []string{"critical", "warning", "info"}
	for _, r := range rules {
		if r.Alert == "" {
			t.Errorf("rule %q: only alerting rules are expected", r.Record)
			continue
		}
		if !slices.Contains(severities, r.Labels["severity"]) {
			t.Errorf("%s: severity %q, want one of %v", r.Alert, r.Labels["severity"], severities)
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: needs summary and description annotations", r.Alert)
		}
		if !strings.Contains(r.Expr, `job="`+job+`"`) {
			t.Errorf("%s: expr does not select job=%q", r.Alert, job)
		}
		if !fires[r.Alert] {
			t.Errorf("%s: alerts_test.yml has no case where it fires", r.Alert)
		}
		if !quiet[r.Alert] {
			t.Errorf("%s: alerts_test.yml has no case where it does not fire", r.Alert)
		}
	}
}

// metricRef matches the names of this project's and asynq's series in an
// expression.
var metricRef = regexp.MustCompile(`\b(logpush_onboard_[a-z_]+|asynq_[a-z_]+)\b`)

// exportedNames returns the series names the worker exports: every
// collector of metrics.New (histograms with _bucket, _sum and _count) and
// the queue collector; and those of jobs --watch (metrics.NewJobHealth).
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	descs := make(chan *prometheus.Desc, 100)
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []prometheus.Collector{m.APIRequests, m.APIDuration, m.Tasks, m.Destinations, m.PollAttempts,
		m.OnboardingDuration, m.StorageRequests, m.BudgetWait, m.Cooldowns, m.QueuePauses} {
		c.Describe(descs)
	}
	// jobs --watch's gauges, scraped in the same job.
	jh := metrics.NewJobHealth(prometheus.NewRegistry())
	for _, c := range []prometheus.Collector{jh.Jobs, jh.LastListed, jh.ListFailures} {
		c.Describe(descs)
	}
	// The queue collector describes what it collects: it needs a queue.
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	client := asynq.NewClientFromRedisClient(rdb)
	if _, err := client.Enqueue(asynq.NewTask(tasks.TypeChallenge, nil), asynq.Queue(tasks.Queue)); err != nil {
		t.Fatal(err)
	}
	metrics.NewQueueCollector(asynq.NewInspectorFromRedisClient(rdb)).Describe(descs)
	close(descs)

	names := map[string]bool{}
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	histogram := map[string]bool{"logpush_onboard_api_request_duration_seconds": true, "logpush_onboard_poll_attempts": true,
		"logpush_onboard_onboarding_duration_seconds": true, "logpush_onboard_budget_wait_seconds": true}
	for d := range descs {
		mm := fq.FindStringSubmatch(d.String())
		if mm == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		names[mm[1]] = true
		if histogram[mm[1]] {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[mm[1]+s] = true
			}
		}
	}
	for h := range histogram {
		if !names[h] {
			t.Fatalf("histogram %s is no longer exported: update this test", h)
		}
	}
	return names
}

// TestQueriesUseExportedMetrics checks, without Prometheus, that every
// series named by an alert rule, a dashboard panel or an autoscaler query is
// one the worker exports.
func TestQueriesUseExportedMetrics(t *testing.T) {
	t.Parallel()
	names := exportedNames(t)
	var exprs []namedExpr
	for _, r := range loadAlerts(t) {
		exprs = append(exprs, namedExpr{"alert " + r.Alert, r.Expr})
	}
	for _, p := range loadDashboard(t).targets() {
		exprs = append(exprs, namedExpr{"panel " + p.panel, p.expr})
	}
	exprs = append(exprs, scalerQueries(t)...)
	for _, e := range exprs {
		refs := metricRef.FindAllString(e.expr, -1)
		if len(refs) == 0 && !strings.Contains(e.expr, "up{") {
			t.Errorf("%s: names no metric: %s", e.name, e.expr)
		}
		for _, n := range refs {
			if !names[n] {
				t.Errorf("%s: %s is not exported by the worker (expr %s)", e.name, n, e.expr)
			}
		}
	}
}

type namedExpr struct{ name, expr string }

// envNames are the environment variables the CLI reads: each appears as a
// string literal in internal/cli or internal/cloudflare.
func envNames(t *testing.T) map[string]bool {
	t.Helper()
	var files []string
	for _, pkg := range []string{"cli", "cloudflare"} {
		fs, err := filepath.Glob(filepath.Join(repoRoot(t), "internal", pkg, "*.go"))
		if err != nil || len(fs) == 0 {
			t.Fatalf("read internal/%s: %v", pkg, err)
		}
		files = append(files, fs...)
	}
	var src bytes.Buffer
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`"([A-Z][A-Z0-9_]+)"`).FindAllStringSubmatch(src.String(), -1) {
		names[m[1]] = true
	}
	// Read by the AWS SDK, not by the CLI.
	for _, n := range []string{"AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		names[n] = true
	}
	return names
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// checkWebUIPrivate fails unless the web UI of a worker started with args
// and env stays on loopback: --web-ui is served on --web-addr (WEB_ADDR),
// default 127.0.0.1:9465, which must name a loopback host.
func checkWebUIPrivate(t *testing.T, where string, args []string, env map[string]string) {
	t.Helper()
	addr := cmp.Or(env["WEB_ADDR"], "127.0.0.1:9465")
	if i := slices.Index(args, "--web-addr"); i >= 0 && i+1 < len(args) {
		addr = args[i+1]
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		t.Errorf("%s: web UI address %q is not on loopback: the page shows batch ids, file names, buckets and errors; keep it behind a port-forward", where, addr)
	}
}
