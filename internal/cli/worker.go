package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/internal/budget"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"

	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/location"
	"github.com/logpush-onboard/logpush-onboard/metrics"
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
	retention    time.Duration
	stateTTL     time.Duration
	eventsMaxLen int64
	shutdown     time.Duration
	maxRetry     int
	authPause    int
	webUI        bool
	webAddr      string
	budget       budgetFlags
}

func (w *workerFlags) register(fs *flag.FlagSet, env Env) {
	w.common.register(fs, env)
	w.registerTuning(fs, env)
}

// registerTuning registers the worker's flags but --redis and the logging
// ones, for the commands that run a worker on a Redis of their own.
func (w *workerFlags) registerTuning(fs *flag.FlagSet, env Env) {
	fs.StringVar(&w.apiURL, "cloudflare-api-url", envOr(env, "CLOUDFLARE_API_URL", "https://api.cloudflare.com/client/v4"),
		"Cloudflare API base URL; env CLOUDFLARE_API_URL")
	fs.StringVar(&w.metricsAddr, "metrics-addr", envOr(env, "METRICS_ADDR", ":9464"),
		"listen address for /metrics and /healthz (empty: off); env METRICS_ADDR")
	fs.IntVar(&w.concurrency, "concurrency", 20, "tasks run at once by this process")
	fs.StringVar(&w.apiRate, "api-rate", envOr(env, "API_RATE", "1200/5m"),
		"Cloudflare API budget shared in Redis by all workers and producers of one --budget-key, as LIMIT/WINDOW (e.g. 1000/5m leaves headroom for the dashboard and Terraform; 0 = off); stored with the budget: a different value is refused unless --api-rate-override; env API_RATE")
	w.budget.register(fs, env)
	fs.DurationVar(&w.pollDeadline, "poll-deadline", 15*time.Minute, "give up polling for a challenge file after this long (one fresh challenge, then failed)")
	fs.DurationVar(&w.pollFirst, "poll-first", 4*time.Second,
		"first look for a challenge file this long after the challenge (0: at once), until 8 files were seen; then the 75th percentile of their appearance delays")
	fs.DurationVar(&w.pollInterval, "poll-interval", time.Second, "delay after the first miss, growing by half each miss (up to 15s)")
	fs.DurationVar(&w.retention, "task-retention", 0,
		"keep finished tasks this long (asynq retention of the tasks this worker enqueues, for inspecting them; 0: delete at once)")
	fs.DurationVar(&w.stateTTL, "state-ttl", 7*24*time.Hour, "keep a finished destination's state (for status, report, retry) this long")
	fs.Int64Var(&w.eventsMaxLen, "events-max-len", 200000, "cap the logpush:events stream at about this many entries")
	fs.DurationVar(&w.shutdown, "shutdown-timeout", 20*time.Second, "on SIGTERM, wait this long for running tasks before returning them to the queue")
	fs.IntVar(&w.maxRetry, "max-retry", 12, "retries of a transient error per task before the destination fails")
	fs.BoolVar(&w.webUI, "web-ui", false, "serve a read-only page of the queue, batches and recent failures (batch ids, file names, buckets, error messages) on /ui of --web-addr")
	fs.StringVar(&w.webAddr, "web-addr", envOr(env, "WEB_ADDR", "127.0.0.1:9465"),
		"listen address of --web-ui, apart from --metrics-addr; keep it on loopback (reach it with kubectl port-forward or an SSH tunnel) or behind an authenticating proxy; env WEB_ADDR")
	fs.IntVar(&w.authPause, "auth-pause-after", 10, "pause the queue after this many consecutive 401/403 answers fleet-wide (0: never); 'resume' continues")
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
	creds := cloudflare.CredentialsFromEnv(env.Getenv)
	if err := creds.Validate(); err != nil {
		return fmt.Errorf("cloudflare credentials: %w (set CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY)", err)
	}
	// Loaded and checked at start, so that a broken file stops the worker
	// at once; the tasks' credential names are not acted on yet.
	if set, err := cf.load(env, log); err != nil {
		return err
	} else if set.File != "" {
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
	w, err := startWorker(ctx, rdb, f, creds, storage, log)
	if err != nil {
		return err
	}
	log.Info("worker started", "concurrency", f.concurrency, "api_rate", f.apiRate, "metrics_addr", w.metricsAddr)
	<-ctx.Done()
	log.Info("shutting down: draining running tasks", "timeout", f.shutdown)
	w.stop()
	log.Info("worker stopped")
	return nil
}

// runningWorker is a started worker with its metrics server.
type runningWorker struct {
	srv         *asynq.Server
	client      *asynq.Client
	httpSrv     *http.Server
	metricsAddr string
	webSrv      *http.Server
	webAddr     string
	registry    *prometheus.Registry
	taking      atomic.Bool
}

// stop drains the asynq server (tasks still running after the shutdown
// timeout go back to the queue) and closes the metrics server.
func (w *runningWorker) stop() {
	w.taking.Store(false)
	w.srv.Shutdown()
	w.client.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range []*http.Server{w.httpSrv, w.webSrv} {
		if s != nil {
			_ = s.Shutdown(sctx)
		}
	}
}

// startWorker builds the handlers from f and starts serving the queue.
func startWorker(ctx context.Context, rdb redis.UniversalClient, f workerFlags, creds cloudflare.Credentials, storage storageConfig, log *slog.Logger) (*runningWorker, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg)

	api, err := cloudflare.New(cloudflare.Config{BaseURL: f.apiURL, Credentials: creds, Observe: m.ObserveAPI})
	if err != nil {
		return nil, err
	}
	readers, err := storage.readers(ctx)
	if err != nil {
		return nil, err
	}
	var bud worker.Budget
	bcfg, ok, err := f.budget.shared(ctx, rdb, f.apiRate, creds, log)
	if err != nil {
		return nil, err
	}
	if ok {
		bcfg.MaxWait = 30 * time.Second
		b, err := budget.New(rdb, bcfg)
		if err != nil {
			return nil, err
		}
		bud = b
	}
	// One line per Redis outage, and whether Redis answers, for the
	// handlers; go-redis's own lines at debug.
	watch := &outageWatch{log: log, url: f.redisURL}
	rdb.AddHook(watch)
	routeRedisLog(log, f.redisURL)
	client := asynq.NewClientFromRedisClient(rdb)
	store := ledger.NewStore(rdb, ledger.Config{StateTTL: f.stateTTL, StreamMaxLen: f.eventsMaxLen})
	insp := asynq.NewInspectorFromRedisClient(rdb)
	reg.MustRegister(metrics.NewQueueCollector(insp))
	guard := worker.NewAuthGuard(rdb, worker.AuthFailuresKey, f.authPause, worker.PauseQueue(insp, store))
	leases, err := location.New(rdb, location.Config{})
	if err != nil {
		return nil, err
	}
	pollFirst := f.pollFirst
	if pollFirst == 0 {
		pollFirst = -1 // at once; HandlerConfig's zero is its default
	}
	h := worker.NewHandlers(worker.Deps{
		Leases:    leases,
		Waker:     insp,
		API:       api,
		Reader:    readers,
		Store:     store,
		Auth:      guard,
		Enqueue:   client,
		Budget:    bud,
		Metrics:   m,
		Logger:    log,
		Ping:      func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		RedisDown: watch.down,
	}, worker.HandlerConfig{PollDeadline: f.pollDeadline, PollFirst: pollFirst, PollInterval: f.pollInterval,
		Task: tasks.Options{MaxRetry: f.maxRetry, Retention: f.retention}})
	mux := asynq.NewServeMux()
	h.Register(mux)
	srv := worker.NewServer(rdb, worker.ServerConfig{Concurrency: f.concurrency, ShutdownTimeout: f.shutdown, Logger: log})
	w := &runningWorker{srv: srv, client: client, registry: reg}
	if f.metricsAddr != "" {
		ln, err := net.Listen("tcp", f.metricsAddr)
		if err != nil {
			client.Close()
			return nil, fmt.Errorf("-metrics-addr: %w", err)
		}
		w.metricsAddr = ln.Addr().String()
		w.httpSrv = serveHTTP(ln, w.probes(reg, rdb, insp), "metrics", log)
	}
	if f.webUI {
		ln, err := net.Listen("tcp", f.webAddr)
		if err != nil {
			w.stop()
			return nil, fmt.Errorf("-web-addr: %w", err)
		}
		w.webAddr = ln.Addr().String()
		mux := http.NewServeMux()
		mux.Handle("/ui", uiHandler(store, insp))
		w.webSrv = serveHTTP(ln, mux, "web ui", log)
	}
	if err := srv.Start(mux); err != nil {
		w.stop()
		return nil, fmt.Errorf("start worker: %w", err)
	}
	w.taking.Store(true)
	return w, nil
}

// check refuses tuning values that cannot work, naming the flag: negative
// durations and sizes, and no concurrency, retries or poll time at all.
func (f workerFlags) check() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"poll-first", f.pollFirst}, {"poll-interval", f.pollInterval}, {"task-retention", f.retention}, {"state-ttl", f.stateTTL}} {
		if d.v < 0 {
			return fmt.Errorf("-%s %s: must not be negative", d.name, d.v)
		}
	}
	if f.eventsMaxLen < 0 {
		return fmt.Errorf("-events-max-len %d: must not be negative", f.eventsMaxLen)
	}
	switch {
	case f.concurrency <= 0:
		return fmt.Errorf("-concurrency %d: must be positive", f.concurrency)
	case f.maxRetry <= 0:
		return fmt.Errorf("-max-retry %d: must be positive", f.maxRetry)
	case f.pollDeadline <= 0:
		return fmt.Errorf("-poll-deadline %s: must be positive", f.pollDeadline)
	}
	return nil
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

// queuePaused reports whether the logpush queue is paused. A queue that
// does not exist yet (nothing was ever enqueued on this Redis) is not:
// asynq answers GetQueueInfo for it with an error that is not
// ErrQueueNotFound, so look it up in the list of queues first.
func queuePaused(insp *asynq.Inspector) (bool, error) {
	qs, err := insp.Queues()
	if err != nil {
		return false, err
	}
	if !slices.Contains(qs, tasks.Queue) {
		return false, nil
	}
	info, err := insp.GetQueueInfo(tasks.Queue)
	if err != nil {
		return false, err
	}
	return info.Paused, nil
}

// probes serves /metrics, /healthz (Redis reachable) and /readyz (this
// worker is taking tasks: started, not shutting down, queue not paused).
func (w *runningWorker) probes(reg *prometheus.Registry, rdb redis.UniversalClient, insp *asynq.Inspector) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(rw http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := rdb.Ping(ctx).Err(); err != nil {
			http.Error(rw, "redis unreachable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(rw, "ok")
	})
	mux.HandleFunc("/readyz", func(rw http.ResponseWriter, r *http.Request) {
		if !w.taking.Load() {
			http.Error(rw, "not taking tasks: starting or shutting down", http.StatusServiceUnavailable)
			return
		}
		paused, err := queuePaused(insp)
		switch {
		case err != nil:
			http.Error(rw, "redis unreachable", http.StatusServiceUnavailable)
			return
		case paused:
			http.Error(rw, "queue "+tasks.Queue+" is paused (see the queue_paused event; 'logpush-onboard resume' continues)", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(rw, "ready")
	})
	return mux
}
