package deploy_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// composeFile declares the Compose fields deploy/compose.yaml uses; x-
// extension keys (YAML anchors) land in Extensions.
type composeFile struct {
	Services   map[string]composeService `yaml:"services"`
	Volumes    map[string]*struct{}      `yaml:"volumes"`
	Extensions map[string]any            `yaml:",inline"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test        []string `yaml:"test"`
		Interval    string   `yaml:"interval"`
		Timeout     string   `yaml:"timeout"`
		Retries     int      `yaml:"retries"`
		StartPeriod string   `yaml:"start_period"`
	} `yaml:"healthcheck"`
	Restart     string   `yaml:"restart"`
	Profiles    []string `yaml:"profiles"`
	ReadOnly    bool     `yaml:"read_only"`
	Tmpfs       []string `yaml:"tmpfs"`
	CapDrop     []string `yaml:"cap_drop"`
	SecurityOpt []string `yaml:"security_opt"`
	User        string   `yaml:"user"`
}

// promConfig is the part of prometheus.yml the compose check reads.
type promConfig struct {
	Global struct {
		ScrapeInterval     string            `yaml:"scrape_interval"`
		EvaluationInterval string            `yaml:"evaluation_interval"`
		ExternalLabels     map[string]string `yaml:"external_labels"`
	} `yaml:"global"`
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

type grafanaDatasources struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name      string            `yaml:"name"`
		UID       string            `yaml:"uid"`
		Type      string            `yaml:"type"`
		Access    string            `yaml:"access"`
		URL       string            `yaml:"url"`
		IsDefault bool              `yaml:"isDefault"`
		Editable  bool              `yaml:"editable"`
		JSONData  map[string]string `yaml:"jsonData"`
	} `yaml:"datasources"`
}

type grafanaProviders struct {
	APIVersion int `yaml:"apiVersion"`
	Providers  []struct {
		Name                  string `yaml:"name"`
		Folder                string `yaml:"folder"`
		Type                  string `yaml:"type"`
		DisableDeletion       bool   `yaml:"disableDeletion"`
		AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
		UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
		Options               struct {
			Path                      string `yaml:"path"`
			FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

// TestCompose checks deploy/compose.yaml against itself and the repository:
// services, dependencies, mounted paths, the wiring between simulator,
// workers, Prometheus and Grafana.
func TestCompose(t *testing.T) {
	t.Parallel()
	var c composeFile
	loadStrict(t, "compose.yaml", &c)
	for k := range c.Extensions {
		if !strings.HasPrefix(k, "x-") {
			t.Errorf("compose: unknown top-level key %q", k)
		}
	}
	for _, name := range []string{"redis", "simulator", "worker-1", "worker-2", "prometheus", "grafana", "enqueue"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("compose: no service %q", name)
		}
	}
	// Redis persists: a restart mid-batch must not lose the batch.
	if r := c.Services["redis"]; flagValue(r.Command, "--appendonly") != "yes" ||
		!slices.ContainsFunc(r.Volumes, func(v string) bool { return strings.HasSuffix(v, ":/data") }) {
		t.Errorf("redis: command %v, volumes %v; want --appendonly yes on a volume at /data", r.Command, r.Volumes)
	}
	env := envNames(t)
	// Container paths bind-mounted from the repository, by service.
	mounts := map[string]map[string]string{}
	for name, s := range c.Services {
		if s.Image == "" {
			t.Errorf("%s: no image", name)
		}
		for dep, d := range s.DependsOn {
			target, ok := c.Services[dep]
			switch {
			case !ok:
				t.Errorf("%s: depends_on %q, which is no service", name, dep)
			case !slices.Contains([]string{"service_started", "service_healthy", "service_completed_successfully"}, d.Condition):
				t.Errorf("%s: depends_on %s: condition %q", name, dep, d.Condition)
			case d.Condition == "service_healthy" && target.Healthcheck == nil:
				t.Errorf("%s: depends_on %s being healthy, but it has no healthcheck", name, dep)
			}
		}
		mounts[name] = map[string]string{}
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) < 2 || len(parts) > 3 {
				t.Errorf("%s: volume %q: want SOURCE:TARGET[:MODE]", name, v)
				continue
			}
			src, dst := parts[0], parts[1]
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s: bind mount source %s: %v", name, src, err)
				}
				mounts[name][dst] = src
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("%s: named volume %q is not declared under volumes", name, src)
			}
		}
		if s.Build != nil {
			if _, err := os.Stat(s.Build.Context); err != nil {
				t.Errorf("%s: build context: %v", name, err)
			}
			if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
				t.Errorf("%s: dockerfile: %v", name, err)
			}
		}
		if s.Image == "logpush-onboard:dev" {
			if !s.ReadOnly || !slices.Equal(s.CapDrop, []string{"ALL"}) {
				t.Errorf("%s: want read_only: true and cap_drop: [ALL]", name)
			}
			for k := range s.Environment {
				if !env[k] {
					t.Errorf("%s: environment %s is not a variable the CLI reads", name, k)
				}
			}
		}
	}

	// The simulator listens where the workers send their API calls.
	sim := c.Services["simulator"]
	if len(sim.Command) == 0 || sim.Command[0] != "simulate" {
		t.Fatalf("simulator: command %v, want simulate", sim.Command)
	}
	simAddr := flagValue(sim.Command, "--addr")
	_, simPort, err := net.SplitHostPort(simAddr)
	if err != nil {
		t.Fatalf("simulator --addr %q: %v", simAddr, err)
	}
	var workerTargets []string
	for _, w := range []string{"worker-1", "worker-2"} {
		s := c.Services[w]
		if len(s.Command) == 0 || s.Command[0] != "worker" {
			t.Errorf("%s: command %v, want worker", w, s.Command)
		}
		u, err := url.Parse(s.Environment["CLOUDFLARE_API_URL"])
		if err != nil || u.Hostname() != "simulator" || u.Port() != simPort || u.Path != "/client/v4" {
			t.Errorf("%s: CLOUDFLARE_API_URL %q, want http://simulator:%s/client/v4", w, s.Environment["CLOUDFLARE_API_URL"], simPort)
		}
		if s.Environment["CLOUDFLARE_API_TOKEN"] != sim.Environment["CLOUDFLARE_API_TOKEN"] {
			t.Errorf("%s: CLOUDFLARE_API_TOKEN differs from the simulator's", w)
		}
		ru, err := url.Parse(s.Environment["REDIS_URL"])
		if err != nil || ru.Hostname() != "redis" {
			t.Errorf("%s: REDIS_URL %q does not point at the redis service", w, s.Environment["REDIS_URL"])
		}
		_, port, err := net.SplitHostPort(s.Environment["METRICS_ADDR"])
		if err != nil {
			t.Errorf("%s: METRICS_ADDR %q: %v", w, s.Environment["METRICS_ADDR"], err)
		}
		workerTargets = append(workerTargets, w+":"+port)
		checkWebUIPrivate(t, w, s.Command, s.Environment)
	}

	// jobs --watch lists the jobs through the simulator, from the workers'
	// budget, and serves its gauges to Prometheus in the workers' job (the
	// alert rules and panels select that job).
	jw := c.Services["jobs-watch"]
	if len(jw.Command) < 2 || jw.Command[0] != "jobs" || !slices.Contains(jw.Command, "--watch") || flagValue(jw.Command, "--account") == "" {
		t.Errorf("jobs-watch: command %v, want jobs --watch --account ID", jw.Command)
	}
	if jw.Environment["CLOUDFLARE_API_URL"] != c.Services["worker-1"].Environment["CLOUDFLARE_API_URL"] ||
		jw.Environment["CLOUDFLARE_API_TOKEN"] != sim.Environment["CLOUDFLARE_API_TOKEN"] {
		t.Errorf("jobs-watch: CLOUDFLARE_API_URL or CLOUDFLARE_API_TOKEN differs from the workers'")
	}
	if ru, err := url.Parse(flagValue(jw.Command, "--redis")); err != nil || ru.Hostname() != "redis" {
		t.Errorf("jobs-watch: --redis %q does not point at the redis service (the workers' shared budget)", flagValue(jw.Command, "--redis"))
	}
	host, watchPort, err := net.SplitHostPort(flagValue(jw.Command, "--listen"))
	if err != nil || (host != "" && host != "0.0.0.0") {
		t.Errorf("jobs-watch: --listen %q: want :PORT, reachable by Prometheus (%v)", flagValue(jw.Command, "--listen"), err)
	}
	if len(jw.Profiles) != 0 {
		t.Errorf("jobs-watch: profiles %v: Prometheus scrapes it in job %s, so it must run whenever the workers do (else WorkerDown fires)", jw.Profiles, job)
	}

	// Prometheus scrapes exactly the workers and jobs --watch, and loads
	// the alert rules.
	var pc promConfig
	loadStrict(t, filepath.Join("prometheus", "prometheus.yml"), &pc)
	var targets []string
	for _, sc := range pc.ScrapeConfigs {
		if sc.JobName != job {
			continue
		}
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	slices.Sort(targets)
	want := append(workerTargets, "jobs-watch:"+watchPort)
	slices.Sort(want)
	if !slices.Equal(targets, want) {
		t.Errorf("prometheus.yml job %s targets %v, want the workers and jobs --watch %v", job, targets, want)
	}
	pm := mounts["prometheus"]
	if pm["/etc/prometheus/prometheus.yml"] != "./prometheus/prometheus.yml" {
		t.Errorf("prometheus: prometheus.yml not mounted at /etc/prometheus/prometheus.yml: %v", pm)
	}
	for _, rf := range pc.RuleFiles {
		if _, ok := pm[filepath.Join("/etc/prometheus", rf)]; !ok {
			t.Errorf("prometheus: rule file %s is not mounted next to prometheus.yml", rf)
		}
	}

	// Grafana gets its provisioning and the dashboard where the dashboard
	// provider looks, and its data source is the prometheus service.
	gm := mounts["grafana"]
	prov, ok := gm["/etc/grafana/provisioning"]
	if !ok {
		t.Fatalf("grafana: provisioning not mounted at /etc/grafana/provisioning: %v", gm)
	}
	var ds grafanaDatasources
	loadStrict(t, filepath.Join(prov, "datasources", "prometheus.yaml"), &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" {
		t.Fatalf("grafana datasources: want one prometheus, got %+v", ds.Datasources)
	}
	if u, err := url.Parse(ds.Datasources[0].URL); err != nil || u.Hostname() != "prometheus" {
		t.Errorf("grafana datasource url %q: want the prometheus service", ds.Datasources[0].URL)
	}
	var dp grafanaProviders
	loadStrict(t, filepath.Join(prov, "dashboards", "logpush-onboard.yaml"), &dp)
	if len(dp.Providers) != 1 {
		t.Fatalf("grafana dashboard providers: %+v", dp.Providers)
	}
	dashMounted := false
	for dst, src := range gm {
		if filepath.Dir(dst) == dp.Providers[0].Options.Path && src == "./grafana/logpush-onboard.json" {
			dashMounted = true
		}
	}
	if !dashMounted {
		t.Errorf("grafana: ./grafana/logpush-onboard.json is not mounted into the provider's path %s", dp.Providers[0].Options.Path)
	}
	if home := c.Services["grafana"].Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; gm[home] == "" {
		t.Errorf("grafana: home dashboard %q is not a mounted file", home)
	}

	// The demo batch is a valid input whose file:// destinations are on the
	// volume the simulator writes and the workers read.
	enq := c.Services["enqueue"]
	if len(enq.Command) != 2 || enq.Command[0] != "enqueue" {
		t.Fatalf("enqueue: command %v", enq.Command)
	}
	csvDir, csvName := filepath.Split(enq.Command[1])
	src, ok := mounts["enqueue"][filepath.Clean(csvDir)]
	if !ok {
		t.Fatalf("enqueue: %s is not in a mounted directory", enq.Command[1])
	}
	checkDemoCSV(t, filepath.Join(src, csvName), c)
}

// checkDemoCSV runs the producer's checks (as enqueue --dry-run does) on the
// compose demo batch, and checks that its file:// destinations are under the
// volume shared by the simulator and the workers.
func checkDemoCSV(t *testing.T, path string, c composeFile) {
	t.Helper()
	plan, err := producer.Check(t.Context(), func() (io.ReadCloser, error) { return os.Open(path) },
		producer.ClientConfig{Format: tasks.FormatCSV})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if plan.ErrorCount > 0 || plan.Rows == 0 || plan.ByType["file"] == 0 {
		t.Fatalf("%s: %d rows, %d invalid (%v), by type %v", path, plan.Rows, plan.ErrorCount, plan.Errors, plan.ByType)
	}
	shared := ""
	for _, v := range c.Services["simulator"].Volumes {
		if p := strings.Split(v, ":"); len(p) >= 2 && !strings.HasPrefix(p[0], ".") {
			shared = p[1]
			for _, w := range []string{"worker-1", "worker-2"} {
				if !slices.Contains(c.Services[w].Volumes, v) {
					t.Errorf("%s does not mount the simulator's volume %s", w, v)
				}
			}
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		_, conf, _ := strings.Cut(strings.SplitN(sc.Text(), ",", 2)[1], ",")
		if p, ok := strings.CutPrefix(conf, "file://"); ok && (shared == "" || !strings.HasPrefix(p, shared+"/")) {
			t.Fatalf("%s: %s is not under the shared volume %q", path, conf, shared)
		}
	}
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// TestDockerfile checks the image recipe without Docker (no engine here):
// a Go build stage, a static non-root final stage, and build inputs that
// exist and are not excluded from the context.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	src := strings.ReplaceAll(string(b), "\\\n", " ")
	var froms, users []string
	var entrypoint string
	for _, line := range strings.Split(src, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, strings.Join(f[1:], " "))
		case "USER":
			users = append(users, f[1])
		case "ENTRYPOINT":
			entrypoint = strings.TrimSpace(strings.TrimPrefix(line, f[0]))
		}
	}
	if len(froms) != 2 || !regexp.MustCompile(`^golang:1\.26(\.\d+)?\S* AS build$`).MatchString(froms[0]) {
		t.Errorf("stages %v: want golang:1.26 AS build, then the runtime image", froms)
	}
	if len(froms) > 0 {
		final := froms[len(froms)-1]
		if final != "scratch" && !regexp.MustCompile(`^gcr\.io/distroless/static(-debian\d+)?:nonroot$`).MatchString(final) {
			t.Errorf("final stage %q: want distroless static nonroot or scratch", final)
		}
	}
	if len(users) == 0 || slices.Contains([]string{"0", "root", "0:0"}, users[len(users)-1]) {
		t.Errorf("USER %v: the final stage must run as a non-root user", users)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/logpush-onboard"} {
		if !strings.Contains(src, want) {
			t.Errorf("Dockerfile does not contain %q", want)
		}
	}
	var ep []string
	if err := json.Unmarshal([]byte(entrypoint), &ep); err != nil || len(ep) == 0 {
		t.Fatalf("ENTRYPOINT %q: want exec form [\"/path/to/binary\"]", entrypoint)
	}
	if !strings.Contains(src, "/out/logpush-onboard "+ep[0]) {
		t.Errorf("ENTRYPOINT %s is not where the binary is copied", ep[0])
	}
	// Build context: the repository root.
	root := repoRoot(t)
	for _, p := range []string{"go.mod", "go.sum", "cmd/logpush-onboard"} {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("build input %s: %v", p, err)
		}
	}
	ignore, err := os.ReadFile("Dockerfile.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(ignore), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, needed := range []string{"go.mod", "go.sum", "cmd", "internal", "tasks", "producer", "worker", "metrics"} {
			if ok, _ := filepath.Match(line, needed); ok || line == "*" || line == "." {
				t.Errorf("Dockerfile.dockerignore: %q excludes %s, which the build needs", line, needed)
			}
		}
	}
}
