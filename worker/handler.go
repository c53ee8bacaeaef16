package worker

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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

// Budget is the shared Cloudflare API budget: Wait before every call, Pause
// all workers of the credential after a 429.
type Budget interface {
	Wait(ctx context.Context) (time.Duration, error)
	Pause(ctx context.Context, d time.Duration, reason string) error
}

// Waker starts a snoozed task now: the waiter at the head of a challenge
// location's line, when the location frees. asynq's Inspector is one.
type Waker interface {
	RunTask(queue, id string) error
}

// Enqueuer schedules the next stage.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// HandlerConfig tunes the handlers. Every field has a default.
type HandlerConfig struct {
	// PollFirst is the delay from the challenge answer to the first poll
	// until the worker has seen a challenge file appear; until it has seen
	// 8, the longest delay seen, at most PollFirst; from then on the
	// first poll waits for the 75th percentile of the last 64 appearance
	// delays (at most PollMaxInterval; none below half a second), so that most first
	// polls find the file. Default 4s: files appear seconds after the
	// challenge, and every miss is a storage request. Negative: at once
	// (for destinations whose file is there with the challenge answer).
	PollFirst time.Duration
	// PollInterval is the delay after the first miss; it grows by half
	// each miss up to PollMaxInterval. Default 1s.
	PollInterval time.Duration
	// PollMaxInterval caps the delay between polls. Default 15s.
	PollMaxInterval time.Duration
	// PollContended caps the delay after a miss while other destinations
	// wait for the same challenge file: a shared path onboards one
	// destination at a time, so a late look delays all of them. Default
	// 50ms: a few reads more per destination on a shared path.
	PollContended time.Duration
	// PollInline is how long the challenge task of such a destination
	// polls for its file itself before a poll task takes over (a task's
	// trip through the queue costs every destination behind it). Default
	// 10s; negative: never.
	PollInline time.Duration
	// PollDeadline ends polling for one challenge. Default 15m.
	PollDeadline time.Duration
	// ClockSkew is subtracted from the challenge request time (itself
	// truncated to the second, as S3's Last-Modified is) before comparing
	// it with the file's modification time. Default 1s.
	ClockSkew time.Duration
	// MaxRechallenges bounds the fresh challenges requested after a stale
	// token (validate answering 1002) or a poll deadline. Default 2.
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
	if c.PollFirst == 0 {
		c.PollFirst = 4 * time.Second
	}
	def(&c.PollInterval, time.Second)
	def(&c.PollMaxInterval, 15*time.Second)
	def(&c.PollContended, 50*time.Millisecond)
	if c.PollInline == 0 {
		c.PollInline = 10 * time.Second
	}
	def(&c.PollDeadline, 15*time.Minute)
	def(&c.ClockSkew, time.Second)
	def(&c.HealthInterval, HealthIntervalDefault)
	c.HealthDeadline = max(c.HealthDeadline, 0)
	if c.MaxRechallenges <= 0 {
		c.MaxRechallenges = 2
	}
	c.Task = c.Task.WithDefaults()
	return c
}

// Handlers serves the task types: challenge, poll, validate and
// create_job.
type Handlers struct {
	// def is the default credential's tenant (nil: none); named those of
	// the credentials file, by name.
	def     *tenant
	named   map[string]*tenant
	reader  destination.Reader
	store   *ledger.Store
	enq     Enqueuer
	leases  *location.Leases
	waker   Waker
	metrics *metrics.Metrics
	log     *slog.Logger
	cfg     HandlerConfig
	now     func() time.Time
	// challenges records each challenge before it is made and has an
	// earlier run's records (nil: none).
	challenges ChallengeLog
	// seen learns when challenge files appear, for the first poll.
	seen *appearance
	// cold are the first polls scheduled before any file was seen.
	cold coldPolls
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
	// self names this worker (host:pid) in the errors it records.
	self string
}

// deps are what the handlers talk to.
type deps struct {
	// API, Budget and Auth are the default credential's (the rows that
	// name none); API nil: no default credential.
	API     cloudflareAPI
	Reader  destination.Reader
	Store   *ledger.Store
	Enqueue Enqueuer
	Budget  Budget // nil: no shared budget
	// Auth pauses the queue after consecutive 401/403 answers; nil: never.
	Auth *AuthGuard
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
	Waker   Waker
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	Now     func() time.Time // default time.Now
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
func newHandlers(d deps, cfg HandlerConfig) *Handlers {
	if d.Now == nil {
		d.Now = time.Now
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
	return &Handlers{self: d.Self, def: def, named: d.Named, reader: d.Reader, store: d.Store, enq: d.Enqueue,
		leases: d.Leases, waker: d.Waker, metrics: d.Metrics, log: d.Logger, cfg: cfg.WithDefaults(), now: d.Now, seen: newAppearance(64),
		jobs: newJobCache(jobListTTL, d.Now), fields: newFieldCache(), ping: d.Ping, redisDown: d.RedisDown, challenges: d.Challenges}
}

// Register adds the three handlers to mux.
func (h *Handlers) Register(mux *asynq.ServeMux) {
	mux.HandleFunc(tasks.TypeChallenge, h.Challenge)
	mux.HandleFunc(tasks.TypePoll, h.Poll)
	mux.HandleFunc(tasks.TypeValidate, h.Validate)
	mux.HandleFunc(tasks.TypeCreateJob, h.CreateJob)
	mux.HandleFunc(tasks.TypeUpdateJob, h.UpdateJob)
	mux.HandleFunc(tasks.TypeHealth, h.Health)
}

// Challenge handles logpush:challenge: POST .../logpush/ownership, then
// schedule the first poll.
func (h *Handlers) Challenge(ctx context.Context, t *asynq.Task) error {
	return h.observe(ctx, t, h.challenge)
}

// Poll handles logpush:poll: one look for the challenge file.
func (h *Handlers) Poll(ctx context.Context, t *asynq.Task) error {
	return h.observe(ctx, t, h.poll)
}

// Validate handles logpush:validate: submit the token.
func (h *Handlers) Validate(ctx context.Context, t *asynq.Task) error {
	return h.observe(ctx, t, h.validate)
}

// CreateJob handles logpush:create_job: the Logpush job of a validated
// destination, created once.
func (h *Handlers) CreateJob(ctx context.Context, t *asynq.Task) error {
	return h.observe(ctx, t, h.createJob)
}

// jobListTTL is how long the job stage trusts a zone's job listing: long
// enough for a batch's rows of one zone to share it.
const jobListTTL = 30 * time.Minute

// errSuperseded marks a task whose destination has moved on (a newer
// challenge, or already finished): it ends without doing anything.
var errSuperseded = errors.New("superseded")

// errFailed marks a task whose destination failed and whose failure was
// recorded (state and event): it ends with nil, so that asynq deletes it
// instead of archiving it, and with it the payload and the conf's secrets.
var errFailed = errors.New("destination failed")

// observe runs fn and counts its outcome. A superseded task, and one whose
// failure was recorded, ends with nil.
func (h *Handlers) observe(ctx context.Context, t *asynq.Task, fn func(context.Context, *asynq.Task) error) error {
	ctx, slot := withRunSlot(ctx)
	err := h.lastAttempt(ctx, slot, fn(ctx, t))
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
	// the stage first failed (see Handlers.deadline).
	stage    string
	deadline time.Time
}

// clean removes the conf's secrets from s: from a file name derived from
// the conf's path (a Sumo collector code) and from error texts.
func (r *run) clean(s string) string {
	return redact.Values(redact.String(s), r.secrets...)
}

func (h *Handlers) start(ctx context.Context, t *asynq.Task, payload any, d *tasks.Dest) (*run, error) {
	id, _ := asynq.GetTaskID(ctx)
	retry, _ := asynq.GetRetryCount(ctx)
	if err := tasks.Decode(t, payload); err != nil {
		h.log.Error("undecodable payload", "task_id", id, "retry", retry, "type", t.Type(), "err", err)
		return nil, fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	r := &run{d: *d, key: ledger.Key{Batch: d.BatchID, Hash: d.Hash()}, secrets: redact.Secrets(d.DestinationConf), stage: t.Type()}
	noteRun(ctx, r)
	if d.Update != nil {
		r.jobID = d.Update.ID // every event of a migration names its job
	}
	conf, err := tasks.ParseConf(d.DestinationConf)
	// One With per task, none when nothing is logged: the attributes are
	// converted (and, by a text or JSON handler, formatted) on every task.
	r.log = h.log
	if h.log.Enabled(ctx, slog.LevelError) {
		attrs := []any{"task_id", id, "retry", retry, "type", t.Type(), "batch_id", d.BatchID, "dest", r.key.Hash, "gen", d.Gen, "round", d.Round}
		if err == nil {
			attrs = append(attrs, "destination_type", conf.Type)
		}
		r.log = h.log.With(attrs...)
	}
	if err != nil {
		// The producer validated it, so this payload was not made by us.
		return nil, h.fail(ctx, r, "", fmt.Errorf("%w: %w", err, asynq.SkipRetry))
	}
	r.conf = conf
	if r.t, err = h.tenantOf(d.Credential); err != nil {
		// The credentials file changed between enqueue and worker: no
		// retry brings the credential back.
		return nil, h.fail(ctx, r, "", fmt.Errorf("%w: %w", err, asynq.SkipRetry))
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
func (h *Handlers) enter(ctx context.Context, r *run, state events.State, stage events.Stage, fields ...any) (ledger.DestState, error) {
	st, err := h.store.Enter(ctx, r.key, state, r.d.Round, r.d.Gen, stage, fields...)
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

func (h *Handlers) challenge(ctx context.Context, t *asynq.Task) error {
	var p tasks.ChallengePayload
	r, err := h.start(ctx, t, &p, &p.Dest)
	if err != nil {
		return err
	}
	// One challenge in flight per challenge file: every destination that
	// pushes to this path shares the file, and each challenge overwrites
	// it. A destination that must wait snoozes: no slot, no retry spent.
	var loc destination.Location
	record, before := "", ""
	if r.conf.TokenReadable() && h.leases != nil {
		loc = destination.For(r.conf, r.d.ReadAs, cloudflare.ChallengeFile(r.conf.Prefix, h.now()))
		held, rec, err := h.acquire(ctx, r, loc)
		if err != nil || !held {
			return err
		}
		record = rec
	}
	if done, seen, err := h.resume(ctx, r, loc); done {
		return err
	} else if seen != "" {
		before = seen
	}
	// The budget first: a snooze for the budget is no attempt.
	if err := h.wait(ctx, r); err != nil {
		return err
	}
	if r.lease != "" {
		// What the path holds now is not the file this challenge writes,
		// however recent it looks (S3 dates are whole seconds): read it,
		// unless the previous holder just did (trustRecord).
		if before = h.trustRecord(record); before == "" {
			rec, done, err := h.readBefore(ctx, r, loc)
			if done {
				return err
			}
			before = rec
		}
	}
	// The call comes before the state check: on success one script checks
	// that the destination is still this task's, counts the attempt and
	// moves it to polling. A task that turns out superseded (rare: a
	// redelivery after a crash) has spent one call.
	requestedAt := h.now()
	if err := h.record(ctx, r, loc, before, requestedAt); err != nil {
		return err
	}
	res, err := r.t.API.Challenge(ctx, target(r.d), r.d.DestinationConf)
	if err != nil {
		if _, eerr := h.enter(ctx, r, events.Challenging, events.StageChallenge); eerr != nil {
			return eerr
		}
		return h.apiError(ctx, r, "", err)
	}
	r.t.Auth.Success(ctx)
	r.t.Check.succeeded(ctx)
	// filename is optional in Cloudflare's schema: then its fixed name.
	res.Filename = cmp.Or(res.Filename, cloudflare.ChallengeFile(r.conf.Prefix, requestedAt))
	if !r.conf.TokenReadable() {
		// Sumo and the like: the token goes to the HTTP source; an operator
		// submits it.
		r.attempt = events.StageChallenge
		return h.outcome(ctx, r, events.AwaitingToken, res.Filename, nil)
	}
	deadline := requestedAt.Add(h.cfg.PollDeadline)
	if _, err := h.enter(ctx, r, events.Polling, events.StageChallenge,
		"gen", r.d.Gen, "filename", r.clean(res.Filename), "requested_at", requestedAt.UnixNano()); err != nil {
		return err
	}
	pp := tasks.PollPayload{Dest: r.d, Filename: res.Filename, RequestedAt: requestedAt, Deadline: deadline, Lease: r.lease, Before: before}
	first := h.firstPoll(r)
	inline := h.inlinePolls(ctx, r)
	first = h.coldFirst(r, requestedAt, first, inline)
	delay := first
	if inline {
		delay += h.cfg.PollInline // the poll task only takes over from the polls below
	}
	task, err := tasks.NewPollTask(pp, h.cfg.Task, delay)
	if err != nil {
		return err
	}
	if err := h.enqueue(ctx, task); err != nil {
		return err
	}
	r.log.Info("challenge requested", "filename", r.clean(res.Filename))
	if inline {
		h.pollInline(ctx, pp, first)
	}
	return nil
}

// inlinePolls says whether the challenge task polls for its file itself:
// where other destinations wait for the same path, the path is serial, and
// a poll task's trip through the queue (the scheduler's tick, a dequeue)
// delays every destination behind it. The slot held would otherwise idle.
// Only a first run does: a poll inside a retried task would spend the
// challenge task's retries.
func (h *Handlers) inlinePolls(ctx context.Context, r *run) bool {
	retried, _ := asynq.GetRetryCount(ctx)
	return r.contended && h.cfg.PollInline > 0 && retried == 0
}

// pollInline runs the poll of pp in this task, first after first, then as
// each answer says, for at most PollInline. The poll task enqueued after
// PollInline takes over when the file is not found by then, a poll fails
// transiently, or the worker stops; after an outcome it finds the
// destination finished.
func (h *Handlers) pollInline(ctx context.Context, pp tasks.PollPayload, first time.Duration) {
	task, err := tasks.NewPollTask(pp, h.cfg.Task, 0)
	if err != nil {
		return
	}
	end := h.now().Add(h.cfg.PollInline)
	wait := first
	for {
		if h.now().Add(wait).After(end) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		var s *SnoozeError
		if err := h.poll(ctx, task); !errors.As(err, &s) {
			return // done, failed for good, or a transient error: the poll task has it
		}
		wait = s.Delay
	}
}

// firstPoll is the delay of the first look for the challenge file: where
// others wait for the same path, PollContended until appearance delays
// are known.
func (h *Handlers) firstPoll(r *run) time.Duration {
	def := h.cfg.PollFirst
	if r.contended {
		def = min(def, h.cfg.PollContended)
	}
	return h.seen.firstPoll(def, h.cfg.PollMaxInterval)
}

// holder names a destination in a location's lease and line.
func holder(r *run) string { return r.key.Batch + ":" + r.key.Hash }

// acquire takes loc for r's destination, or puts it in the line and
// returns a snooze. record is what the previous holder left: what the
// location held when it let go.
func (h *Handlers) acquire(ctx context.Context, r *run, loc destination.Location) (held bool, record string, err error) {
	id := location.ID(loc.Scheme + "://" + loc.Account + "@" + loc.Bucket + "/" + loc.Key)
	queue, ok := asynq.GetQueueName(ctx)
	if !ok {
		queue = tasks.Queue
	}
	g, err := h.leases.Acquire(ctx, id, location.Waiter{Holder: holder(r), Order: order(r.d), Queue: queue,
		TaskID: tasks.ChallengeTaskID(r.d)})
	if err != nil {
		return false, "", err
	}
	if g.Held {
		r.lease, r.contended = id, g.Waiting > 0
		return true, g.Record, nil
	}
	r.lease = id // a finished destination leaves the line in enter
	if _, err := h.enter(ctx, r, events.WaitingPath, ""); err != nil {
		return false, "", err
	}
	r.lease = ""
	reason := fmt.Sprintf("challenge file %s is busy with another destination's challenge (%d waiting ahead)", r.clean(loc.String()), g.Ahead)
	return false, "", &SnoozeError{Delay: g.Retry, Reason: reason}
}

// order places a destination in a location's line: by enqueue second,
// then input line.
func order(d tasks.Dest) float64 {
	return float64(d.EnqueuedAt.Unix())*1e6 + float64(min(d.Line, 999_999))
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// release lets go of the destination's challenge location, leaving what it
// saw there for the next holder, and wakes the next waiter. Errors are
// logged, not returned: the outcome is recorded, and an unreleased lease
// expires.
func (h *Handlers) release(ctx context.Context, r *run) {
	if r.lease == "" || h.leases == nil {
		return
	}
	next, err := h.leases.Release(ctx, r.lease, holder(r), pathRecord(r))
	if RedisUnreachable(err) {
		// A release lost in an outage would keep the path (and everyone
		// waiting for it) until the lease expires: once Redis is back, again.
		h.awaitRedis(ctx, err)
		next, err = h.leases.Release(ctx, r.lease, holder(r), pathRecord(r))
	}
	if err == nil && next != nil {
		err = h.wake(ctx, r.lease, next)
	}
	if err != nil {
		r.log.Warn("releasing the challenge location failed; it frees when its lease expires", "err", err)
	}
	r.lease = ""
}

// wakeRetry is how often, and for how long, a release tries again to wake
// a waiter whose task was running when the location freed: longer than
// asynq takes to recover a task an outage left counted as active (its 30 s
// lease, then a recoverer that looks once a minute).
var wakeRetry = struct{ every, upTo time.Duration }{time.Second, 3 * time.Minute}

// wake runs the task of next, the waiter the free location lease wants,
// taking waiters whose task is gone out of the line. A task that is
// running cannot be woken: it either looked just before the release and
// is about to sleep out its look-in (up to 20 rechecks for a waiter far
// back in the line), or an outage cut its dequeue off and asynq counts it
// active until it recovers it. Either way the line would wait for it, so
// a goroutine tries again until the task can be run.
func (h *Handlers) wake(ctx context.Context, lease string, next *location.Next) error {
	for i := 0; next != nil && i < 100; i++ {
		werr := h.waker.RunTask(next.Queue, next.TaskID)
		switch {
		case running(werr):
			go h.wakeLater(*next)
			return nil
		case !errors.Is(werr, asynq.ErrTaskNotFound) && !errors.Is(werr, asynq.ErrQueueNotFound):
			return nil // woken, or pending already
		}
		// Its task is gone: take it out of the line, wake the next.
		var err error
		if next, err = h.leases.Leave(ctx, lease, next.Holder); err != nil {
			return err
		}
	}
	return nil
}

// wakeLater tries to wake next every wakeRetry.every, for at most
// wakeRetry.upTo, until its task is no longer running. It wakes or stops;
// it never takes the waiter out of the line: by then the waiter may hold
// the lease (its own look took it), and a waiter that is gone is presumed
// so by the line itself, after its look-in and a grace.
func (h *Handlers) wakeLater(next location.Next) {
	for end := time.Now().Add(wakeRetry.upTo); time.Now().Before(end); {
		time.Sleep(wakeRetry.every)
		if werr := h.waker.RunTask(next.Queue, next.TaskID); !running(werr) {
			return
		}
	}
}

// running reports whether RunTask refused because the task is running.
func running(err error) bool { return err != nil && strings.Contains(err.Error(), "already running") }

func (h *Handlers) poll(ctx context.Context, t *asynq.Task) error {
	var p tasks.PollPayload
	r, err := h.start(ctx, t, &p, &p.Dest)
	if err != nil {
		return err
	}
	st, err := h.enter(ctx, r, events.Polling, events.StagePoll)
	if err != nil {
		return err
	}
	// A retried challenge of this generation may have asked again after
	// this poll was scheduled: only its (later) token is good.
	requestedAt := p.RequestedAt
	if st.Round == r.d.Round && st.Gen == r.d.Gen && st.RequestedAt.After(requestedAt) {
		requestedAt = st.RequestedAt
	}
	// The lease is renewed only by a poll that looks again (notYet,
	// denied, unreadable): the poll that finds the file releases it with
	// the outcome, and reading it needs no lease.
	r.lease, r.deadline = p.Lease, p.Deadline
	notBefore := requestedAt.Truncate(time.Second).Add(-h.cfg.ClockSkew)
	loc := destination.For(r.conf, r.d.ReadAs, p.Filename)
	r.seenAt = h.now()
	obj, err := h.reader.Read(ctx, loc, notBefore)
	switch {
	case errors.Is(err, destination.ErrNotFound), errors.Is(err, destination.ErrStale):
		h.storage(r.conf.Type, err)
		if errors.Is(err, destination.ErrNotFound) {
			r.seen = location.Absent
		}
		return h.notYet(ctx, r, p, st.Attempts.Poll, err)
	case err != nil:
		h.storage(r.conf.Type, err)
		if maybeAbsent(err) {
			return h.denied(ctx, r, p, loc, st.Attempts.Poll, err)
		}
		if classify(err) == permanent {
			return h.fail(ctx, r, p.Filename, fmt.Errorf("%w: %w", err, asynq.SkipRetry))
		}
		return h.unreadable(ctx, r, p, st.Attempts.Poll, err)
	}
	h.storage(r.conf.Type, nil)
	h.denials.forget(loc)
	appeared := obj.ModTime
	if appeared.Nanosecond() == 0 {
		appeared = appeared.Add(time.Second) // S3's Last-Modified is truncated to the second
	}
	r.seen = digest(obj.Body)
	if r.seen == p.Before {
		// The file that was there before the challenge: ours is not
		// written yet.
		return h.notYet(ctx, r, p, st.Attempts.Poll, errUnchanged)
	}
	token, err := cloudflare.CleanToken(string(obj.Body))
	if err != nil {
		return h.fail(ctx, r, p.Filename, fmt.Errorf("challenge file %s: %w: %w", loc, err, asynq.SkipRetry))
	}
	switch cloudflare.TokenFor(token, r.d.Scope, r.d.ScopeID, r.d.DestinationConf, h.now()) {
	case cloudflare.TokenForeign:
		// Another destination's challenge on this path wrote it (one
		// outside this fleet, or before this destination's lease).
		return h.notYet(ctx, r, p, st.Attempts.Poll, errForeignToken)
	case cloudflare.TokenExpired:
		return h.notYet(ctx, r, p, st.Attempts.Poll, errExpiredToken)
	}
	h.observeAppearance(appeared.Sub(requestedAt))
	r.log.Info("challenge file found", "filename", r.clean(p.Filename), "polls", st.Attempts.Poll)
	// Validate here rather than through a logpush:validate task: one task
	// fewer per destination (4 Redis round trips and a hand-off), and the
	// token is never stored in Redis. A transient error retries this poll,
	// which reads the file again.
	if err := h.wait(ctx, r); err != nil {
		return err
	}
	return h.submitToken(ctx, r, p.Filename, token, true)
}

// renew extends the lease of a poll that will look again and learns
// whether others wait for the path (r.contended).
func (h *Handlers) renew(ctx context.Context, r *run) error {
	if r.lease == "" || h.leases == nil {
		return nil
	}
	held, waiting, err := h.leases.Renew(ctx, r.lease, holder(r))
	if err != nil {
		return err
	}
	if !held {
		r.log.Warn("another destination took this challenge location after its lease expired; its challenge may overwrite this one's file")
	}
	r.contended = waiting > 0
	return nil
}

// notYet snoozes the poll, or, past the deadline, asks for one fresh
// challenge and then gives up.
func (h *Handlers) notYet(ctx context.Context, r *run, p tasks.PollPayload, polls int, cause error) error {
	if err := h.renew(ctx, r); err != nil {
		return err
	}
	if h.now().Before(p.Deadline) {
		d := h.pollDelay(polls)
		if r.contended {
			// Others wait for this path: every interval here delays them all.
			d = min(d, h.cfg.PollContended)
		}
		d = h.scoutDelay(r, d)
		return &SnoozeError{Delay: d, Reason: cause.Error()}
	}
	why := fmt.Errorf("challenge file %s not written within %s: %w", p.Filename, h.cfg.PollDeadline, cause)
	if r.d.Expired {
		return h.fail(ctx, r, p.Filename, fmt.Errorf("%w: %w", why, asynq.SkipRetry))
	}
	r.d.Expired = true // one fresh challenge after a deadline, then fail
	return h.rechallenge(ctx, r, p.Filename, why)
}

// unreadable handles a transient error reading the challenge file (a host
// that does not resolve, a timeout, a 5xx). The poll deadline bounds it as
// it bounds a missing file, rather than the retries with their backoff,
// which can outlast any deadline: before it the poll snoozes like after a
// miss, keeping the error for status and report; past it the destination
// fails (a fresh challenge would not make the storage readable).
func (h *Handlers) unreadable(ctx context.Context, r *run, p tasks.PollPayload, polls int, cause error) error {
	if err := h.renew(ctx, r); err != nil {
		return err
	}
	if h.now().Before(p.Deadline) {
		h.noteError(ctx, r, events.Polling, cause)
		r.log.Warn("challenge file unreadable, will poll again", "err", r.clean(cause.Error()))
		return &SnoozeError{Delay: min(h.pollDelay(polls), p.Deadline.Sub(h.now())+time.Second), Reason: r.clean(cause.Error())}
	}
	return h.fail(ctx, r, p.Filename, fmt.Errorf("challenge file %s unreadable within %s: %w: %w", p.Filename, h.cfg.PollDeadline, cause, asynq.SkipRetry))
}

// noteError keeps cause as the destination's last error while it is in
// flight; a failure to keep it only costs the display.
func (h *Handlers) noteError(ctx context.Context, r *run, state events.State, cause error) {
	e := r.eventError(cause)
	le := ledger.LastError{State: state, HTTPStatus: e.HTTPStatus, Message: e.Message, Worker: h.self, Time: h.now().UTC()}
	if r.st != nil {
		le.Line = r.st.Line
	}
	if err := h.store.NoteError(ctx, r.key, le); err != nil {
		r.log.Debug("last error not kept", "err", err)
	}
}

// pollDelay is the delay after the n-th miss: PollInterval growing by half
// each miss, capped at PollMaxInterval.
func (h *Handlers) pollDelay(n int) time.Duration {
	d := h.cfg.PollInterval
	for i := 1; i < n && d < h.cfg.PollMaxInterval; i++ {
		d += d / 2
	}
	return min(d, h.cfg.PollMaxInterval)
}

func (h *Handlers) validate(ctx context.Context, t *asynq.Task) error {
	var p tasks.ValidatePayload
	r, err := h.start(ctx, t, &p, &p.Dest)
	if err != nil {
		return err
	}
	if err := h.wait(ctx, r); err != nil {
		return err
	}
	if _, err := h.enter(ctx, r, events.Validating, events.StageValidate); err != nil {
		return err
	}
	return h.submitToken(ctx, r, p.Filename, p.Token, false)
}

// submitToken calls validate with token, after the budget was waited for.
// fromPoll says the poll that found the file calls it: its validate attempt
// is not counted yet, and the outcome counts it with its own transition, so
// that only the rarer paths pay a round trip. The validate task entered its
// stage, which counted the attempt.
func (h *Handlers) submitToken(ctx context.Context, r *run, filename, token string, fromPoll bool) error {
	counted := !fromPoll
	if !counted && (r.d.Job != nil || r.d.Update != nil) {
		// The job stage is a task of its own: count before handing over.
		if _, err := h.enter(ctx, r, events.Validating, events.StageValidate); err != nil {
			return err
		}
		counted = true
	}
	if _, err := r.t.API.Validate(ctx, target(r.d), r.d.DestinationConf, token); err != nil {
		if !counted {
			if _, eerr := h.enter(ctx, r, events.Polling, events.StageValidate); eerr != nil {
				return eerr
			}
		}
		if classify(err) == stale {
			return h.rechallenge(ctx, r, filename, err)
		}
		return h.apiError(ctx, r, filename, err)
	}
	r.t.Auth.Success(ctx)
	r.t.Check.succeeded(ctx)
	if fromPoll {
		h.metrics.PollAttempts.Observe(float64(r.st.Attempts.Poll))
	}
	if r.d.Update != nil {
		return h.handOver(ctx, r, filename, token)
	}
	if r.d.Job != nil {
		h.release(ctx, r) // the job stage reads no file
		task, err := tasks.NewCreateJobTask(tasks.CreateJobPayload{Dest: r.d, Filename: filename, Token: token}, h.cfg.Task)
		if err != nil {
			return err
		}
		return h.enqueue(ctx, task)
	}
	if !counted {
		r.attempt = events.StageValidate
	}
	return h.outcome(ctx, r, events.Validated, filename, nil)
}

// createJob creates the destination's Logpush job: after validation, with
// the validated token, or, for a destination that needs no challenge, at
// once. A job is (scope, id, dataset, destination_conf): a job of the zone
// or account with the same dataset and the byte-identical conf (a crash
// after CreateJob, or a re-run) is reported, not duplicated; a job of
// another dataset to the same destination is another job. The zone's jobs
// are listed once per batch (jobCache), not per row.
func (h *Handlers) createJob(ctx context.Context, t *asynq.Task) error {
	var p tasks.CreateJobPayload
	r, err := h.start(ctx, t, &p, &p.Dest)
	if err != nil {
		return err
	}
	done := events.Validated
	if !r.conf.NeedsChallenge() {
		done = events.NotRequired
	}
	if r.d.Job == nil {
		return h.fail(ctx, r, p.Filename, fmt.Errorf("create job: payload has no job: %w", asynq.SkipRetry))
	}
	if _, err := h.enter(ctx, r, events.CreatingJob, events.StageJob); err != nil {
		return err
	}
	if r.conf.NeedsChallenge() && p.Token == "" {
		return h.fail(ctx, r, p.Filename, fmt.Errorf("create job: no validated ownership challenge: %w", asynq.SkipRetry))
	}
	tg := target(r.d)
	key := jobScope{batch: r.d.BatchID, round: r.d.Round, target: tg}
	retried, _ := asynq.GetRetryCount(ctx)
	j := r.d.Job
	existing, found, err := h.jobs.find(ctx, key, j.Dataset, r.d.DestinationConf, retried > 0,
		func(ctx context.Context) ([]cloudflare.Job, error) {
			if err := h.wait(ctx, r); err != nil {
				return nil, err
			}
			return r.t.API.ListJobs(ctx, tg)
		})
	if err != nil {
		return h.apiError(ctx, r, p.Filename, err)
	}
	if found {
		r.jobID, r.jobExisted = existing.ID, true
		return h.jobExists(ctx, r, done, p.Filename, existing)
	}
	opts := j.OutputOptions
	if opts == nil && j.LogpullOptions == "" {
		// No output_options (nor the deprecated logpull_options, which
		// output_options would override): the dataset's fields.
		opts, err = h.fields.defaultOptions(ctx, r.d.Credential, tg, j.Dataset, func(ctx context.Context) (map[string]string, error) {
			if err := h.wait(ctx, r); err != nil {
				return nil, err
			}
			return r.t.API.Fields(ctx, tg, j.Dataset)
		})
		if err != nil {
			return h.apiError(ctx, r, p.Filename, err)
		}
	}
	if err := h.wait(ctx, r); err != nil {
		return err
	}
	job, err := r.t.API.CreateJob(ctx, tg, cloudflare.JobRequest{
		DestinationConf: r.d.DestinationConf, OwnershipChallenge: p.Token, Dataset: j.Dataset, Name: j.Name, Enabled: j.Enabled,
		OutputOptions: opts, LogpullOptions: j.LogpullOptions, Frequency: j.Frequency, MaxUploadBytes: j.MaxUploadBytes,
		MaxUploadIntervalSeconds: j.MaxUploadIntervalSeconds, MaxUploadRecords: j.MaxUploadRecords, Filter: j.Filter,
	})
	if err != nil {
		if classify(err) == transient {
			h.jobs.forget(key) // the job may have been made: look again before the retry creates
		}
		return h.apiError(ctx, r, p.Filename, err)
	}
	h.jobs.add(key, job)
	r.jobID = job.ID
	return h.jobExists(ctx, r, done, p.Filename, job)
}

// rechallenge enqueues the next challenge generation, or fails the
// destination once MaxRechallenges fresh challenges were spent.
func (h *Handlers) rechallenge(ctx context.Context, r *run, filename string, cause error) error {
	if r.d.Gen >= h.cfg.MaxRechallenges {
		return h.fail(ctx, r, filename, fmt.Errorf("after %d fresh challenges: %w: %w", r.d.Gen, cause, asynq.SkipRetry))
	}
	next := r.d
	next.Gen++
	task, err := tasks.NewChallengeTask(next, h.cfg.Task, 0)
	if err != nil {
		return err
	}
	if err := h.enqueue(ctx, task); err != nil {
		return err
	}
	r.log.Warn("requesting a fresh challenge", "reason", r.clean(cause.Error()), "next_gen", next.Gen)
	return nil
}

// apiError turns a Cloudflare error into the task's outcome.
func (h *Handlers) apiError(ctx context.Context, r *run, filename string, err error) error {
	failedAt := time.Now()
	var ae *cloudflare.APIError
	if errors.As(err, &ae) && ae.Kind == cloudflare.RateLimited && ae.RetryAfter > 0 && r.t.Budget != nil {
		if perr := r.t.Budget.Pause(ctx, ae.RetryAfter, "429 from "+ae.Endpoint); perr == nil {
			h.metrics.Cooldowns.WithLabelValues(r.t.label()).Inc()
		}
	}
	if errors.As(err, &ae) && ae.Kind == cloudflare.Auth {
		// This worker's copy of the credential may be the one refused
		// (a worker started with a wrong token): it verifies it, and a
		// refused copy hands the row back rather than failing it.
		if c := r.t.Check; c != nil && c.check(ctx, failedAt, r.d) {
			if herr, ok := h.handBack(ctx, r, err); ok {
				return herr
			}
		}
		hold, tripped, perr := r.t.Auth.Failure(ctx, ae.Error())
		if perr != nil {
			return perr
		}
		if hold {
			return h.hold(ctx, r, tripped, err)
		}
	}
	if classify(err) == permanent {
		return h.fail(ctx, r, filename, fmt.Errorf("%w: %w", err, asynq.SkipRetry))
	}
	return h.retryOrFail(ctx, r, filename, err)
}

// hold keeps a destination of a paused credential (or queue) for after
// 'resume' instead of failing it: a parked row of a paused credential, or a
// snooze in the paused queue (no retry spent; the paused queue runs it again
// only after resume). tripped says this failure paused it.
func (h *Handlers) hold(ctx context.Context, r *run, tripped bool, cause error) error {
	msg := r.clean(cause.Error())
	switch {
	case tripped && r.t.Pause != nil:
		// The pause counted the queue's pause, if every credential in
		// use is paused now.
		r.log.Error("credential paused: repeated authentication failures", "err", msg)
	case tripped:
		h.metrics.QueuePauses.WithLabelValues("auth").Inc()
		r.log.Error("queue paused: repeated authentication failures", "err", msg)
	}
	state := events.Queued
	if r.st != nil {
		state = r.st.State
	}
	h.noteError(ctx, r, state, cause)
	if r.t.Pause != nil {
		return r.t.Pause.park(ctx)
	}
	return &SnoozeError{Delay: time.Second, Reason: "queue paused after repeated authentication failures"}
}

// handBack is what a worker whose copy of the row's credential Cloudflare
// refused does with the row (cause: the refused call, nil before any):
// while another live worker's copy works, the row goes back to the queue
// for it (a snooze: no retry spent); when none does, the credential's
// pause holds it for an operator. ok false: the pause is off
// (--auth-pause-after 0), the row is judged as before.
func (h *Handlers) handBack(ctx context.Context, r *run, cause error) (err error, ok bool) {
	c := r.t.Check
	if cause != nil {
		state := events.Queued
		if r.st != nil {
			state = r.st.State
		}
		h.noteError(ctx, r, state, cause)
	}
	elsewhere, err := c.worksElsewhere(ctx)
	if err != nil {
		return &SnoozeError{Delay: handBackDelay, Reason: "credential " + c.name + " refused on worker " + c.self + "; " + err.Error()}, true
	}
	if elsewhere {
		h.metrics.HandedBack.WithLabelValues(r.t.label()).Inc()
		return &SnoozeError{Delay: handBackDelay, Reason: "credential " + c.name + " refused on worker " + c.self + ": left for a worker whose copy works"}, true
	}
	if r.t.Auth == nil || r.t.Auth.threshold <= 0 {
		return nil, false
	}
	if cause == nil && !c.check(ctx, time.Now(), r.d) {
		// Refused before (the row came back after a resume, say): the
		// copy verifies again, the row is this worker's.
		return nil, false
	}
	_, _, why := c.refused()
	tripped, err := r.t.Auth.Trip(ctx, "no live worker holds a working copy of credential "+c.name+" (last: "+why+")")
	if err != nil {
		return err, true
	}
	if cause == nil {
		cause = fmt.Errorf("credential %s refused by Cloudflare on every worker: %s", c.name, why)
	}
	return h.hold(ctx, r, tripped, cause), true
}

// retryOrFail returns a transient error for asynq to retry no later than
// the stage's deadline (see Handlers.deadline); on the last allowed
// attempt, or past the deadline, it records the failure instead, and the
// task ends without keeping the conf in Redis.
func (h *Handlers) retryOrFail(ctx context.Context, r *run, filename string, err error) error {
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	if ok && retried >= maxRetry {
		return h.fail(ctx, r, filename, fmt.Errorf("gave up after %d retries: %w", retried, err))
	}
	until, derr := h.deadline(ctx, r)
	if derr != nil {
		return derr
	}
	if !h.now().Before(until) {
		return h.fail(ctx, r, filename, fmt.Errorf("still failing after %s (the poll deadline): %w", h.cfg.PollDeadline, err))
	}
	state := events.Queued
	if r.st != nil {
		state = r.st.State
	}
	h.noteError(ctx, r, state, err)
	r.log.Warn("transient error, will retry", "err", r.clean(err.Error()))
	return &retryError{err: err, until: until}
}

// fail records the failed outcome (err, redacted, in the state and the
// event) and returns errFailed: the task ends without being archived, so
// that no archived task keeps the conf's secrets in Redis for months
// (retry rebuilds the task from the input file instead).
func (h *Handlers) fail(ctx context.Context, r *run, filename string, err error) error {
	if oerr := h.outcome(ctx, r, events.Failed, filename, err); oerr != nil {
		return oerr // state not written: let asynq retry the whole task
	}
	return errFailed
}

// outcome moves the destination to its outcome and emits its event, once.
func (h *Handlers) outcome(ctx context.Context, r *run, state events.State, filename string, cause error) error {
	return h.emit(ctx, r, state, state, filename, cause)
}

// emit moves the destination to state and emits event, once: the outcome's
// own, or, for a destination that moves on to Watching, the validated or
// not_required event of its job stage.
func (h *Handlers) emit(ctx context.Context, r *run, state, event events.State, filename string, cause error) error {
	var st ledger.DestState
	if r.st != nil {
		st = *r.st // what enter left, with this attempt counted
	} else {
		var err error
		if st, err = h.store.Get(ctx, r.key); err != nil && !errors.Is(err, ledger.ErrNotFound) {
			return err
		}
	}
	now := h.now()
	ev := &events.Event{
		Event:           event,
		BatchID:         r.d.BatchID,
		Scope:           r.d.Scope,
		ScopeID:         r.d.ScopeID,
		Destination:     r.conf.Redacted(),
		DestinationType: r.conf.Type,
		Filename:        r.clean(filename),
		Attempts:        st.Attempts,
		DurationSeconds: now.Sub(r.d.EnqueuedAt).Seconds(),
		Time:            now.UTC(),
		Line:            st.Line,
		JobID:           r.jobID,
		JobExisted:      r.jobExisted,
		NewJobID:        r.newJobID,
	}
	switch r.attempt {
	case events.StageChallenge:
		ev.Attempts.Challenge++
	case events.StageValidate:
		ev.Attempts.Validate++
	case "":
	default:
		return fmt.Errorf("outcome: cannot count a %s attempt", r.attempt)
	}
	if ev.Destination == "" {
		ev.Destination = redact.String(r.d.DestinationConf)
	}
	if cause != nil {
		ev.Error = r.eventError(cause)
		ev.Error.Worker = h.self
	}
	fields := ledger.ErrorFields(ev.Error)
	if ev.Filename != "" {
		fields = append(fields, "filename", ev.Filename)
	}
	changed, err := h.store.Transition(ctx, r.key, state, ev, r.attempt, fields...)
	if err != nil {
		return err
	}
	h.release(ctx, r)
	if changed {
		h.metrics.Destinations.WithLabelValues(string(event)).Inc()
		h.metrics.OnboardingDuration.WithLabelValues(string(event)).Observe(ev.DurationSeconds)
		if cause != nil {
			r.log.Warn("destination "+string(event), "err", ev.Error.Message, "codes", ev.Error.Codes)
		} else {
			r.log.Info("destination "+string(event), "duration_seconds", ev.DurationSeconds, "job_id", r.jobID)
		}
	}
	return nil
}

func (r *run) eventError(err error) *events.Error {
	msg := strings.TrimSuffix(err.Error(), ": "+asynq.SkipRetry.Error())
	e := &events.Error{Message: r.clean(msg)}
	var ae *cloudflare.APIError
	var de *destination.Error
	switch {
	case errors.As(err, &ae):
		e.HTTPStatus = ae.HTTPStatus
		e.Codes = ae.Codes
	case errors.As(err, &de):
		e.StorageStatus = de.HTTPStatus
	}
	return e
}

// wait takes one call from the shared API budget. When the budget cannot
// be had soon (a long cooldown after a 429), the task snoozes instead of
// holding a worker slot: no retry is spent.
func (h *Handlers) wait(ctx context.Context, r *run) error {
	if r.t.Budget == nil {
		return nil
	}
	waited, err := r.t.Budget.Wait(ctx)
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
func (h *Handlers) enqueue(ctx context.Context, t *asynq.Task) error {
	_, err := h.enq.EnqueueContext(ctx, t)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue %s: %w", t.Type(), err)
	}
	return nil
}

func (h *Handlers) storage(typ string, err error) {
	h.metrics.StorageRequests.WithLabelValues(typ, destination.Outcome(err)).Inc()
}

func target(d tasks.Dest) cloudflare.Target {
	return cloudflare.Target{Scope: d.Scope, ID: d.ScopeID}
}
