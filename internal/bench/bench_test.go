package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/logpush-onboard/logpush-onboard/internal/bench"
	"github.com/logpush-onboard/logpush-onboard/internal/cli"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

// TestMain lets the bench start worker processes: this test binary running
// the CLI's worker command.
func TestMain(m *testing.M) {
	if args := os.Getenv("LOGPUSH_BENCH_CHILD_ARGS"); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			os.Exit(3)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := cli.Run(ctx, argv, cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// childWorker runs args in a child process of this test binary.
func childWorker(args []string) *exec.Cmd {
	argv, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LOGPUSH_BENCH_CHILD_ARGS="+string(argv))
	return cmd
}

// TestBenchQuick runs every scenario at small N on a real Redis, with
// worker processes, and checks that each produced its figures (not their
// values: the bench is not a timed test).
func TestBenchQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole bench at small N: about 40s")
	}
	t.Parallel()
	_, opt := testutil.Redis(t)
	var out, errOut bytes.Buffer
	jsonPath := filepath.Join(t.TempDir(), "bench.json")
	rep, err := bench.Run(context.Background(), bench.Env{Stdout: &out, Stderr: &errOut, Worker: childWorker}, bench.Config{
		RedisURL: testutil.RedisURL(), RedisDB: opt.DB, NoLease: true, Quick: true, JSONPath: jsonPath,
	})
	t.Logf("bench output:\n%s\n%s", out.String(), errOut.String())
	if err != nil {
		t.Fatalf("bench: %v", err)
	}
	c := bench.Config{Quick: true}.WithDefaults()
	if o := rep.Overhead; o == nil || o.Validated != int64(c.N) || o.Pipeline.Rate <= 0 || o.Floor.Rate <= 0 || !o.MemDone.Available || len(o.Alternatives) != 3 {
		t.Errorf("overhead = %+v", o)
	} else {
		// The users' path: the files are read from S3 through the AWS SDK,
		// and the enqueue command runs in a process of its own within the
		// timed span.
		if got := o.StorageReadsByType; got["s3"] < o.Validated || len(got) != 1 {
			t.Errorf("scenario a's storage reads by type = %v, want s3 only, at least one per destination (%d)", got, o.Validated)
		}
		if o.Pipeline.EnqueueCPU <= 0 || len(o.Pipeline.Rates) != c.Repeat {
			t.Errorf("scenario a's pipeline = %+v, want the enqueue command's CPU and %d runs", o.Pipeline, c.Repeat)
		}
	}
	if b := rep.Budget; b == nil || b.InProcess || b.Validated != int64(c.BudgetN) || b.Makespan <= 0 || b.Naive == nil || b.Naive.Done == 0 {
		t.Errorf("budget = %+v", b)
	}
	if len(rep.Latency) != 2 {
		t.Errorf("%d latency runs, want 2", len(rep.Latency))
	}
	for _, l := range rep.Latency {
		if l.Validated != int64(c.LatencyN) || l.Samples == 0 || l.StorageReads < l.Validated {
			t.Errorf("latency %s = %+v", l.Name, l)
		}
	}
	if e := rep.Enqueue; e == nil || e.Enqueued != c.EnqueueN || e.Rate <= 0 || !e.Memory.Available {
		t.Errorf("enqueue = %+v", e)
	}
	if g := rep.Tenants; g == nil || g.Validated != int64(c.TenantsN) || len(g.PerTenant) != c.Tenants || g.Bound <= 0 || g.Makespan <= 0 || g.StorageReads < 1 {
		t.Errorf("tenants = %+v", g)
	}
	if p := rep.Process; p == nil || !p.Measured || p.Challenges == 0 || p.PeakRSS == 0 || p.CPUSeconds <= 0 || p.CPUPer1000 <= 0 {
		t.Errorf("worker process = %+v", p)
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var back bench.Report
	if err := json.Unmarshal(b, &back); err != nil || len(back.Rows) != len(rep.Rows) || len(back.Rows) == 0 {
		t.Fatalf("JSON report: %v, %d rows", err, len(back.Rows))
	}
	for _, want := range []string{"FLUSHED", "pipeline / floor", "makespan / bound", "speedup over naive", "median / p95",
		"storage requests per validated destination", "peak RSS", "lines/s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// TestBenchEmbedded runs scenario b through the command line on the
// embedded Redis without worker processes: the output flags both.
func TestBenchEmbedded(t *testing.T) {
	if testing.Short() {
		t.Skip("runs part of the bench")
	}
	t.Parallel()
	var out, errOut bytes.Buffer
	err := bench.Main(context.Background(), bench.Env{Stdout: &out, Stderr: &errOut},
		[]string{"--redis", "", "--quick", "--scenarios", "b", "--budget-n", "6", "--naive-time", "1s", "--dir", t.TempDir()})
	t.Logf("bench output:\n%s", out.String())
	if err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, errOut.String())
	}
	for _, want := range []string{"EMBEDDED", "IN THIS PROCESS", "IN-PROCESS", "makespan / bound", "speedup over naive"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// TestBenchFlags refuses database 0 (the bench flushes its database) and
// unknown scenarios.
func TestBenchFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--redis-db", "0"},
		{"--redis", "redis://127.0.0.1:6379/0", "--redis-db", "-1"},
		{"--scenarios", "a,z"},
		{"--n", "-5"},
		{"--window", "-1s"},
	} {
		var out, errOut bytes.Buffer
		if err := bench.Main(context.Background(), bench.Env{Stdout: &out, Stderr: &errOut}, args); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	var errOut bytes.Buffer
	if err := bench.Main(context.Background(), bench.Env{Stderr: &errOut}, []string{"--no-such-flag"}); err == nil ||
		!strings.Contains(err.Error(), "usage") {
		t.Errorf("bad flag: %v", err)
	}
}

// TestBenchRefusesForeignDatabase: the bench flushes its database, so it
// refuses one that holds keys it did not write, says which, and leaves
// them alone; --flush overrides (not run here: it would run the bench).
func TestBenchRefusesForeignDatabase(t *testing.T) {
	t.Parallel()
	rdb, opt := testutil.Redis(t)
	ctx := context.Background()
	if err := rdb.Set(ctx, "customer:data", "precious", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	_, err := bench.Run(ctx, bench.Env{Stdout: &out, Stderr: &errOut, Worker: childWorker}, bench.Config{
		RedisURL: testutil.RedisURL(), RedisDB: opt.DB, NoLease: true, Quick: true, Scenarios: []string{"e"},
	})
	if err == nil || !strings.Contains(err.Error(), "--flush") || !strings.Contains(err.Error(), fmt.Sprintf("database %d", opt.DB)) {
		t.Fatalf("bench on a database with foreign keys = %v, want a refusal naming the database and --flush", err)
	}
	if v, _ := rdb.Get(ctx, "customer:data").Result(); v != "precious" {
		t.Fatalf("the foreign key is %q after the refusal", v)
	}
}

// TestBenchOverheadWithoutBinary: with no binary to start, scenario a runs
// the simulator, its S3 server and the enqueue in this process, and still
// reads the challenge files from S3 through the AWS SDK.
func TestBenchOverheadWithoutBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("runs scenario a at small N")
	}
	t.Parallel()
	_, opt := testutil.Redis(t)
	var out, errOut bytes.Buffer
	rep, err := bench.Run(context.Background(), bench.Env{Stdout: &out, Stderr: &errOut}, bench.Config{
		RedisURL: testutil.RedisURL(), RedisDB: opt.DB, NoLease: true, Quick: true, Scenarios: []string{"a"}, NoAlternatives: true,
	})
	if err != nil {
		t.Fatalf("bench: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	c := bench.Config{Quick: true}.WithDefaults()
	o := rep.Overhead
	if o == nil || o.SimulatorProcess || o.Validated != int64(c.N) || len(o.Pipeline.Rates) != c.Repeat {
		t.Fatalf("overhead = %+v", o)
	}
	if got := o.StorageReadsByType; got["s3"] < o.Validated || len(got) != 1 {
		t.Errorf("storage reads by type = %v, want s3 only, at least one per destination (%d)", got, o.Validated)
	}
}
