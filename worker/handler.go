package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/budget"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/location"
	"github.com/logpush-onboard/logpush-onboard/internal/redact"
	"github.com/logpush-onboard/logpush-onboard/metrics"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// cloudflareAPI is the part of the Cloudflare client the handlers use.
type cloudflareAPI interface {
	Challenge(ctx context.Context, t cloudflare.Target, destinationConf string) (cloudflare.ChallengeResult, error)
	Validate(ctx context.Context, t cloudflare.Target, destinationConf, ownershipChallenge string) (bool, error)
	ListJobs(ctx context.Context, t cloudflare.Target) ([]cloudflare.Job, error)
	CreateJob(ctx context.Context, t cloudflare.Target, j cloudflare.JobRequest) (cloudflare.Job, error)
	GetJob(ctx context.Context, t cloudflare.Target, id int) (cloudflare.Job, error)
	UpdateJob(ctx context.Context, t cloudflare.Target, id int, j cloudflare.JobRequest) (cloudflare.Job, error)
	Fields(ctx context.Context, t cloudflare.Target, dataset string) (map[string]string, error)
}

// apiBudget is the shared Cloudflare API budget: Wait before every call,
// Pause all workers of the credential after a 429.
type apiBudget interface {
	Wait(ctx context.Context) (time.Duration, error)
	// WaitInTurn is Wait in turn; accept (nil: any) says whether a grant
	// suits the caller, or one later would, and when (see budget's).
	WaitInTurn(ctx context.Context, accept func() (bool, time.Duration)) (time.Duration, error)
	// Interval is the budget's emission interval: the time between two
	// calls at its rate.
	Interval() time.Duration
	Pause(ctx context.Context, d time.Duration, reason string) error
}

// waker starts a snoozed task now: the waiter at the head of a challenge
// location's line, when the location frees. asynq's Inspector is one.
type waker interface {
	RunTask(queue, id string) error
}

// enqueuer schedules the next stage.
type enqueuer interface {
	EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// HandlerConfig tunes the handlers. Every field has a default.
type HandlerConfig struct {
	// PollFirst is the delay from the challenge answer to the first poll
	// until the worker has seen a challenge file appear; until it has seen
	// 8, the longest delay seen, at most PollFirst; from then on the
	// first poll waits for the 75th percentile of the last 64 appearance
	// delays (at most PollMaxInterval; none below half a second), so that most first
	// polls find the file. Default PollFirstDefault (4s): files appear
	// seconds after the challenge, and every miss is a storage request.
	// -1ns, the one negative value Config.Validate accepts: at once (for
	// destinations whose file is there with the challenge answer).
	PollFirst time.Duration
	// PollInterval is the delay after the first miss; it grows by half
	// each miss up to PollMaxInterval. Default PollIntervalDefault.
	PollInterval time.Duration
	// PollMaxInterval caps the delay between polls. Default
	// PollMaxIntervalDefault.
	PollMaxInterval time.Duration
	// PollContended caps the delay after a miss while other destinations
	// wait for the same challenge file: a shared path onboards one
	// destination at a time, so a late look delays all of them. Default
	// PollContendedDefault (50ms): a few reads more per destination on a
	// shared path.
	PollContended time.Duration
	// PollInline is how long the challenge task of such a destination
	// polls for its file itself before a poll task takes over (a task's
	// trip through the queue costs every destination behind it). Default
	// PollInlineDefault; negative: never.
	PollInline time.Duration
	// PollDeadline ends polling for one challenge. Default
	// PollDeadlineDefault.
	PollDeadline time.Duration
	// ClockSkew is subtracted from the challenge request time (itself
	// truncated to the second, as S3's Last-Modified is) before comparing
	// it with the file's modification time. Default ClockSkewDefault.
	ClockSkew time.Duration
	// MaxRechallenges bounds the fresh challenges requested after a stale
	// token (validate answering 1002) or a poll deadline. Default
	// MaxRechallengesDefault.
	MaxRechallenges int
	// HealthDeadline is how long the worker watches an enabled job that
	// onboarding created (or found) for its first push: the destination
	// ends flowing once Cloudflare reports last_complete, job_failing on
	// last_error, no_data_yet past the deadline. Default 0: no watching,
	// the destination ends validated or not_required when its job exists
	// (the worker command's flag defaults to HealthDeadlineDefault).
	HealthDeadline time.Duration
	// HealthInterval is the delay between two reads of a watched job's
	// health: one GET .../jobs/{id} per job per interval, inside the
	// budget; the task snoozes in between, holding no worker slot.
	// Default HealthIntervalDefault.
	HealthInterval time.Duration
	// KeepChallengeFiles keeps each challenge file once its destination's
	// job exists. Default false: the job stage deletes it (Cloudflare's
	// advice), unless another challenge is in flight on its path.
	KeepChallengeFiles bool
	// Task sets the options of the tasks the handlers enqueue.
	Task tasks.Options
}

// WithDefaults fills unset fields.
func (c HandlerConfig) WithDefaults() HandlerConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	c.PollFirst = cmp.Or(c.PollFirst, PollFirstDefault)
	def(&c.PollInterval, PollIntervalDefault)
	def(&c.PollMaxInterval, PollMaxIntervalDefault)
	def(&c.PollContended, PollContendedDefault)
	c.PollInline = cmp.Or(c.PollInline, PollInlineDefault)
	def(&c.PollDeadline, PollDeadlineDefault)
	def(&c.ClockSkew, ClockSkewDefault)
	def(&c.HealthInterval, HealthIntervalDefault)
	c.HealthDeadline = max(c.HealthDeadline, 0)
	if c.MaxRechallenges <= 0 {
		c.MaxRechallenges = MaxRechallengesDefault
	}
	c.Task = c.Task.WithDefaults()
	return c
}

// handlers serve the task types (tasks.Type*), one stage each: challenge,
// poll, validate, create_job, update_job and health. New builds them.
type handlers struct {
	// def is the default credential's tenant (nil: none); named those of
	// the credentials file, by name.
	def    *tenant
	named  map[string]*tenant
	reader destination.Reader
	store  *ledger.Store
	enq    enqueuer
	// leases runs the worker's wake-ups (Shutdown stops it) and, when
	// held, holds the challenge-file locations and wakes their waiters;
	// not held: no serialisation.
	leases  *pathLeases
	metrics *metrics.Metrics
	log     *slog.Logger
	cfg     HandlerConfig
	now     func() time.Time
	// challenges records each challenge before it is made and has an
	// earlier run's records (nil: none).
	challenges ChallengeLog
	// seen learns when challenge files appear, for the first poll.
	seen *appearance
	// sleep is Deps.Sleep.
	sleep func(ctx context.Context, d time.Duration) error
	// clocks measures each store's clock from its responses.
	clocks *clocks
	// lists are the recent listings that stand for reads before challenges.
	lists listings
	// misses are this worker's last vain looks, per challenge.
	misses misses
	// cold are the first polls scheduled before any file was seen.
	cold coldPolls
	// onTimes are the runs onTime set, per poll task.
	onTimes onTimes
	// jobs keeps each zone's job listing for the job stage.
	jobs *jobCache
	// fields keeps each dataset's fields for the job stage.
	fields *fieldCache
	// denials are the buckets found unreadable at a poll deadline.
	denials deniedBuckets
	// ping checks that Redis answers (deps.Ping); redisDown says it
	// did not lately (deps.RedisDown).
	ping      func(ctx context.Context) error
	redisDown func() bool
	// rec records how each task ends.
	rec *recorder
}

// deps are what the handlers talk to.
type deps struct {
	// API, Budget and Auth are the default credential's (the rows that
	// name none); API nil: no default credential.
	API     cloudflareAPI
	Reader  destination.Reader
	Store   *ledger.Store
	Enqueue enqueuer
	Budget  apiBudget // nil: no shared budget
	// Auth pauses the queue after consecutive 401/403 answers; nil: never.
	Auth *authGuard
	// DefaultPause, when set, pauses the default credential's rows alone
	// (a fleet with named credentials) instead of the queue.
	DefaultPause *credentialPause
	// DefaultCheck is this worker's view of its copy of the default
	// credential; nil: none.
	DefaultCheck *credCheck
	// Self names this worker (host:pid) in errors it records; default Self().
	Self string
	// Named are the tenants of the named credentials, by name: the rows
	// that name one call through it.
	Named map[string]*tenant
	// Leases hold one challenge in flight per challenge-file location
	// across the fleet, and Waker starts the next waiter when one frees.
	// nil: no serialisation, for tests whose destinations never share a
	// path.
	Leases  *location.Leases
	Waker   waker
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	Now     func() time.Time // default time.Now
	// Sleep waits d or until ctx ends (default: a timer); a test with its
	// own Now advances that.
	Sleep func(ctx context.Context, d time.Duration) error
	// Ping checks that Redis answers: a task that failed because Redis is
	// unreachable waits for it before returning (see awaitRedis). nil:
	// never waits.
	Ping func(ctx context.Context) error
	// RedisDown, if set, says Redis did not answer the latest commands:
	// a task that ends then waits too, since asynq cannot write its
	// outcome.
	RedisDown func() bool
	// Challenges records each challenge before it is made, and has an
	// earlier run's records; nil: none.
	Challenges ChallengeLog
}

// newHandlers returns the handlers on d (New builds d).
func newHandlers(d deps, cfg HandlerConfig) *handlers {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Sleep == nil {
		d.Sleep = sleepCtx
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	var def *tenant
	if d.API != nil {
		def = &tenant{API: d.API, Budget: d.Budget, Auth: d.Auth, Pause: d.DefaultPause, Check: d.DefaultCheck}
	}
	if d.Self == "" {
		d.Self = Self()
	}
	h := &handlers{def: def, named: d.Named, reader: d.Reader, store: d.Store, enq: d.Enqueue,
		leases: newPathLeases(d.Leases, d.Waker), metrics: d.Metrics, log: d.Logger, cfg: cfg.WithDefaults(), now: d.Now, seen: newAppearance(64), clocks: newClocks(d.Now), sleep: d.Sleep,
		jobs: newJobCache(jobListTTL, d.Now), fields: newFieldCache(), ping: d.Ping, redisDown: d.RedisDown, challenges: d.Challenges}
	h.rec = &recorder{store: d.Store, metrics: d.Metrics, now: d.Now, self: d.Self, releaseCall: h.releaseCall, released: h.released}
	return h
}

// stop ends what the handlers left running after their tasks: the
// wake-ups of path waiters. Worker.Shutdown calls it once the server has
// drained.
func (h *handlers) stop() { h.leases.stop() }

// Register adds the handler of each task type to mux.
func (h *handlers) Register(mux *asynq.ServeMux) {
	mux.HandleFunc(tasks.TypeChallenge, h.Challenge)
	mux.HandleFunc(tasks.TypePoll, h.Poll)
	mux.HandleFunc(tasks.TypeValidate, h.Validate)
	mux.HandleFunc(tasks.TypeCreateJob, h.CreateJob)
	mux.HandleFunc(tasks.TypeUpdateJob, h.UpdateJob)
	mux.HandleFunc(tasks.TypeHealth, h.Health)
}

// errSuperseded marks a task whose destination has moved on (a newer
// challenge, or already finished): it ends without doing anything.
var errSuperseded = errors.New("superseded")

// errFailed marks a task whose destination failed and whose failure was
// recorded (state and event): it ends with nil, so that asynq deletes it
// instead of archiving it, and with it the payload and the conf's secrets.
var errFailed = errors.New("destination failed")

// observe runs fn, within the task's timeout (runContext), and counts its
// outcome. A superseded task, and one whose failure was recorded, ends
// with nil; one revoked (asynq.RevokeTask: an undecodable payload, a
// failure Redis refused to record) is dropped: asynq deletes it.
func (h *handlers) observe(ctx context.Context, t *asynq.Task, fn func(context.Context, *asynq.Task) error) error {
	ctx, slot := withRunSlot(ctx)
	runCtx, cancel := runContext(ctx, slot)
	err := h.lastAttempt(ctx, runCtx, slot, fn(runCtx, t))
	cancel()
	var s *SnoozeError
	outcome := "success"
	switch {
	case errors.Is(err, errSuperseded):
		outcome, err = "superseded", nil
	case errors.Is(err, errFailed):
		outcome, err = "failed", nil
	case err == nil:
	case errors.As(err, &s):
		outcome = "snooze"
	case errors.Is(err, asynq.RevokeTask):
		outcome = "dropped"
	case errors.Is(err, asynq.SkipRetry):
		outcome = "failed"
	default:
		retried, _ := asynq.GetRetryCount(ctx)
		maxRetry, _ := asynq.GetMaxRetry(ctx)
		outcome = "retry"
		if retried >= maxRetry {
			outcome = "failed"
		}
	}
	h.metrics.Tasks.WithLabelValues(t.Type(), outcome).Inc()
	h.awaitRedis(ctx, err)
	return err
}

// run carries what every handler needs for one task.
type run struct {
	d tasks.Dest
	// t is the tenant of the row's credential.
	t       *tenant
	key     ledger.Key
	conf    tasks.Conf
	secrets []string // the conf's secret values
	log     *slog.Logger
	// st is the destination's state as enter left it; nil before enter.
	st *ledger.DestState
	// attempt is a stage whose attempt the outcome counts (not counted by
	// enter: the poll's validate call).
	attempt events.Stage
	// looks are the poll attempts the outcome counts that no enter did:
	// the look for the file its challenge task made (lookFirst).
	looks int
	// job is the job the destination got, for its event.
	jobID      int
	jobExisted bool
	// newJobID is the second job of a copied job (migrate --copy).
	newJobID int
	// lease is the challenge location this task's destination holds ("":
	// none), released with its outcome; seen is what it read there last
	// (a digest, location.Absent, or "" unknown), left for the next holder.
	lease, seen string
	seenAt      time.Time // when seen was read
	// contended: other destinations wait for the lease.
	contended bool
	// stage is the task's type; deadline, when set, ends the retries of
	// its transient errors (a poll's), else they end --poll-deadline after
	// the stage first failed (see handlers.deadline).
	stage    string
	deadline time.Time
}

// clean removes the conf's secrets from s: from a file name derived from
// the conf's path (a Sumo collector code) and from error texts.
func (r *run) clean(s string) string {
	return redact.Values(redact.String(s), r.secrets...)
}

// newRun is the run of a task of type typ for d, its conf not parsed yet.
func newRun(d tasks.Dest, typ string) *run {
	r := &run{d: d, key: ledger.Key{Batch: d.BatchID, Hash: d.Hash()}, secrets: redact.Secrets(d.DestinationConf), stage: typ}
	if d.Update != nil {
		r.jobID = d.Update.ID // every event of a migration names its job
	}
	return r
}

func (h *handlers) start(ctx context.Context, t *asynq.Task, payload any, d *tasks.Dest) (*run, error) {
	id, _ := asynq.GetTaskID(ctx)
	retry, _ := asynq.GetRetryCount(ctx)
	if err := tasks.Decode(t, payload); err != nil {
		// No destination to fail, and no retry can decode it: asynq
		// deletes a revoked task (an error, even SkipRetry's, would
		// archive its payload, the conf's secrets with it). The error
		// quotes no byte of the payload (tasks.Decode).
		h.log.Error("undecodable payload: task dropped", "task_id", id, "retry", retry, "type", t.Type(), "err", err)
		return nil, fmt.Errorf("%w: %w", asynq.RevokeTask, err)
	}
	r := newRun(*d, t.Type())
	noteRun(ctx, r)
	conf, err := tasks.ParseConf(d.DestinationConf)
	// One With per task, none when nothing is logged: the attributes are
	// converted (and, by a text or JSON handler, formatted) on every task.
	r.log = h.log
	if h.log.Enabled(ctx, slog.LevelError) {
		attrs := []any{"task_id", id, "retry", retry, "type", t.Type(), "batch_id", d.BatchID, "dest", r.key.Hash, "gen", d.Gen, "round", d.Round}
		// What an operator finds the row by: the zone or account (named
		// as in the events) and the input's line.
		attrs = append(attrs, "scope", d.Scope, "scope_id", d.ScopeID)
		if d.Line > 0 {
			attrs = append(attrs, "line", d.Line)
		}
		if err == nil {
			attrs = append(attrs, "destination_type", conf.Type)
		}
		r.log = h.log.With(attrs...)
	}
	if err != nil {
		// The producer validated it, so this payload was not made by us.
		return nil, h.rec.fail(ctx, r, "", fmt.Errorf("%w: %w", err, asynq.SkipRetry))
	}
	r.conf = conf
	if r.t, err = h.tenantOf(d.Credential); err != nil {
		// The credentials file changed between enqueue and worker: no
		// retry brings the credential back.
		return nil, h.rec.fail(ctx, r, "", fmt.Errorf("%w: %w", err, asynq.SkipRetry))
	}
	if d.Credential != "" {
		r.log = r.log.With("credential", d.Credential)
	}
	if p := r.t.Pause; p != nil {
		paused, err := p.isPaused(ctx)
		if err != nil {
			return nil, err
		}
		if paused {
			return nil, p.park(ctx)
		}
	}
	if c := r.t.Check; c != nil {
		// This worker's copy of the credential was refused: the row is
		// for a worker whose copy works.
		if refused, _, _ := c.refused(); refused && c.recheck(ctx, r.d) {
			if err, ok := h.handBack(ctx, r, nil); ok {
				return nil, err
			}
		}
	}
	return r, nil
}

// enter moves the destination to stage and counts an attempt, in one round
// trip. A destination that already finished, or that a newer round or
// challenge generation took over, ends the task.
func (h *handlers) enter(ctx context.Context, r *run, state events.State, stage events.Stage, fields ...any) (ledger.DestState, error) {
	st, err := h.store.Enter(ctx, r.key, r.d.Line, state, r.d.Round, r.d.Gen, stage, fields...)
	if errors.Is(err, ledger.ErrSuperseded) {
		r.log.Debug("task superseded", "state", st.State, "current_gen", st.Gen)
		if events.State.Terminal(st.State) {
			// A task of a finished destination (redelivered after a crash)
			// that took its path lets go of it. A newer challenge of the
			// same destination keeps it: same holder.
			h.release(ctx, r)
		}
		return st, errSuperseded
	}
	if err != nil {
		return st, err
	}
	r.st = &st
	return st, nil
}

// wait takes one call from the shared API budget. When the budget cannot
// be had soon (a long cooldown after a 429), the task snoozes instead of
// holding a worker slot: no retry is spent.
func (h *handlers) wait(ctx context.Context, r *run) error {
	return h.budgetWait(ctx, r, apiBudget.Wait)
}

// waitTurn is wait for a challenge: one that would queue behind more than
// budget.TurnSpan of this worker's calls of its budget snoozes until about
// its turn instead of holding a slot, which another tenant's destination
// could use (its own budget idle meanwhile). A poll that found its file
// waits as before: a snooze would read the file again. accept: see
// apiBudget.WaitInTurn.
func (h *handlers) waitTurn(ctx context.Context, r *run, accept func() (bool, time.Duration)) error {
	return h.budgetWait(ctx, r, func(b apiBudget, ctx context.Context) (time.Duration, error) { return b.WaitInTurn(ctx, accept) })
}

func (h *handlers) budgetWait(ctx context.Context, r *run, wait func(apiBudget, context.Context) (time.Duration, error)) error {
	if r.t.Budget == nil {
		return nil
	}
	waited, err := wait(r.t.Budget, ctx)
	h.metrics.BudgetWait.WithLabelValues(r.t.label()).Observe(waited.Seconds())
	var mw *budget.MaxWaitError
	if errors.As(err, &mw) {
		return &SnoozeError{Delay: mw.RetryIn, Reason: "api budget: " + cmp.Or(mw.Reason, "exhausted")}
	}
	if err != nil {
		return fmt.Errorf("wait for api budget: %w", err)
	}
	return nil
}

// enqueue schedules a task; a TaskID conflict means a previous run of this
// handler already did.
func (h *handlers) enqueue(ctx context.Context, t *asynq.Task) error {
	_, err := h.enq.EnqueueContext(ctx, t)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue %s: %w", t.Type(), err)
	}
	return nil
}

// storage counts a storage request of a destination of type typ: op is
// destination.OpRead or OpList.
func (h *handlers) storage(typ, op string, err error) {
	h.metrics.StorageRequests.WithLabelValues(typ, op, destination.Outcome(err)).Inc()
}

func target(d tasks.Dest) cloudflare.Target {
	return cloudflare.Target{Scope: d.Scope, ID: d.ScopeID}
}
