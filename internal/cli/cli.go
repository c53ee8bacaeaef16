package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/producer"
)

// Env is the process environment a command runs in.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Open opens an input FILE for each pass over it; nil: os.Open.
	Open func(name string) (io.ReadCloser, error)
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env Env, args []string) error
}

func commands() []command {
	return []command{
		{"run", "onboard a file of destinations in this one process, with a progress view, a journal to resume from and a report", runRun},
		{"migrate", "move existing Logpush jobs to a new destination_conf (or rotate their SAS or keys), each challenged and validated first", runMigrate},
		{"worker", "run a worker: challenge, poll and validate tasks from Redis", runWorker},
		{"export-terraform", "write import blocks and cloudflare_logpush_job resources (secrets as variables) for the jobs of an account", runExportTerraform},
		{"plan", "write the batch that onboards every zone of an account (GET /zones, templates), leaving out the jobs that exist", runPlan},
		{"jobs", "list every Logpush job of accounts and their zones, failing and idle ones first (--watch: serve their health as Prometheus gauges)", runJobs},
		{"enqueue", "validate a CSV/JSONL file of destinations and enqueue it as a batch", runEnqueue},
		{"preflight", "check the Cloudflare credential and access to every bucket of a file, without enqueueing", runPreflight},
		{"status", "show a batch's counts per state (or list batches)", runStatus},
		{"events", "print result events from the logpush:events stream", runEvents},
		{"report", "write one row per input row of a batch: state, filename, attempts, error (CSV or JSON)", runReport},
		{"retry", "re-enqueue the failed destinations of a batch", runRetry},
		{"submit-token", "submit ownership tokens the worker cannot read itself (Sumo Logic) for validation", runSubmitToken},
		{"resume", "resume the queue after it was paused (repeated authentication failures)", runResume},
		{"simulate", "serve a local Cloudflare API simulator", runSimulate},
		{"demo", "onboard generated destinations end to end on embedded Redis and the simulator", runDemo},
		{"bench", "measure throughput, budget efficiency, latency and cost per destination against the simulator", runBench},
	}
}

// exitStatusHelp is the exit status paragraph of every command's -h that
// has no more specific one, and of README's.
const exitStatusHelp = `Exit status: 0 when every row is done (validated, not_required,
awaiting_token, flowing or no_data_yet) or the command did its work; 1 when
some destinations failed, a job is failing, or the command stopped after it
started (interrupted, Redis lost); 2 when nothing was started: a usage error,
bad input (invalid lines, a directory or an unreadable file) or
configuration (credentials, a malformed or unreachable Redis URL, a busy port).
`

// notStarted marks err, found before the command started any work (bad
// input or configuration), for exit status 2; an error that carries its
// own status keeps it.
func notStarted(err error) error {
	var ee *exitError
	if err == nil || errors.As(err, &ee) || errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &exitError{code: 2, err: err}
}

// errUsage marks an error already explained by the flag package.
var errUsage = errors.New("usage")

// exitError carries a specific exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// Run runs the command line args and returns the process exit code:
// 0 when the command's work is done, 1 when some destinations failed or it
// stopped after it started, 2 when nothing was started (exitStatusHelp).
func Run(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.Stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		var ee *exitError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		case errors.As(err, &ee):
			if ee.err != nil && ee.err.Error() != "" {
				fmt.Fprintf(env.Stderr, "logpush-onboard %s: %v\n", c.name, err) // with what wraps it
			}
			return ee.code
		default:
			fmt.Fprintf(env.Stderr, "logpush-onboard %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(env.Stderr, "logpush-onboard: unknown command %q\n\n", args[0])
	usage(env.Stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: logpush-onboard <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'logpush-onboard <command> -h' for a command's flags.")
}

// newFlags returns a flag set that reports errors to stderr and whose -h
// starts with the command's summary; setUsage gives it a longer text.
func newFlags(name string, env Env) *flag.FlagSet {
	fs := flag.NewFlagSet("logpush-onboard "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	setUsage(fs, commandHead(name))
	return fs
}

// commandHead is the start of a command's -h: its usage line and summary.
func commandHead(name string) string {
	head := "usage: logpush-onboard " + name + " [flags]"
	for _, c := range commands() {
		if c.name == name {
			head += "\n\n" + strings.ToUpper(c.summary[:1]) + c.summary[1:] + "."
		}
	}
	return head
}

// setUsage makes -h print head, the flags and the exit status (that of
// exitStatusHelp unless head has its own "Exit status:" paragraph).
func setUsage(fs *flag.FlagSet, head string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprint(w, strings.TrimRight(head, "\n")+"\n\nflags:\n")
		fs.PrintDefaults()
		if !strings.Contains(head, "Exit status:") {
			fmt.Fprint(w, "\n"+exitStatusHelp)
		}
	}
}

// parse parses args, turning flag errors into errUsage.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

// parseSelection parses the flags of a command whose selection is in flags
// (plan, jobs, export-terraform): an operand is bad input.
func parseSelection(fs *flag.FlagSet, args []string) error {
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("%s takes no operand, got %q (the selection is in flags)", strings.TrimPrefix(fs.Name(), "logpush-onboard "), fs.Arg(0))}
	}
	return nil
}

// common are the flags of the commands on the workers' shared Redis: the
// Redis and the logging.
type common struct {
	redisURL string
	logLevel string
	logJSON  bool
}

// register registers --redis (env REDIS_URL, required: see shared) and the
// logging flags.
func (c *common) register(fs *flag.FlagSet, env Env) {
	c.redisURL = env.Getenv("REDIS_URL")
	fs.Var(redisURLValue{&c.redisURL}, "redis",
		"the Redis the workers share (redis://host:6379/0, rediss://..., redis-sentinel://host:26379,host2:26379/master); required; env REDIS_URL")
	c.registerLog(fs, env)
}

// registerLog registers the logging flags only, for the commands that
// bring their own Redis (demo, run) or need none (simulate).
func (c *common) registerLog(fs *flag.FlagSet, env Env) {
	fs.StringVar(&c.logLevel, "log-level", envOr(env, "LOG_LEVEL", "info"), "log level: debug, info, warn, error; env LOG_LEVEL")
	fs.BoolVar(&c.logJSON, "log-json", env.Getenv("LOG_FORMAT") == "json", "log JSON lines instead of text; env LOG_FORMAT=json")
}

// errNoRedis refuses a command that only makes sense on the workers'
// shared Redis when none is given: an embedded one would lose its work on
// exit, unseen by any worker.
var errNoRedis = &exitError{code: 2, err: errors.New("no Redis given: set --redis or REDIS_URL to the Redis your workers use; " +
	"for a one-process run use `logpush-onboard run FILE`")}

// shared refuses to go on without a shared Redis.
func (c *common) shared() error {
	if strings.TrimSpace(c.redisURL) == "" {
		return errNoRedis
	}
	return nil
}

func (c *common) logger(env Env) (*slog.Logger, error) {
	lvl, err := parseLevel(c.logLevel)
	if err != nil {
		return nil, notStarted(err)
	}
	return slog.New(logHandler(env.Stderr, lvl, c.logJSON)), nil
}

// open opens the shared Redis of c, for the commands that read or change
// a batch.
func (c *common) open(ctx context.Context, env Env) (redis.UniversalClient, func(), error) {
	if err := c.shared(); err != nil {
		return nil, nil, err
	}
	log, err := c.logger(env)
	if err != nil {
		return nil, nil, err
	}
	rdb, closeRedis, err := connectRedis(ctx, c.redisURL)
	if err != nil {
		return nil, nil, err
	}
	routeRedisLog(log, c.redisURL)
	return rdb, closeRedis, nil
}

// connect opens the shared Redis of c and the producer client on it, for
// the commands that read a batch or act on the fleet without enqueueing.
func (c *common) connect(ctx context.Context, env Env) (redis.UniversalClient, *producer.Client, func(), error) {
	rdb, closeRedis, err := c.open(ctx, env)
	if err != nil {
		return nil, nil, nil, err
	}
	cl, err := producer.NewClient(rdb, nil)
	if err != nil {
		closeRedis()
		return nil, nil, nil, err
	}
	return rdb, cl, func() { cl.Close(); closeRedis() }, nil
}

func envOr(env Env, key, def string) string {
	if v := strings.TrimSpace(env.Getenv(key)); v != "" {
		return v
	}
	return def
}

// noArgs refuses positional arguments to a command that takes none.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q (this command takes flags only; -h lists them)\n", fs.Name(), fs.Arg(0))
		return errUsage
	}
	return nil
}

// operands parses args with flags before and after the operands
// (enqueue one.csv --dry-run) and returns the operands; "--" ends the flags.
func operands(fs *flag.FlagSet, args []string) ([]string, error) {
	var files []string
	for {
		if err := parse(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return files, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(files, rest...), nil
		}
		files = append(files, rest[0])
		args = rest[1:]
	}
}

// parseFile parses args with flags before or after the one FILE operand
// (enqueue one.csv --dry-run); "--" ends the flags.
func parseFile(fs *flag.FlagSet, args []string) (string, error) {
	files, err := operands(fs, args)
	if err != nil {
		return "", err
	}
	if len(files) != 1 {
		if len(files) == 0 {
			fmt.Fprintf(fs.Output(), "%s: FILE missing (a CSV or JSONL file of destinations, or - for standard input)\n", fs.Name())
		} else {
			fmt.Fprintf(fs.Output(), "%s: one FILE only, got %d: %s\n", fs.Name(), len(files), strings.Join(files, " "))
		}
		fs.Usage()
		return "", errUsage
	}
	return files[0], nil
}

// setDefault changes the default of a registered flag, as -h shows it.
func setDefault(fs *flag.FlagSet, name, value string) {
	f := fs.Lookup(name)
	if err := f.Value.Set(value); err != nil {
		panic(fmt.Sprintf("default of -%s: %v", name, err))
	}
	f.DefValue = value
}
