package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/internal/budget"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/keys"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/location"
	"github.com/logpush-onboard/logpush-onboard/internal/redact"
	"github.com/logpush-onboard/logpush-onboard/internal/warm"
	"github.com/logpush-onboard/logpush-onboard/metrics"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// Defaults of Config, which the worker command's flags show.
const (
	// APIURLDefault is Cloudflare's API.
	APIURLDefault = "https://api.cloudflare.com/client/v4"
	// APIRateDefault is Cloudflare's documented limit per user: 1200
	// requests per 5 minutes, over all of the user's API clients.
	APIRateDefault = "1200/5m"
	// ConcurrencyDefault is the number of tasks a worker runs at once.
	ConcurrencyDefault = 20
	// ShutdownTimeoutDefault bounds the drain on Shutdown.
	ShutdownTimeoutDefault = 20 * time.Second
	// DelayedTaskCheckIntervalDefault is how often snoozed tasks are moved
	// back to pending.
	DelayedTaskCheckIntervalDefault = 200 * time.Millisecond
	// TaskCheckIntervalDefault is how long an idle processor sleeps.
	TaskCheckIntervalDefault = 100 * time.Millisecond
	// PollFirstDefault is the delay from a challenge to the first look
	// for its file, until the worker has seen 8 files appear.
	PollFirstDefault = 4 * time.Second
	// PollIntervalDefault is the delay after the first miss.
	PollIntervalDefault = time.Second
	// PollMaxIntervalDefault caps the delay between polls.
	PollMaxIntervalDefault = 15 * time.Second
	// PollContendedDefault caps the delay after a miss on a path others
	// wait for.
	PollContendedDefault = 50 * time.Millisecond
	// PollInlineDefault is how long a contended challenge task polls for
	// its file itself.
	PollInlineDefault = 10 * time.Second
	// ClockSkewDefault is subtracted from a challenge's request time.
	ClockSkewDefault = time.Second
	// MaxRechallengesDefault bounds the fresh challenges of a destination.
	MaxRechallengesDefault = 2
	// PollDeadlineDefault ends polling for one challenge.
	PollDeadlineDefault = 15 * time.Minute
	// HealthDeadlineDefault is how long the worker command watches a new
	// job for its first push (HandlerConfig.HealthDeadline).
	HealthDeadlineDefault = 10 * time.Minute
	// HealthIntervalDefault is the delay between two reads of a watched
	// job's health.
	HealthIntervalDefault = 30 * time.Second
	// MaxRetryDefault is the retries of a transient error per task.
	MaxRetryDefault = tasks.DefaultMaxRetry
	// StateTTLDefault keeps a finished destination's state.
	StateTTLDefault = ledger.DefaultStateTTL
	// EventsMaxLenDefault caps the logpush:events stream.
	EventsMaxLenDefault = ledger.DefaultStreamMaxLen
	// AuthPauseAfterDefault is the consecutive 401/403 answers, fleet-wide,
	// after which the queue is paused.
	AuthPauseAfterDefault = 10
)

// budgetMaxWait is the longest a task waits for the API budget in its
// handler before it snoozes and frees its slot.
const budgetMaxWait = 30 * time.Second

// RateClaim says how Config.APIRate meets the rate that is already stored in
// Redis with the budget, which every worker and producer of the budget
// shares.
type RateClaim int

const (
	// RateAdopt takes the stored rate, or stores APIRate when there is
	// none: for an APIRate that is a default. The zero value.
	RateAdopt RateClaim = iota
	// RateRequire stores APIRate when there is none and refuses a
	// different stored one (New returns an error naming both): for an
	// APIRate that someone chose.
	RateRequire
	// RateOverride makes APIRate the rate of every process of the budget.
	RateOverride
)

// Config configures a Worker. Every field has a default (the XxxDefault
// constants); New refuses a value that cannot work, naming the field.
type Config struct {
	// Credentials call the Cloudflare API for the rows that name no
	// credential (tasks.Dest.Credential ""). Required, unless
	// NamedCredentials holds a credential: then, when unset, the set's
	// default (credentials.Set.SetDefault) if it has one, and otherwise
	// the rows that name none fail, naming the cause.
	Credentials credentials.Cloudflare
	// NamedCredentials are the credentials rows name in their credential
	// column (a credentials file, credentials.LoadFile): each row's calls
	// go through the client of its credential, with a budget and an auth
	// pause of its own. A credential's budget is its BudgetKey (else its
	// digest) at its APIRate (else Config.APIRate; a file's api_rate is
	// required of the budget, as RateRequire, unless APIRateClaim is
	// RateOverride). Repeated 401/403 answers for one credential hold its
	// rows alone (a credential_paused event; 'resume' releases them), and
	// pause the queue once every credential used lately is paused. A row
	// naming a credential the set lacks fails, naming it. nil: every row
	// uses Credentials, and 401/403 answers pause the queue.
	NamedCredentials *credentials.Set
	// APIURL is the API's base URL. Default APIURLDefault.
	APIURL string
	// APIRate is the API budget, LIMIT/WINDOW (e.g. "1000/5m" leaves
	// headroom for the dashboard and Terraform), shared in Redis by every
	// worker and producer of BudgetKey; "0": no budget. Default
	// APIRateDefault.
	APIRate string
	// APIRateClaim says how APIRate meets the rate stored with the budget.
	// Default RateAdopt.
	APIRateClaim RateClaim
	// BudgetKey names the shared budget of Credentials: give every
	// credential of one Cloudflare user the same key, since the limit
	// counts all of them. Default: one budget per credential (a digest of
	// it). Named credentials take their own budget_key instead.
	BudgetKey string
	// AuthPauseAfter pauses the queue after this many consecutive 401/403
	// answers fleet-wide. Default AuthPauseAfterDefault; -1: never.
	AuthPauseAfter int
	// StateTTL keeps a finished destination's state (for status, report
	// and retry). Default StateTTLDefault.
	StateTTL time.Duration
	// EventsMaxLen caps the logpush:events stream at about this many
	// entries. Default EventsMaxLenDefault.
	EventsMaxLen int64
	// Handler tunes the handlers: poll timing, deadline, retries and the
	// options of the tasks they enqueue. Zero fields take their defaults.
	Handler HandlerConfig
	// Server tunes the asynq server: concurrency, shutdown timeout and
	// dequeue intervals. Zero fields take their defaults; its Logger is
	// Logger.
	Server ServerConfig
	// Storage says how challenge files are read. The zero value reads S3
	// with the AWS default credential chain, GCS with Application Default
	// Credentials, Azure with each destination's SAS, and local files.
	Storage credentials.Storage
	// Logger receives the worker's log lines. Default: discard.
	Logger *slog.Logger
	// Registry receives the worker's metrics. Default: a registry of its
	// own with the Go and process collectors. Handler serves it.
	Registry *prometheus.Registry
	// Challenges, when set, records each challenge before it is made and
	// has an earlier run's records, so that a challenge in flight when a
	// run was killed is taken up rather than asked again (see
	// ChallengeLog). Only for a worker alone on its Redis with the log:
	// run's journal on its embedded Redis. Default nil: none.
	Challenges ChallengeLog
	// WatchOutages adds a hook to the Redis client given to New that logs
	// one line when Redis stops answering and one when it is back, holds a
	// task that ends during an outage until Redis answers (so that asynq
	// can write its outcome), and sweeps, once Redis is back, the tasks the
	// outage left active. Default false: New adds nothing to the client,
	// and only a task whose own error says Redis is unreachable waits.
	WatchOutages bool
	// Now is the worker's clock: every time its handlers, auth pauses,
	// credential checks and outage watch read. Default time.Now.
	Now func() time.Time
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	c.APIURL = cmp.Or(c.APIURL, APIURLDefault)
	c.APIRate = cmp.Or(c.APIRate, APIRateDefault)
	c.AuthPauseAfter = cmp.Or(c.AuthPauseAfter, AuthPauseAfterDefault)
	c.StateTTL = cmp.Or(c.StateTTL, StateTTLDefault)
	c.EventsMaxLen = cmp.Or(c.EventsMaxLen, EventsMaxLenDefault)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Server.Logger = c.Logger
	c.Handler = c.Handler.WithDefaults()
	c.Server = c.Server.WithDefaults()
	return c
}

// ConfigError is a setting of Config that cannot work.
type ConfigError struct {
	// Field is the Config field, as "Handler.PollFirst".
	Field string
	// Value is its value, "" for a secret.
	Value any
	// Reason says what would work.
	Reason string
	// Err is the cause, when there is one.
	Err error
}

func (e *ConfigError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Field, e.Err)
	}
	return fmt.Sprintf("%s %v: %s", e.Field, e.Value, e.Reason)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// Validate reports the first setting that cannot work as a *ConfigError:
// negative durations and sizes, a bad rate, budget key or claim, storage
// settings that do not go together, and, last, missing or malformed
// credentials. New calls it.
func (c Config) Validate() error {
	bad := func(field string, v any, reason string) error {
		return &ConfigError{Field: field, Value: v, Reason: reason}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"Handler.PollInterval", c.Handler.PollInterval}, {"Handler.PollDeadline", c.Handler.PollDeadline},
		{"Handler.PollMaxInterval", c.Handler.PollMaxInterval}, {"Handler.PollContended", c.Handler.PollContended},
		{"Handler.ClockSkew", c.Handler.ClockSkew}, {"Handler.Task.Retention", c.Handler.Task.Retention},
		{"Handler.Task.Timeout", c.Handler.Task.Timeout}, {"Handler.HealthDeadline", c.Handler.HealthDeadline},
		{"Handler.HealthInterval", c.Handler.HealthInterval},
		{"Server.ShutdownTimeout", c.Server.ShutdownTimeout}, {"Server.DelayedTaskCheckInterval", c.Server.DelayedTaskCheckInterval},
		{"Server.TaskCheckInterval", c.Server.TaskCheckInterval}, {"StateTTL", c.StateTTL},
	} {
		if d.v < 0 {
			return bad(d.name, d.v, "must not be negative")
		}
	}
	switch {
	case c.Handler.PollFirst < -1:
		return bad("Handler.PollFirst", c.Handler.PollFirst, "must not be negative (-1ns: at once)")
	case c.Handler.MaxRechallenges < 0:
		return bad("Handler.MaxRechallenges", c.Handler.MaxRechallenges, "must not be negative")
	case c.Handler.Task.MaxRetry < 0:
		return bad("Handler.Task.MaxRetry", c.Handler.Task.MaxRetry, "must not be negative")
	case c.Server.Concurrency < 0:
		return bad("Server.Concurrency", c.Server.Concurrency, "must not be negative")
	case c.EventsMaxLen < 0:
		return bad("EventsMaxLen", c.EventsMaxLen, "must not be negative")
	case c.AuthPauseAfter < -1:
		return bad("AuthPauseAfter", c.AuthPauseAfter, "want a positive count, or -1 for never")
	case c.BudgetKey != "" && budget.CheckKey(c.BudgetKey) != nil:
		return bad("BudgetKey", fmt.Sprintf("%q", c.BudgetKey), budget.CheckKey(c.BudgetKey).Error())
	case c.APIRateClaim < RateAdopt || c.APIRateClaim > RateOverride:
		return bad("APIRateClaim", int(c.APIRateClaim), "want RateAdopt, RateRequire or RateOverride")
	}
	if c.APIRate != "" && c.APIRate != "0" {
		if _, err := budget.ParseRate(c.APIRate); err != nil {
			return &ConfigError{Field: "APIRate", Value: c.APIRate, Err: err}
		}
	}
	if err := c.Storage.Validate(); err != nil {
		return &ConfigError{Field: "Storage", Err: err}
	}
	for _, name := range c.NamedCredentials.Names() {
		n, _ := c.NamedCredentials.Lookup(name)
		if err := n.Credentials.Validate(); err != nil {
			return &ConfigError{Field: "NamedCredentials", Err: fmt.Errorf("credential %s: %w", name, err)}
		}
		if n.APIRate != "" {
			if _, err := budget.ParseRate(n.APIRate); err != nil {
				return &ConfigError{Field: "NamedCredentials", Err: fmt.Errorf("credential %s: api_rate: %w", name, err)}
			}
		}
		if n.BudgetKey != "" {
			if err := budget.CheckKey(n.BudgetKey); err != nil {
				return &ConfigError{Field: "NamedCredentials", Err: fmt.Errorf("credential %s: budget_key: %w", name, err)}
			}
		}
	}
	if c.Credentials == (credentials.Cloudflare{}) && c.NamedCredentials.Len() > 0 {
		return nil // the set's default, or none
	}
	if err := c.Credentials.Validate(); err != nil {
		return &ConfigError{Field: "Credentials", Err: err}
	}
	return nil
}

// Worker runs the onboarding handlers on the logpush queue of one Redis:
// challenge, poll, validate and create-job tasks, with the shared API
// budget, the fleet-wide auth pause and one challenge at a time per
// challenge-file location.
type Worker struct {
	cfg      Config
	rdb      redis.UniversalClient
	srv      *asynq.Server
	mux      *asynq.ServeMux
	h        *handlers
	stacks   *warm.Pool // the goroutines the handlers run on (onWarmStacks)
	client   *asynq.Client
	insp     *asynq.Inspector
	registry *prometheus.Registry
	taking   atomic.Bool
	// sweep requeues what an outage left active without a worker, and
	// archive takes our tasks out of asynq's archive (archive.go); they
	// run from Start to Shutdown (stopSweep).
	sweep     *orphanSweep
	archive   *archiveSweep
	stopSweep context.CancelFunc
	sweeps    sync.WaitGroup // the sweeps' goroutines
	// checks are the worker's views of its credentials; beats stops
	// their refresh.
	checks []*credCheck
	beats  context.CancelFunc
	beatWG sync.WaitGroup
}

// ErrNoRedis is returned by New without a Redis client.
var ErrNoRedis = errors.New("worker: no redis client")

// New builds a worker on rdb from cfg, or returns an error naming the
// setting that cannot work. It talks to Redis once, to settle the API
// rate with the one stored with the budget (see RateClaim; a conflict is a
// *RateConflictError), and adds a hook to rdb only with
// Config.WatchOutages. Start it with Start; rdb stays open after Shutdown.
func New(ctx context.Context, rdb redis.UniversalClient, cfg Config) (*Worker, error) {
	if rdb == nil {
		return nil, ErrNoRedis
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m, err := metrics.New(reg)
	if err != nil {
		return nil, err
	}
	readers, err := destination.NewMux(ctx, destination.OptionsFor(cfg.Storage))
	if err != nil {
		return nil, err
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	store := ledger.NewStore(rdb, ledger.Config{StateTTL: cfg.StateTTL, StreamMaxLen: cfg.EventsMaxLen})
	tb := &tenantBuilder{ctx: ctx, rdb: rdb, cfg: cfg, metrics: m, insp: insp, store: store, budgets: map[string]apiBudget{},
		id: Self() + "#" + strconv.FormatUint(rand.Uint64(), 36)}
	def, named, err := tb.build()
	if err != nil {
		return nil, err
	}
	leases, err := location.New(rdb, location.Config{})
	if err != nil {
		return nil, err
	}
	sweep := newOrphanSweep(rdb, tasks.Queues(), cfg.Logger)
	var redisDown func() bool
	if cfg.WatchOutages {
		watch := &outageWatch{log: cfg.Logger, mask: passwordMask(rdb), onBack: sweep.sweepFrom, now: cfg.Now}
		rdb.AddHook(watch)
		redisDown = watch.down
	}
	client := asynq.NewClientFromRedisClient(rdb)
	reg.MustRegister(metrics.NewQueueCollector(insp))
	d := deps{
		Leases:    leases,
		Waker:     insp,
		Reader:    readers,
		Store:     store,
		Enqueue:   client,
		Named:     named,
		Metrics:   m,
		Logger:    cfg.Logger,
		Ping:      func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		RedisDown: redisDown,
		Now:       cfg.Now,

		Challenges: cfg.Challenges,
	}
	if def != nil {
		d.API, d.Budget, d.Auth, d.DefaultPause, d.DefaultCheck = def.API, def.Budget, def.Auth, def.Pause, def.Check
	}
	h := newHandlers(d, cfg.Handler)
	mux := asynq.NewServeMux()
	h.Register(mux)
	stacks := newStacks(cfg.Server.WithDefaults().Concurrency, cfg.Logger)
	mux.Use(onWarmStacks(stacks))
	return &Worker{cfg: cfg, rdb: rdb, srv: newServer(rdb, cfg.Server), mux: mux, h: h, stacks: stacks, client: client, insp: insp, registry: reg,
		sweep: sweep, archive: newArchiveSweep(rdb, insp, h, tasks.Queues()), checks: tb.checks}, nil
}

// newStacks returns the pool of onWarmStacks, with a goroutine for each
// task run at once. A handler's panic is logged there, with the stack where
// it happened: asynq recovers it again in its own goroutine and logs that
// stack, which no longer shows where.
func newStacks(concurrency int, log *slog.Logger) *warm.Pool {
	p := warm.New(concurrency)
	p.OnPanic = func(v any, stack []byte) {
		log.Error("task handler panicked", "panic", redact.String(fmt.Sprint(v)), "stack", string(stack))
	}
	return p
}

// onWarmStacks runs each task's handler on one of the pool's goroutines
// rather than on the goroutine asynq starts for the task, whose new stack
// the handler's calls (the AWS SDK's deep middleware chain above all) would
// grow by copying, several times per task: 4-9% of the worker's CPU in
// bench a's profiles, 2-4% with the pool (package warm).
func onWarmStacks(stacks *warm.Pool) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) (err error) {
			stacks.Run(func() { err = next.ProcessTask(ctx, t) })
			return err
		})
	}
}

// Start starts taking tasks; it returns at once.
func (w *Worker) Start() error {
	ctx, cancel := context.WithCancel(context.Background())
	for _, c := range w.checks {
		c.beat(ctx) // the fleet knows this worker holds the credential
	}
	if err := w.srv.Start(w.mux); err != nil {
		cancel()
		return fmt.Errorf("start worker: %w", err)
	}
	sweepCtx, stopSweep := context.WithCancel(context.Background())
	w.stopSweep = stopSweep
	w.sweeps.Go(func() { w.sweep.run(sweepCtx) })
	w.sweep.sweepFrom(w.h.now()) // what a killed worker left active
	w.sweeps.Go(func() { w.archive.run(sweepCtx) })
	w.taking.Store(true)
	w.beats = cancel
	w.beatWG.Add(1)
	go func() {
		defer w.beatWG.Done()
		t := time.NewTicker(fleetBeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			for _, c := range w.checks {
				c.beat(ctx)
			}
		}
	}()
	return nil
}

// CheckCredentials verifies each credential the worker holds, before Start:
// a credential Cloudflare refuses is a *CredentialRefusedError naming it.
// An API token that is not a user token is checked at the accounts and
// zones of the rows waiting in the queue and at accountHint (any of them
// may be ""); with none, it stays unchecked (logged) until its first call.
func (w *Worker) CheckCredentials(ctx context.Context, accountHint string) error {
	queued := queuedScopes(w.insp)
	for _, c := range w.checks {
		plain := c.name
		if plain == DefaultCredentialName {
			plain = ""
		}
		sc := queued[plain]
		if accountHint != "" {
			sc.Accounts = append([]string{accountHint}, sc.Accounts...)
		}
		if err := c.startCheck(ctx, sc); err != nil {
			return err
		}
	}
	return nil
}

// Shutdown stops taking tasks and waits up to Server.ShutdownTimeout for
// the running ones; those still running then go back to the queue. It
// returns once every goroutine the worker started has ended.
func (w *Worker) Shutdown() {
	w.taking.Store(false)
	w.srv.Shutdown()
	w.stacks.Close()
	if w.stopSweep != nil {
		w.stopSweep()
		w.sweeps.Wait()
	}
	w.h.stop() // after the drain and the sweeps: a task that ends in the drain, or a swept one, may start a wake-up
	w.client.Close()
	if w.beats != nil {
		w.beats()
		w.beatWG.Wait()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, c := range w.checks {
		c.leave(ctx)
	}
}

// Handler serves /metrics (the worker's Registry), /healthz (Redis answers)
// and /readyz (the worker is taking tasks: started, not shutting down, and
// the queue is not paused).
func (w *Worker) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(w.registry, promhttp.HandlerOpts{Registry: w.registry}))
	mux.HandleFunc("/healthz", func(rw http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := w.rdb.Ping(ctx).Err(); err != nil {
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
		paused, err := QueuePaused(w.insp)
		switch {
		case err != nil:
			http.Error(rw, "redis unreachable", http.StatusServiceUnavailable)
			return
		case paused:
			http.Error(rw, "the logpush queues are paused (see the queue_paused event; 'logpush-onboard resume' continues)", http.StatusServiceUnavailable)
			return
		}
		for _, c := range w.checks {
			if refused, since, why := c.refused(); refused {
				http.Error(rw, fmt.Sprintf("credential %s refused by Cloudflare on this worker (%s) since %s: it takes none of its rows (%s); fix its credential and restart it",
					c.name, c.self, since.UTC().Format(time.RFC3339), why), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(rw, "ready")
	})
	return mux
}

// QueuePaused reports whether any of the logpush queues (tasks.Queues) is
// paused.
func QueuePaused(insp *asynq.Inspector) (bool, error) {
	infos, err := QueueInfos(insp)
	if err != nil {
		return false, err
	}
	for _, info := range infos {
		if info != nil && info.Paused {
			return true, nil
		}
	}
	return false, nil
}

// QueueInfos are the logpush queues' infos, in tasks.Queues order; nil for
// a queue that does not exist yet (nothing was ever enqueued into it on
// this Redis). asynq answers GetQueueInfo for such a queue with an error
// that is not ErrQueueNotFound, so they are looked up in the list of
// queues first.
func QueueInfos(insp *asynq.Inspector) ([]*asynq.QueueInfo, error) {
	known, err := insp.Queues()
	if err != nil {
		return nil, err
	}
	infos := make([]*asynq.QueueInfo, len(tasks.Queues()))
	for i, q := range tasks.Queues() {
		if !slices.Contains(known, q) {
			continue
		}
		if infos[i], err = insp.GetQueueInfo(q); err != nil {
			return nil, err
		}
	}
	return infos, nil
}

// UnpauseQueues unpauses every logpush queue that is paused, whether or
// not a task was ever enqueued into it (a pause sets a queue's flag before
// its first task), and returns those it unpaused.
func UnpauseQueues(insp *asynq.Inspector) ([]string, error) {
	var resumed []string
	for _, q := range tasks.Queues() {
		err := insp.UnpauseQueue(q)
		switch {
		case err == nil:
			resumed = append(resumed, q)
		case !strings.Contains(err.Error(), "not paused"):
			return resumed, fmt.Errorf("resume queue %s: %w", q, err)
		}
	}
	return resumed, nil
}

// RateConflictError is New's error when Config.APIRate differs from the
// rate stored with the budget and APIRateClaim is RateRequire.
type RateConflictError struct {
	// Shared is the rate in Redis; Wanted is Config.APIRate, both as
	// LIMIT/WINDOW.
	Shared, Wanted string
}

func (e *RateConflictError) Error() string {
	return fmt.Sprintf("api budget: rate %s differs from %s, the rate shared in Redis by every process of this budget", e.Wanted, e.Shared)
}

// settleRate is the budget of cfg settled with the rate stored in Redis;
// ok is false for no budget (APIRate "0").
func settleRate(ctx context.Context, rdb redis.UniversalClient, cfg Config, log *slog.Logger) (budget.Config, bool, error) {
	bcfg, ok, err := budget.Settle(ctx, rdb, budget.Claim{Rate: cfg.APIRate, Key: cfg.BudgetKey, Digest: cfg.Credentials.Digest(), Mode: cfg.APIRateClaim.mode()}, log)
	if ce := (*budget.RateConflictError)(nil); errors.As(err, &ce) {
		return bcfg, ok, &RateConflictError{Shared: ce.Shared.String(), Wanted: ce.Wanted.String()}
	}
	return bcfg, ok, err
}

// mode is the budget's claim mode of c.
func (c RateClaim) mode() budget.ClaimMode {
	switch c {
	case RateRequire:
		return budget.Require
	case RateOverride:
		return budget.Override
	}
	return budget.Adopt
}

// tenantBuilder builds the tenants of a Config: a client, a budget (one
// per budget key, shared by the credentials that name the same key) and
// an auth guard per credential.
type tenantBuilder struct {
	ctx     context.Context
	rdb     redis.UniversalClient
	cfg     Config
	metrics *metrics.Metrics
	insp    *asynq.Inspector
	store   *ledger.Store
	budgets map[string]apiBudget // by budget key
	hc      *http.Client
	// id names this worker in the fleet's credential marks; checks are
	// the credCheck of each credential, in build order.
	id     string
	checks []*credCheck
}

// check is this worker's view of its copy of the credential called name.
func (tb *tenantBuilder) check(name string, api *cloudflare.Client) *credCheck {
	c := &credCheck{name: redisName(name), rdb: tb.rdb, verify: api.VerifyCredential, now: tb.cfg.Now, id: tb.id, self: Self(), log: tb.cfg.Logger}
	tb.checks = append(tb.checks, c)
	return c
}

// build returns the default tenant (nil: no default credential) and the
// named ones.
func (tb *tenantBuilder) build() (*tenant, map[string]*tenant, error) {
	cfg := tb.cfg
	set := cfg.NamedCredentials
	perCredential := set.Len() > 0
	// One transport for every client: they all call the same host.
	tb.hc = &http.Client{Timeout: cloudflare.DefaultRequestTimeout, Transport: cloudflare.NewTransport()}
	defCreds := cfg.Credentials
	if defCreds == (credentials.Cloudflare{}) {
		if n, ok := set.Lookup(""); ok {
			defCreds = n.Credentials
		}
	}
	var def *tenant
	if defCreds != (credentials.Cloudflare{}) {
		bcfg := cfg
		bcfg.Credentials = defCreds
		api, err := cloudflare.New(cloudflare.Config{BaseURL: cfg.APIURL, Credentials: defCreds, Observe: tb.metrics.ObserveAPI, HTTPClient: tb.hc})
		if err != nil {
			return nil, nil, err
		}
		bc, ok, err := settleRate(tb.ctx, tb.rdb, bcfg, cfg.Logger)
		if err != nil {
			return nil, nil, err
		}
		def = &tenant{API: api}
		if ok {
			if def.Budget, err = tb.budget(bc); err != nil {
				return nil, nil, err
			}
		}
		def.Auth, def.Pause = tb.guard("", perCredential)
		def.Check = tb.check("", api)
	}
	named := make(map[string]*tenant, set.Len())
	for _, name := range set.Names() {
		n, _ := set.Lookup(name)
		t, err := tb.named(n)
		if err != nil {
			return nil, nil, &ConfigError{Field: "NamedCredentials", Err: fmt.Errorf("credential %s: %w", name, err)}
		}
		named[name] = t
	}
	return def, named, nil
}

// named builds the tenant of one named credential.
func (tb *tenantBuilder) named(n credentials.Named) (*tenant, error) {
	cfg := tb.cfg
	api, err := cloudflare.New(cloudflare.Config{BaseURL: cfg.APIURL, Credentials: n.Credentials, Observe: tb.metrics.ObserveAPIFor(n.Name), HTTPClient: tb.hc})
	if err != nil {
		return nil, err
	}
	tb.metrics.Credential(n.Name)
	t := &tenant{Name: n.Name, API: api}
	claim := budget.Claim{Rate: cfg.APIRate, Mode: cfg.APIRateClaim.mode()}.ForCredential(n.APIRate, n.BudgetKey, n.Digest())
	bc, ok, err := budget.Settle(tb.ctx, tb.rdb, claim, cfg.Logger.With("credential", n.Name))
	if ce := (*budget.RateConflictError)(nil); errors.As(err, &ce) {
		return nil, fmt.Errorf("api_rate %s differs from %s, the rate shared in Redis by every process of its budget: make them agree in the credentials file, or run with the rate override", ce.Wanted, ce.Shared)
	}
	if err != nil {
		return nil, err
	}
	if ok {
		if t.Budget, err = tb.budget(bc); err != nil {
			return nil, err
		}
	}
	t.Auth, t.Pause = tb.guard(n.Name, true)
	t.Check = tb.check(n.Name, api)
	return t, nil
}

// budget is the budget of bc's key, built once per key.
func (tb *tenantBuilder) budget(bc budget.Config) (apiBudget, error) {
	if b, ok := tb.budgets[bc.Key]; ok {
		return b, nil
	}
	bc.MaxWait = budgetMaxWait
	b, err := budget.New(tb.rdb, bc)
	if err != nil {
		return nil, err
	}
	tb.budgets[bc.Key] = b
	return b, nil
}

// guard is the auth guard of the credential called name: with
// perCredential, it pauses the credential's rows (and the queue once every
// credential in use is paused); otherwise the queue, as a single-credential
// fleet always did.
func (tb *tenantBuilder) guard(name string, perCredential bool) (*authGuard, *credentialPause) {
	pauseAfter := max(tb.cfg.AuthPauseAfter, 0) // -1: never
	now := tb.cfg.Now
	if !perCredential {
		return newAuthGuard(tb.rdb, keys.AuthFailures, pauseAfter, now, pauseQueue(tb.rdb, tb.insp, tb.store, now)), nil
	}
	p := &credentialPause{rdb: tb.rdb, name: redisName(name), insp: tb.insp, store: tb.store, metrics: tb.metrics, now: now}
	return newAuthGuard(tb.rdb, keys.AuthFailuresOf(name), pauseAfter, now, p.pause), p
}
