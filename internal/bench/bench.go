package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/budget"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// ErrUsage is returned (wrapped) for bad flags; the flag package has already
// said why.
var ErrUsage = errors.New("usage")

// Env is what the bench needs from its process.
type Env struct {
	Stdout, Stderr io.Writer
	// Getenv reads the environment; default os.Getenv.
	Getenv func(string) string
	// Worker returns the command that runs a worker child process with args
	// ("worker", "--redis", ...): the logpush-onboard binary itself. nil:
	// scenario b runs its workers in this process and the CPU and RSS of d
	// are not measured; the output says so.
	Worker func(args []string) *exec.Cmd
	// Usage, when set, sets the flag set's -h (the CLI's usage text);
	// nil: the flag package's.
	Usage func(*flag.FlagSet)
}

// Config sets what the bench runs. Zero fields get their defaults (see
// WithDefaults); Quick selects small defaults for CI.
type Config struct {
	// RedisURL is the Redis to measure on; "" starts an embedded Redis
	// (miniredis: server-side counters are then not available).
	RedisURL string
	// RedisDB overrides the URL's database when >= 0. The bench flushes it.
	RedisDB int
	// Flush lets the bench empty a database that holds keys it did not
	// write (without it such a database is refused).
	Flush bool
	// NoLease skips taking the test suite's lease on the database
	// (logpush-test:dblease:<db> in database 0): for callers that hold it.
	NoLease bool
	// Scenarios to run: any of a, b, c, d, e. Default all.
	Scenarios []string
	// JSONPath, when set, receives the report as JSON.
	JSONPath string
	// Quick runs every scenario at a small N, to prove it works.
	Quick bool
	// Dir is the working directory for CSVs and file:// destinations;
	// default a temporary one, removed after.
	Dir string
	// ProfileDir, when set, receives CPU profiles of the in-process phases
	// (a-pipeline, a-floor-N, e-enqueue) and a heap profile.
	ProfileDir string
	// NoAlternatives skips the rows that measure settings other than the
	// worker command's defaults (a, c, e).
	NoAlternatives bool
	// Verbose logs worker warnings to Stderr.
	Verbose bool

	// N is scenario a's number of destinations. Default 5000 (quick 200).
	N int
	// Repeat is how many times a runs the floor, the pipeline and each
	// alternative, in turn; it reports medians. Default 3 (quick 1).
	Repeat int
	// Concurrency is the worker concurrency, as the worker command's
	// --concurrency. Default 20.
	Concurrency int
	// LatencyN is scenario c's number of destinations. Default 300 (quick 40).
	LatencyN int
	// SharedN is scenario f's number of destinations, on SharedPaths
	// shared paths. Default 90 on 3 (quick 12 on 3).
	SharedN, SharedPaths int
	// BudgetN is scenario b's number of destinations. Default 600 (quick 24).
	BudgetN int
	// Workers is the number of worker processes of b and g. Default 3.
	Workers int
	// TenantsN is scenario g's number of destinations, of Tenants tenants.
	// Default 2000 of 20 (quick 60 of 4).
	TenantsN, Tenants int
	// TenantsPollFirst is g's workers' --poll-first; zero: the worker's
	// default.
	TenantsPollFirst time.Duration
	// RateLimit is the simulator's enforced limit in b, and the workers'
	// --api-rate. Default 120/10s (quick 40/4s).
	RateLimit budget.Rate
	// Penalty is how long the simulator answers 429 to everything once the
	// limit is exceeded. Default: the rate's window (Cloudflare: 5m for 5m).
	Penalty time.Duration
	// WriteDelay and WriteJitter: the challenge file appears after
	// WriteDelay plus a random [0, WriteJitter), in b and c. Default 1s and
	// 4s: 1-5s (quick 200ms and 800ms).
	WriteDelay, WriteJitter time.Duration
	// NaiveTime caps the naive baseline's run; its makespan for BudgetN is
	// extrapolated from the destinations it did. Default 60s (quick 4s).
	NaiveTime time.Duration
	// EnqueueN is scenario e's CSV rows. Default 100000 (quick 2000).
	EnqueueN int
	// Window is how long d's worker process runs on e's queue to measure
	// CPU and RSS. Default 20s (quick 2s).
	Window time.Duration
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	q := func(full, quick int) int {
		if c.Quick {
			return quick
		}
		return full
	}
	qd := func(full, quick time.Duration) time.Duration {
		if c.Quick {
			return quick
		}
		return full
	}
	if len(c.Scenarios) == 0 {
		c.Scenarios = []string{"a", "b", "c", "d", "e", "f", "g"}
	}
	setInt := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	setDur := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	setInt(&c.N, q(5000, 200))
	setInt(&c.Repeat, q(3, 1))
	setInt(&c.Concurrency, 20)
	setInt(&c.LatencyN, q(300, 40))
	setInt(&c.SharedN, q(90, 12))
	setInt(&c.SharedPaths, 3)
	setInt(&c.BudgetN, q(600, 24))
	setInt(&c.Workers, 3)
	setInt(&c.TenantsN, q(2000, 60))
	setInt(&c.Tenants, q(20, 4))
	if c.RateLimit == (budget.Rate{}) {
		c.RateLimit = budget.Rate{Limit: q(120, 40), Window: qd(10*time.Second, 4*time.Second)}
	}
	setDur(&c.Penalty, c.RateLimit.Window)
	setDur(&c.WriteDelay, qd(time.Second, 200*time.Millisecond))
	setDur(&c.WriteJitter, qd(4*time.Second, 800*time.Millisecond))
	setDur(&c.NaiveTime, qd(time.Minute, 2*time.Second))
	setInt(&c.EnqueueN, q(100000, 2000))
	setDur(&c.Window, qd(20*time.Second, 2*time.Second))
	return c
}

func (c Config) validate() error {
	for _, s := range c.Scenarios {
		if !slices.Contains([]string{"a", "b", "c", "d", "e", "f", "g"}, s) {
			return fmt.Errorf("unknown scenario %q: want a comma-separated subset of a,b,c,d,e,f,g", s)
		}
	}
	if c.RedisURL != "" && c.RedisDB == 0 {
		return errors.New("the bench flushes its Redis database: use a dedicated one, not 0 (--redis-db)")
	}
	return nil
}

func (c Config) has(s string) bool { return slices.Contains(c.Scenarios, s) }

// DefaultRedisURL is the Redis the bench uses without --redis.
const DefaultRedisURL = "redis://127.0.0.1:6379"

// DefaultRedisDB is the database the bench uses (and flushes) by default.
const DefaultRedisDB = 14

// Main parses the bench's command line and runs it.
func Main(ctx context.Context, env Env, args []string) error {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	var c Config
	fs := flag.NewFlagSet("logpush-onboard bench", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	if env.Usage != nil {
		env.Usage(fs)
	}
	fs.StringVar(&c.RedisURL, "redis", cmp.Or(env.Getenv("BENCH_REDIS_URL"), DefaultRedisURL),
		`Redis to measure on; env BENCH_REDIS_URL; "" starts an embedded Redis (flagged in the output: no server-side counters)`)
	fs.IntVar(&c.RedisDB, "redis-db", DefaultRedisDB, "database to use; the bench FLUSHES it first and between scenarios (-1: the URL's); one that holds keys the bench did not write is refused unless --flush")
	fs.BoolVar(&c.Flush, "flush", false, "flush the --redis-db database even if it holds keys the bench did not write")
	scen := fs.String("scenarios", "a,b,c,d,e,f,g", "scenarios to run: a overhead, b budget efficiency (+ naive baseline), c latency, d cost per destination, e enqueue, f shared paths, g many tenants")
	fs.StringVar(&c.JSONPath, "json", "", "also write the report as JSON to this file")
	fs.BoolVar(&c.Quick, "quick", false, "small N everywhere, to prove the bench works (CI)")
	fs.StringVar(&c.Dir, "dir", "", "working directory for CSVs and file:// destinations (default: a temporary one, removed after)")
	fs.StringVar(&c.ProfileDir, "profile", "", "write CPU profiles of the in-process phases (a-pipeline, a-floor-N, e-enqueue) and a heap profile into this directory")
	noAlt := fs.Bool("no-alternatives", false, "skip the rows that measure alternative worker settings")
	fs.BoolVar(&c.Verbose, "v", false, "log worker warnings to stderr")
	fs.IntVar(&c.N, "n", 0, "a: destinations (default 5000; quick 200)")
	fs.IntVar(&c.Repeat, "repeat", 0, "a: runs of the floor, the pipeline and each alternative, in turn; medians are reported (default 3; quick 1)")
	fs.IntVar(&c.Concurrency, "concurrency", worker.ConcurrencyDefault, "worker concurrency, as the worker command's --concurrency")
	fs.IntVar(&c.LatencyN, "latency-n", 0, "c: destinations (default 300; quick 40)")
	fs.IntVar(&c.SharedN, "shared-n", 0, "f: destinations (default 90; quick 12)")
	fs.IntVar(&c.SharedPaths, "shared-paths", 0, "f: shared paths they spread over (default 3)")
	fs.IntVar(&c.BudgetN, "budget-n", 0, "b: destinations (default 600; quick 24)")
	fs.IntVar(&c.Workers, "workers", 3, "b, g: worker processes")
	fs.IntVar(&c.TenantsN, "tenants-n", 0, "g: destinations (default 2000; quick 60)")
	fs.IntVar(&c.Tenants, "tenants", 0, "g: tenants, each with its own token and --rate-limit (default 20; quick 4)")
	fs.DurationVar(&c.TenantsPollFirst, "tenants-poll-first", 0, "g: the workers' --poll-first (default: the worker's)")
	rate := fs.String("rate-limit", "", "b: the simulator's enforced limit and the workers' --api-rate, LIMIT/WINDOW (default 120/10s; quick 40/4s)")
	fs.DurationVar(&c.Penalty, "penalty", 0, "b: once the limit is exceeded, every call gets 429 for this long (default: the rate's window)")
	fs.DurationVar(&c.WriteDelay, "write-delay", 0, "b, c: the challenge file appears after this (default 1s; quick 200ms) ...")
	fs.DurationVar(&c.WriteJitter, "write-jitter", 0, "b, c: ... plus a random delay up to this (default 4s; quick 800ms)")
	fs.DurationVar(&c.NaiveTime, "naive-time", 0, "b: cap on the naive baseline's run; its makespan is extrapolated (default 1m; quick 2s)")
	fs.IntVar(&c.EnqueueN, "enqueue-n", 0, "e: CSV rows (default 100000; quick 2000)")
	fs.DurationVar(&c.Window, "window", 0, "d: how long the worker process runs on e's queue to measure CPU and RSS (default 20s; quick 2s)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "logpush-onboard bench: unexpected argument %q\n", fs.Arg(0))
		return ErrUsage
	}
	c.NoAlternatives = *noAlt
	for _, s := range strings.Split(*scen, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.Scenarios = append(c.Scenarios, s)
		}
	}
	if *rate != "" {
		r, err := budget.ParseRate(*rate)
		if err != nil {
			return fmt.Errorf("-rate-limit: %w", err)
		}
		c.RateLimit = r
	}
	if c.RedisURL == "" {
		c.RedisDB = -1
	}
	_, err := Run(ctx, env, c)
	return err
}

// Run runs the scenarios of c, prints the table to env.Stdout and returns
// the report.
func Run(ctx context.Context, env Env, c Config) (*Report, error) {
	// Zero means the default; a negative size is a mistake, not a default.
	for _, f := range []struct {
		name string
		v    int64
	}{{"n", int64(c.N)}, {"repeat", int64(c.Repeat)}, {"concurrency", int64(c.Concurrency)},
		{"latency-n", int64(c.LatencyN)}, {"shared-n", int64(c.SharedN)}, {"shared-paths", int64(c.SharedPaths)}, {"budget-n", int64(c.BudgetN)}, {"workers", int64(c.Workers)},
		{"tenants-n", int64(c.TenantsN)}, {"tenants", int64(c.Tenants)},
		{"enqueue-n", int64(c.EnqueueN)}, {"penalty", int64(c.Penalty)}, {"naive-time", int64(c.NaiveTime)},
		{"window", int64(c.Window)}, {"tenants-poll-first", int64(c.TenantsPollFirst)}} {
		if f.v < 0 {
			return nil, fmt.Errorf("-%s: must not be negative (0: the default)", f.name)
		}
	}
	c = c.WithDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	r := &runner{cfg: c, env: env, rep: &Report{Started: time.Now().UTC(), Quick: c.Quick, Scenarios: c.Scenarios}}
	r.log = slog.New(slog.DiscardHandler)
	if c.Verbose {
		r.log = slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	dir := c.Dir
	if dir == "" {
		d, err := os.MkdirTemp(tmpfs(), "logpush-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	r.dir = abs
	r.rep.Dir = abs
	if c.ProfileDir != "" {
		if err := os.MkdirAll(c.ProfileDir, 0o755); err != nil {
			return nil, err
		}
	}
	if err := r.connect(ctx); err != nil {
		return nil, err
	}
	defer r.close()
	r.rep.Machine = machine()
	r.rep.Redis = r.redisInfo(ctx)
	r.header()

	// Order: each scenario flushes the database first; d's CPU and RSS run
	// right after e, on e's queue of EnqueueN destinations.
	steps := []struct {
		name string
		on   bool
		fn   func(context.Context) error
	}{
		{"a", c.has("a") || c.has("d"), r.overhead},
		{"c", c.has("c") || c.has("d"), r.latency},
		{"b", c.has("b"), r.budgetRun},
		{"f", c.has("f"), r.sharedRun},
		{"g", c.has("g"), r.tenantsRun},
		{"e", c.has("e") || c.has("d"), r.enqueue},
		{"d", c.has("d"), r.workerProcess},
	}
	for _, s := range steps {
		if !s.on {
			continue
		}
		if err := ctx.Err(); err != nil {
			return r.rep, err
		}
		fmt.Fprintf(env.Stderr, "bench: running %s ...\n", s.name)
		t := time.Now()
		if err := s.fn(ctx); err != nil {
			return r.rep, fmt.Errorf("scenario %s: %w", s.name, err)
		}
		fmt.Fprintf(env.Stderr, "bench: %s took %s\n", s.name, time.Since(t).Round(100*time.Millisecond))
	}
	if c.ProfileDir != "" {
		if f, err := os.Create(filepath.Join(c.ProfileDir, "heap.pprof")); err == nil {
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	r.rep.Finished = time.Now().UTC()
	r.rep.LoadAfter = loadavg()
	r.rep.Rows = r.rows()
	printTable(env.Stdout, r.rep)
	if c.JSONPath != "" {
		b, err := json.MarshalIndent(r.rep, "", "  ")
		if err != nil {
			return r.rep, err
		}
		if err := os.WriteFile(c.JSONPath, append(b, '\n'), 0o644); err != nil {
			return r.rep, err
		}
		fmt.Fprintf(env.Stdout, "\nJSON report: %s\n", c.JSONPath)
	}
	return r.rep, nil
}

// tmpfs is /dev/shm when it is a writable directory, so that the
// simulator's bucket (file:// destinations) costs little; otherwise the
// default temporary directory.
func tmpfs() string {
	const shm = "/dev/shm"
	if fi, err := os.Stat(shm); err == nil && fi.IsDir() {
		if f, err := os.CreateTemp(shm, ".logpush-bench-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return shm
		}
	}
	return ""
}

// profile runs fn with a CPU profile written to name in ProfileDir, when
// set.
func (r *runner) profile(name string, fn func() error) error {
	if r.cfg.ProfileDir == "" {
		return fn()
	}
	f, err := os.Create(filepath.Join(r.cfg.ProfileDir, name+".cpu.pprof"))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	defer pprof.StopCPUProfile()
	return fn()
}
