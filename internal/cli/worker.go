package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"

	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// workerFlags are the settings of a worker process.
type workerFlags struct {
	common
	apiURL       string
	metricsAddr  string
	concurrency  int
	apiRate      string
	pollDeadline time.Duration
	pollFirst    time.Duration
	pollInterval time.Duration
	// keepChallengeFiles keeps the challenge files once the jobs exist.
	keepChallengeFiles bool
	// healthDeadline and healthInterval watch the jobs --create-job made.
	healthDeadline, healthInterval time.Duration
	retention                      time.Duration
	stateTTL                       time.Duration
	eventsMaxLen                   int64
	shutdown                       time.Duration
	maxRetry                       int
	authPause                      int
	webUI                          bool
	webAddr                        string
	budget                         budgetFlags
	// named are the credentials of --credentials (not a flag of its own:
	// each command loads them with credentialsFlag); nil: none.
	named *credentials.Set
	// challenges is run's journal on its embedded Redis (not a flag);
	// nil: none.
	// ui is the events store that --web-ui reads (not a flag: the
	// producer client's); required with webUI.
	ui         *ledger.Store
	challenges worker.ChallengeLog
	// checkAt, when set, verifies each credential before taking tasks
	// (the worker command; run checked its own in preflight), with
	// accountHint (CLOUDFLARE_ACCOUNT_ID) to check an account-owned token.
	checkAt     bool
	accountHint string
}

func (w *workerFlags) register(fs *flag.FlagSet, env Env) {
	w.common.register(fs, env)
	w.registerTuning(fs, env)
}

// registerTuning registers the worker's flags but --redis and the logging
// ones, for the commands that run a worker on a Redis of their own.
func (w *workerFlags) registerTuning(fs *flag.FlagSet, env Env) {
	fs.StringVar(&w.apiURL, "cloudflare-api-url", envOr(env, "CLOUDFLARE_API_URL", worker.APIURLDefault),
		"Cloudflare API base URL; env CLOUDFLARE_API_URL")
	fs.StringVar(&w.metricsAddr, "metrics-addr", envOr(env, "METRICS_ADDR", "127.0.0.1:9464"),
		"listen address for /metrics, /healthz and /readyz (empty: off); loopback unless you give one (the compose and Kubernetes manifests give :9464 for Prometheus and the probes); env METRICS_ADDR")
	fs.IntVar(&w.concurrency, "concurrency", worker.ConcurrencyDefault, "tasks run at once by this process")
	fs.StringVar(&w.apiRate, "api-rate", envOr(env, "API_RATE", worker.APIRateDefault),
		"Cloudflare API budget shared in Redis by all workers and producers of one --budget-key, as LIMIT/WINDOW (e.g. 1000/5m leaves headroom for the dashboard and Terraform; 0 = off); stored with the budget: a different value is refused unless --api-rate-override; env API_RATE")
	w.budget.register(fs, env)
	fs.DurationVar(&w.pollDeadline, "poll-deadline", worker.PollDeadlineDefault, "give up polling for a challenge file after this long (one fresh challenge, then failed)")
	fs.DurationVar(&w.pollFirst, "poll-first", worker.PollFirstDefault,
		"first look for a challenge file this long after the challenge (0: at once), until a file was seen; until 8 were, the longest delay seen (at most this); then the 75th percentile of their appearance delays")
	fs.DurationVar(&w.pollInterval, "poll-interval", worker.PollIntervalDefault, "delay after the first miss, growing by half each miss (up to 15s)")
	fs.DurationVar(&w.healthDeadline, "health-deadline", worker.HealthDeadlineDefault,
		"with --create-job, watch each enabled job this long for its first push (GET .../logpush/jobs/{id}): flowing, job_failing with Cloudflare's message, or no_data_yet past it (no failure: a zone without traffic pushes nothing); 0: no watching, the destination ends when its job exists")
	fs.DurationVar(&w.healthInterval, "health-interval", worker.HealthIntervalDefault,
		"read a watched job's health this often: one API call per job per interval, inside --api-rate")
	fs.BoolVar(&w.keepChallengeFiles, "keep-challenge-files", false,
		"with --create-job, keep each challenge file once its job exists (default: delete <path>/ownership-challenge.txt as Cloudflare advises, unless another challenge is in flight on the path; a refused delete is a warning naming the permission)")
	fs.DurationVar(&w.retention, "task-retention", 0,
		"keep finished tasks this long (asynq retention of the tasks this worker enqueues, for inspecting them; 0: delete at once)")
	fs.DurationVar(&w.stateTTL, "state-ttl", worker.StateTTLDefault, "keep a finished destination's state (for status, report, retry) this long")
	fs.Int64Var(&w.eventsMaxLen, "events-max-len", worker.EventsMaxLenDefault, "cap the logpush:events stream at about this many entries")
	fs.DurationVar(&w.shutdown, "shutdown-timeout", worker.ShutdownTimeoutDefault, "on SIGTERM, wait this long for running tasks before returning them to the queue")
	fs.IntVar(&w.maxRetry, "max-retry", worker.MaxRetryDefault, "retries of a transient error per task before the destination fails")
	fs.BoolVar(&w.webUI, "web-ui", false, "serve a read-only page of the queue, batches and recent failures (batch ids, file names, buckets, error messages) on /ui of --web-addr")
	fs.StringVar(&w.webAddr, "web-addr", envOr(env, "WEB_ADDR", "127.0.0.1:9465"),
		"listen address of --web-ui, apart from --metrics-addr; keep it on loopback (reach it with kubectl port-forward or an SSH tunnel) or behind an authenticating proxy; env WEB_ADDR")
	fs.IntVar(&w.authPause, "auth-pause-after", worker.AuthPauseAfterDefault, "pause the queue after this many consecutive 401/403 answers fleet-wide (0: never); with --credentials, those of one credential hold its rows alone, and the queue pauses once every credential in use is held; 'resume' continues")
}

func runWorker(ctx context.Context, env Env, args []string) error {
	var f workerFlags
	fs := newFlags("worker", env)
	f.register(fs, env)
	var cf credentialsFlag
	cf.register(fs, env)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := f.shared(); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return &exitError{code: 2, err: err}
	}
	f.budget.parsed(fs, env)
	log, err := f.logger(env)
	if err != nil {
		return err
	}
	// Loaded and checked at start, so that a broken file stops the worker
	// at once. With a file, the environment's credential is optional: the
	// default of the rows that name none (which fail without it).
	set, err := cf.load(env, log)
	if err != nil {
		return err
	}
	creds, err := f.useCredentials(env, set)
	if err != nil {
		return err
	}
	if set.File != "" {
		log.Info("credentials file loaded", "credentials", set)
	}
	storage, err := storageFromEnv(env)
	if err != nil {
		return err
	}
	rdb, closeRedis, err := connectRedis(ctx, f.redisURL)
	if err != nil {
		return err
	}
	defer closeRedis()
	if w := persistenceWarning(ctx, rdb); w != "" {
		log.Warn(w)
	}
	f.checkAt, f.accountHint = true, env.Getenv("CLOUDFLARE_ACCOUNT_ID")
	// The producer's client, for what this process reads of the batches.
	cl, err := producer.NewClient(rdb, nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	f.ui = cl.Ledger()
	w, err := startWorker(ctx, rdb, f, creds, storage, log)
	if err != nil {
		return err
	}
	log.Info("worker started", "concurrency", f.concurrency, "api_rate", f.apiRate, "metrics_addr", w.metricsAddr)
	go watchRedisRestart(ctx, rdb, cl.Ledger(), 5*time.Second, log)
	<-ctx.Done()
	log.Info("shutting down: draining running tasks", "timeout", f.shutdown)
	w.stop()
	log.Info("worker stopped")
	return nil
}

// runningWorker is a started worker with its metrics server.
type runningWorker struct {
	w           *worker.Worker
	registry    *prometheus.Registry
	httpSrv     *http.Server
	metricsAddr string
	webSrv      *http.Server
	webAddr     string
	stopOnce    sync.Once
}

// stop drains the worker (tasks still running after the shutdown timeout
// go back to the queue) and closes the HTTP servers, once: the commands
// stop it before their report and again on the way out.
func (w *runningWorker) stop() { w.stopOnce.Do(w.shutdown) }

// shutdown is stop's work.
func (w *runningWorker) shutdown() {
	w.w.Shutdown()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range []*http.Server{w.httpSrv, w.webSrv} {
		if s != nil {
			_ = s.Shutdown(sctx)
		}
	}
}

// useCredentials takes set as the named credentials when it came from a
// credentials file, and returns the environment's credential: the default
// of rows that name none, optional with a file, required (bad input
// otherwise) without one.
func (f *workerFlags) useCredentials(env Env, set *credentials.Set) (cloudflare.Credentials, error) {
	creds := cloudflare.CredentialsFromEnv(env.Getenv)
	if set.File != "" {
		f.named = set
	} else if err := creds.Validate(); err != nil {
		return creds, &exitError{code: 2, err: fmt.Errorf("cloudflare credentials: %w (set CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY)", err)}
	}
	return creds, nil
}

// config is the worker.Config of these flags.
func (f workerFlags) config(creds cloudflare.Credentials, storage credentials.Storage, log *slog.Logger) worker.Config {
	pollFirst := f.pollFirst
	if pollFirst == 0 {
		pollFirst = -1 // at once; HandlerConfig's zero is its default
	}
	authPause := f.authPause
	if authPause == 0 {
		authPause = -1 // never; Config's zero is its default
	}
	return worker.Config{
		Credentials: creds, NamedCredentials: f.named, APIURL: f.apiURL, APIRate: f.apiRate, APIRateClaim: f.budget.rateClaim(), BudgetKey: f.budget.key,
		AuthPauseAfter: authPause, StateTTL: f.stateTTL, EventsMaxLen: f.eventsMaxLen, Storage: storage, Logger: log,
		Handler: worker.HandlerConfig{PollDeadline: f.pollDeadline, PollFirst: pollFirst, PollInterval: f.pollInterval,
			HealthDeadline: f.healthDeadline, HealthInterval: f.healthInterval, KeepChallengeFiles: f.keepChallengeFiles,
			Task: tasks.Options{MaxRetry: f.maxRetry, Retention: f.retention}},
		Server:     worker.ServerConfig{Concurrency: f.concurrency, ShutdownTimeout: f.shutdown},
		Challenges: f.challenges,
		// The worker command, run and demo log an outage once and sweep
		// what it left active.
		WatchOutages: true,
	}
}

// startWorker builds the worker from f with worker.New and starts serving
// the queue, /metrics and, with --web-ui, the web UI.
func startWorker(ctx context.Context, rdb redis.UniversalClient, f workerFlags, creds cloudflare.Credentials, storage credentials.Storage, log *slog.Logger) (*runningWorker, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	routeRedisLog(log, f.redisURL)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg := f.config(creds, storage, log)
	cfg.Registry = reg
	ww, err := worker.New(ctx, rdb, cfg)
	if err != nil {
		return nil, f.budget.explain(err)
	}
	w := &runningWorker{w: ww, registry: reg}
	if f.metricsAddr != "" {
		ln, err := net.Listen("tcp", f.metricsAddr)
		if err != nil {
			return nil, notStarted(fmt.Errorf("-metrics-addr: %w", err))
		}
		w.metricsAddr = ln.Addr().String()
		w.httpSrv = serveHTTP(ln, ww.Handler(), "metrics", log)
	}
	if f.webUI {
		ln, err := net.Listen("tcp", f.webAddr)
		if err != nil {
			w.stop()
			return nil, notStarted(fmt.Errorf("-web-addr: %w", err))
		}
		w.webAddr = ln.Addr().String()
		mux := http.NewServeMux()
		mux.Handle("/ui", uiHandler(f.ui, asynq.NewInspectorFromRedisClient(rdb), pausesOf(rdb)))
		w.webSrv = serveHTTP(ln, mux, "web ui", log)
	}
	if f.checkAt {
		if err := ww.CheckCredentials(ctx, f.accountHint); err != nil {
			w.stop()
			var re *worker.CredentialRefusedError
			if errors.As(err, &re) {
				return nil, &exitError{code: 2, err: fmt.Errorf("%w (this worker's copy: fix it in its environment or credentials file, then start it again)", err)}
			}
			return nil, err
		}
	}
	if err := ww.Start(); err != nil {
		w.stop()
		return nil, err
	}
	return w, nil
}

// check refuses tuning values that cannot work, naming the flag: those
// that worker.Config.Validate refuses, and no concurrency, retries or poll
// time at all (where a flag's 0 would be Config's default).
func (f workerFlags) check() error {
	switch {
	case f.pollFirst < 0:
		return fmt.Errorf("-poll-first %s: must not be negative", f.pollFirst)
	case f.authPause < 0:
		return fmt.Errorf("-auth-pause-after %d: must not be negative (0: never)", f.authPause)
	}
	if err := f.config(cloudflare.Credentials{}, credentials.Storage{}, nil).Validate(); err != nil {
		var ce *worker.ConfigError
		if !errors.As(err, &ce) {
			return err
		}
		flag, ok := configFlags[ce.Field]
		switch {
		case ce.Field == "Credentials", ce.Field == "NamedCredentials": // checked apart, with where they come from
		case !ok:
			return err
		case ce.Err != nil:
			return fmt.Errorf("-%s: %w", flag, ce.Err)
		default:
			return fmt.Errorf("-%s %v: %s", flag, ce.Value, ce.Reason)
		}
	}
	switch {
	case f.concurrency <= 0:
		return fmt.Errorf("-concurrency %d: must be positive", f.concurrency)
	case f.maxRetry <= 0:
		return fmt.Errorf("-max-retry %d: must be positive", f.maxRetry)
	case f.pollDeadline <= 0:
		return fmt.Errorf("-poll-deadline %s: must be positive", f.pollDeadline)
	case f.healthInterval <= 0:
		return fmt.Errorf("-health-interval %s: must be positive", f.healthInterval)
	}
	return nil
}

// configFlags names the flag of each worker.Config field that a flag sets.
var configFlags = map[string]string{
	"Handler.PollInterval": "poll-interval", "Handler.PollDeadline": "poll-deadline", "Handler.Task.Retention": "task-retention",
	"Handler.HealthDeadline": "health-deadline", "Handler.HealthInterval": "health-interval",
	"Handler.Task.MaxRetry": "max-retry", "Server.ShutdownTimeout": "shutdown-timeout", "Server.Concurrency": "concurrency",
	"StateTTL": "state-ttl", "EventsMaxLen": "events-max-len", "BudgetKey": "budget-key", "APIRate": "api-rate",
}

// serveHTTP serves h on ln until the returned server is shut down.
func serveHTTP(ln net.Listener, h http.Handler, what string, log *slog.Logger) *http.Server {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(what+" server stopped", "err", err)
		}
	}()
	return srv
}
