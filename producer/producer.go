package producer

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/input"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// enqueuer is the part of the asynq client the producer uses.
type enqueuer interface {
	EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// ClientConfig configures a Client: how it reads an input and enqueues its
// batch. The zero value takes every default.
type ClientConfig struct {
	// BatchID names the batch. Default: derived from the file's
	// destinations, so the same file is the same batch.
	BatchID string
	// Source describes the input (a file name) in the batch record.
	Source string
	// Format is the input's format. Default FormatAuto: JSONL if the
	// input starts with '{', CSV otherwise.
	Format tasks.Format
	// Columns lists extra columns (CSV) or keys (JSONL) to allow besides
	// zone_id, account_id, destination_conf, the read-as columns
	// (tasks.ReadAsColumns) and, with CreateJob, the job columns
	// (tasks.JobColumns); they are read and ignored. Default: none.
	Columns []string
	// Credentials, when set, are the credential names rows may give in
	// their credential column (names only, never a secret): another name
	// is a line error, and so is a row naming none without a default.
	// nil: a name is only checked to be one. The name travels in the
	// tasks (tasks.Dest.Credential).
	Credentials *tasks.CredentialNames
	// CreateJob creates each destination's Logpush job after validation,
	// from the job columns of the input (tasks.JobColumns; dataset
	// required).
	CreateJob bool
	// Migrate reads each row as an existing job that moves to the row's
	// destination_conf (the migrate command): the columns
	// tasks.MigrateColumns, job_id required. After validation (or at
	// once, for a conf that needs no challenge) the job is read and
	// updated with the new conf and every other setting as read.
	Migrate bool
	// Copy, with Migrate, creates a second job like each row's on the new
	// conf instead of moving it.
	Copy bool
	// Task sets the options of the enqueued tasks.
	Task tasks.Options
	// Concurrency is the number of enqueue round trips in flight. Default
	// ConcurrencyDefault.
	Concurrency int
	// ChunkSize is the number of rows whose state lookups, and whose
	// registrations, go to Redis in one pipelined round trip. Default
	// ChunkSizeDefault.
	ChunkSize int
	// MaxErrors caps the line errors kept in a Plan. Default
	// MaxErrorsDefault.
	MaxErrors int
	// Budget, when set, schedules the challenges at the pace of the API
	// budgets the workers share in Redis instead of all at once, so that
	// polls and validations do not queue behind a whole batch of
	// challenges: the client settles each budget's rate with the stored one
	// on first use (Enqueue and Retry settle Credentials' first, before they
	// write anything) and keeps its pacer. nil, and no Pacer: all at once.
	Budget *BudgetConfig
	// Pacer, when set, schedules every challenge with this pacer of one's
	// own instead of Budget's (give one or the other).
	Pacer Pacer
	// Skip, when set, leaves out the good rows whose destination (Scope,
	// ScopeID, DestinationConf, Line, Job and Update, so that its Hash is
	// the ledger's; BatchID and the rest unset) it
	// returns true for: they count in the plan and the batch id, but are
	// not enqueued (run skips the destinations its journal has finished).
	// nil: none.
	Skip func(tasks.Dest) bool
	// Watch, when set, names the job of a destination that has one
	// already, validated by an earlier run that was stopped before the
	// job's health was read (run resuming from its journal): the
	// destination is enqueued for the worker to watch that job (a health
	// task, from state queued to watching to its health outcome) instead
	// of being challenged again. It gets the destination as Skip does.
	// WatchFor is how long the watch lasts (the workers' health deadline).
	Watch    func(tasks.Dest) (Watch, bool)
	WatchFor time.Duration
	// Logger; default discard.
	Logger *slog.Logger
	// Now; default time.Now.
	Now func() time.Time
}

// Defaults of ClientConfig.
const (
	ConcurrencyDefault = 16
	ChunkSizeDefault   = 256
	MaxErrorsDefault   = 1000
)

// WithDefaults fills unset fields.
func (c ClientConfig) WithDefaults() ClientConfig {
	c.Concurrency = cmp.Or(c.Concurrency, ConcurrencyDefault)
	c.ChunkSize = cmp.Or(c.ChunkSize, ChunkSizeDefault)
	c.MaxErrors = cmp.Or(c.MaxErrors, MaxErrorsDefault)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Task = c.Task.WithDefaults()
	return c
}

// validate refuses settings that cannot work, naming the field.
func (c ClientConfig) validate() error {
	switch {
	case c.BatchID != "" && !validBatchID.MatchString(c.BatchID):
		return fmt.Errorf("batch id %q: use 1 to 64 letters, digits, '.', '_' or '-'", c.BatchID)
	case c.Concurrency < 0:
		return fmt.Errorf("concurrency %d: must not be negative", c.Concurrency)
	case c.ChunkSize < 0:
		return fmt.Errorf("chunk size %d: must not be negative", c.ChunkSize)
	case c.MaxErrors < 0:
		return fmt.Errorf("max errors %d: must not be negative", c.MaxErrors)
	case c.Task.MaxRetry < 0:
		return fmt.Errorf("task max retry %d: must not be negative", c.Task.MaxRetry)
	case c.Task.Retention < 0:
		return fmt.Errorf("task retention %s: must not be negative", c.Task.Retention)
	case c.Migrate && c.CreateJob:
		return errors.New("migrate and create job: choose one")
	case c.Copy && !c.Migrate:
		return errors.New("copy without migrate")
	case c.Format < tasks.FormatAuto || c.Format > tasks.FormatJSONL:
		return fmt.Errorf("format %s: want FormatAuto, FormatCSV or FormatJSONL", c.Format)
	case c.Budget != nil && c.Pacer != nil:
		return errors.New("budget and pacer: choose one")
	case c.Budget != nil:
		return c.Budget.validate()
	}
	return nil
}

// input is the input reader's options: the format and the columns
// allowed.
func (c ClientConfig) input() input.Options {
	extra := append(slices.Clip(c.Columns), tasks.ReadAsColumns...)
	if c.CreateJob {
		extra = append(extra, tasks.JobColumns...)
	}
	if c.Migrate {
		extra = append(extra, tasks.MigrateColumns...)
	}
	return input.Options{Format: c.Format, Extra: extra, Credentials: c.Credentials}
}

// Plan is what a validated file would do.
type Plan struct {
	BatchID string
	// Rows is the number of destination lines read.
	Rows int
	// ByType counts destinations per destination type.
	ByType map[string]int
	// NeedChallenge counts the destinations that need an ownership challenge.
	NeedChallenge int
	// Jobs counts the rows that get a Logpush job (ClientConfig.CreateJob).
	Jobs int
	// Errors are the bad lines (at most MaxErrors); ErrorCount counts all.
	Errors     []*tasks.LineError
	ErrorCount int
}

// Result is what Enqueue did.
type Result struct {
	Plan
	// Enqueued challenge tasks, and job tasks of destinations that need no
	// challenge (ClientConfig.CreateJob).
	Enqueued int
	// NotRequired destinations, ended at once.
	NotRequired int
	// Known destinations: already in the batch (a duplicate line, or a re-run).
	Known int
	// Skipped rows: left out by ClientConfig.Skip.
	Skipped int
	// Duplicates says, for lines already in the batch, which line has them.
	Duplicates []Duplicate
}

// Duplicate is a line whose destination the batch already had.
type Duplicate struct {
	Line, Of int
	State    events.State
}

var validBatchID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ErrInvalid is returned when the file has bad lines: nothing was enqueued.
var ErrInvalid = errors.New("input has invalid lines; nothing was enqueued")

// ErrNoDestinations is returned for an input without a single row (empty,
// or a CSV header only): no batch is created.
var ErrNoDestinations = errors.New("no destinations: the input has no rows")

// ErrNoRedis is returned by NewClient without a Redis client.
var ErrNoRedis = errors.New("producer: no redis client")

// Client is the producing side of the pipeline, built once per process on
// the Redis the workers (worker.New) share: it owns the events store
// (destination states, batch counters, the events stream), the asynq client
// that enqueues the tasks and the inspector that resumes the queues, and
// the pacers of the API budgets (ClientConfig.Budget). In flow
// order, it checks an input (Check), enqueues it as a batch (Enqueue),
// reports on it (BatchStatus, Events), takes the tokens an operator
// submits (SubmitToken), re-enqueues its failed destinations (Retry) and
// resumes the queue the workers paused (Resume).
type Client struct {
	rdb   redis.UniversalClient
	enq   enqueuer
	insp  *asynq.Inspector
	store *ledger.Store
	cfg   ClientConfig
	// pacer is the pacer of a credential's rows ("" for none); nil: no
	// pacing.
	pacer func(ctx context.Context, credential string) (Pacer, error)
	// perCredential: pacer tells the credentials apart (Budget.Named);
	// otherwise one reservation paces all the rows of a chunk, in order.
	perCredential bool
}

// NewClient returns a Client on rdb, or an error naming the setting of cfg
// that cannot work; nil cfg takes every default. Close it when done; rdb
// stays open (it is the caller's).
func NewClient(rdb redis.UniversalClient, cfg *ClientConfig) (*Client, error) {
	if rdb == nil {
		return nil, ErrNoRedis
	}
	if cfg == nil {
		cfg = &ClientConfig{}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return newClient(rdb, asynq.NewClientFromRedisClient(rdb), ledger.NewStore(rdb, ledger.Config{}), *cfg), nil
}

// newClient is a Client with enq and store on rdb, and cfg's pacing.
func newClient(rdb redis.UniversalClient, enq enqueuer, store *ledger.Store, cfg ClientConfig) *Client {
	c := &Client{rdb: rdb, enq: enq, store: store, cfg: cfg.WithDefaults()}
	if rdb != nil {
		c.insp = asynq.NewInspectorFromRedisClient(rdb)
	}
	switch {
	case cfg.Budget != nil:
		c.pacer = (&budgets{rdb: rdb, cfg: *cfg.Budget, log: cmp.Or(cfg.Budget.Logger, c.cfg.Logger)}).pacer
		c.perCredential = cfg.Budget.Named.Len() > 0
	case cfg.Pacer != nil:
		c.pacer = func(context.Context, string) (Pacer, error) { return cfg.Pacer, nil }
	}
	return c
}

// settleBudget settles the budget of the rows that name no credential,
// so that a conflicting rate is refused before anything is written.
func (p *Client) settleBudget(ctx context.Context) error {
	if p.cfg.Budget == nil {
		return nil
	}
	_, err := p.pacer(ctx, "")
	return err
}

// Check reads the whole input once, without Redis: counts, line errors and
// the batch id that Enqueue would use. It is Client.Check for a program
// that does not enqueue (yet).
func Check(ctx context.Context, open Opener, cfg ClientConfig) (Plan, error) {
	if err := cfg.validate(); err != nil {
		return Plan{}, err
	}
	return (&Client{cfg: cfg.WithDefaults()}).check(ctx, open, nil)
}

// CheckEach is Check that also calls fn with each good row's destination,
// in input order (BatchID, EnqueuedAt and Round unset; its Hash is the
// ledger's key of it): run lists the current input's destinations in the
// same pass. An error of fn stops the pass and is returned.
func CheckEach(ctx context.Context, open Opener, cfg ClientConfig, fn func(tasks.Dest) error) (Plan, error) {
	if err := cfg.validate(); err != nil {
		return Plan{}, err
	}
	return (&Client{cfg: cfg.WithDefaults()}).check(ctx, open, fn)
}

// Close ends the client's use of Redis. Its asynq client and inspector
// share the caller's connection, which stays open.
func (p *Client) Close() error { return nil }

// Ledger is the client's events store, for this module's commands that
// read a batch in more detail than BatchStatus and Events give.
func (p *Client) Ledger() *ledger.Store { return p.store }

// Opener opens the input again for each pass.
type Opener func() (io.ReadCloser, error)

// Check reads the whole input once: counts, errors and the batch id.
func (p *Client) Check(ctx context.Context, open Opener) (Plan, error) {
	return p.check(ctx, open, nil)
}

// check is Check, calling fn, if set, with each good row's destination.
func (p *Client) check(ctx context.Context, open Opener, fn func(tasks.Dest) error) (Plan, error) {
	plan := Plan{ByType: map[string]int{}}
	h := sha256.New()
	err := p.each(ctx, open, func(row input.Row, opt rowOptions) error {
		plan.Rows++
		plan.ByType[row.Conf.Type]++
		if row.Conf.NeedsChallenge() {
			plan.NeedChallenge++
		}
		if opt.job != nil || opt.update != nil {
			plan.Jobs++
		}
		d := item{row, opt}.dest()
		h.Write([]byte(d.Hash()))
		if fn != nil {
			return fn(d)
		}
		return nil
	}, func(le *input.LineError) {
		plan.ErrorCount++
		if len(plan.Errors) < p.cfg.MaxErrors {
			plan.Errors = append(plan.Errors, le)
		}
	})
	if err != nil {
		return plan, err
	}
	plan.BatchID = p.cfg.BatchID
	if plan.BatchID == "" {
		plan.BatchID = "b-" + hex.EncodeToString(h.Sum(nil))[:12]
	}
	return plan, nil
}

// Enqueue checks the input, then, if every line is good, enqueues the batch.
func (p *Client) Enqueue(ctx context.Context, open Opener) (Result, error) {
	plan, err := p.Check(ctx, open)
	if err != nil {
		return Result{Plan: plan}, err
	}
	return p.EnqueuePlan(ctx, open, plan)
}

// EnqueuePlan is Enqueue for a caller that has already run Check on the
// same input (to show its line errors before slower checks): the input is
// read once more, to enqueue.
func (p *Client) EnqueuePlan(ctx context.Context, open Opener, plan Plan) (Result, error) {
	res := Result{Plan: plan}
	var err error
	if plan.ErrorCount > 0 {
		return res, ErrInvalid
	}
	if plan.Rows == 0 {
		return res, ErrNoDestinations
	}
	if err := p.settleBudget(ctx); err != nil {
		return res, err
	}
	now := p.cfg.Now()
	if err := p.store.CreateBatch(ctx, plan.BatchID, p.cfg.Source, now); err != nil {
		return res, err
	}

	// Rows go in chunks of ChunkSize, one after the other, so that the
	// later line of a destination repeated across chunks finds the earlier
	// one registered; within a chunk, the later line is the duplicate.
	chunk := make([]item, 0, p.cfg.ChunkSize)
	var chunkErr error
	err = p.each(ctx, open, func(row input.Row, opt rowOptions) error {
		if p.cfg.Skip != nil && p.cfg.Skip(item{row, opt}.dest()) {
			res.Skipped++
			return nil
		}
		chunk = append(chunk, item{row, opt})
		if len(chunk) < p.cfg.ChunkSize {
			return nil
		}
		chunkErr = p.enqueueChunk(ctx, plan.BatchID, chunk, now, &res)
		chunk = chunk[:0]
		return chunkErr
	}, func(*input.LineError) {})
	// The rows read so far go in, even if reading failed on: a line's
	// error comes first.
	if chunkErr == nil && len(chunk) > 0 && ctx.Err() == nil {
		if cerr := p.enqueueChunk(ctx, plan.BatchID, chunk, now, &res); cerr != nil {
			return res, cerr
		}
	}
	if err == nil {
		err = ctx.Err() // cancelled at the end of the input: the last chunk did not go in
	}
	if err != nil {
		return res, err
	}
	p.cfg.Logger.Info("batch enqueued", "batch_id", plan.BatchID, "rows", plan.Rows, "enqueued", res.Enqueued,
		"not_required", res.NotRequired, "known", res.Known)
	return res, nil
}

// item is a good input row and the job it asks for, if any.
type item struct {
	row input.Row
	opt rowOptions
}

// dest is the destination of a good row as every pass reads it (its hash
// is the ledger's key of it); BatchID, EnqueuedAt and Round unset.
func (it item) dest() tasks.Dest {
	return tasks.Dest{Scope: it.row.Scope, ScopeID: it.row.ScopeID, DestinationConf: it.row.Conf.Raw, Line: it.row.Line,
		Job: it.opt.job, ReadAs: it.opt.readAs, Update: it.opt.update, Credential: it.row.Credential}
}

// rowOptions are what a row's optional columns ask for.
type rowOptions struct {
	job    *tasks.JobSpec
	readAs *tasks.ReadAs
	update *tasks.JobUpdate
}

// slot is one row of a chunk on its way.
// Watch is the job of a destination to watch rather than challenge
// (ClientConfig.Watch): its id, whether it existed before its batch, and
// the challenge file's name that validated it, for the events.
type Watch struct {
	JobID      int
	JobExisted bool
	Filename   string
}

type slot struct {
	it  item
	d   tasks.Dest
	key ledger.Key
	// first is the index of the chunk's earlier row of the same
	// destination, or -1.
	first int
	// dup is set when the batch already had the destination.
	dup  *Duplicate
	meta ledger.Meta
	// delay: when the challenge is due (ClientConfig.Budget).
	delay time.Duration
	// watch: the job to watch instead of a challenge (ClientConfig.Watch).
	watch *Watch
	// ready: enqueued (or needs no task), to be registered.
	ready bool
	// outcome is events.Queued or events.NotRequired once recorded.
	outcome events.State
	err     error
}

// enqueueChunk records and enqueues the rows of one chunk, in three or four
// round trips plus one per task:
//
//  1. one pipeline reads what the batch already has of each destination;
//  2. each new destination that needs a challenge gets its task, and each
//     that needs none but gets a job its job task, Concurrency enqueues in
//     flight (a TaskID conflict means it was already enqueued);
//  3. one pipeline registers the new destinations, challenges only once
//     enqueued: a crash before it leaves tasks whose TaskID a re-run finds
//     (the worker registers a destination it does not find, at its task's
//     line), never a registered destination without a task;
//  4. one pipeline ends the new destinations that need no challenge and
//     get no job, if any.
//
// It counts the rows in res and returns the error of the first line that
// failed, if any.
func (p *Client) enqueueChunk(ctx context.Context, batch string, items []item, now time.Time, res *Result) error {
	slots := make([]slot, len(items))
	seen := make(map[string]int, len(items))
	look := make([]ledger.Key, 0, len(items))
	lookIdx := make([]int, 0, len(items))
	for i, it := range items {
		s := &slots[i]
		s.it = it
		s.d = it.dest()
		if p.cfg.Watch != nil {
			if w, ok := p.cfg.Watch(s.d); ok {
				s.watch = &w
			}
		}
		s.d.BatchID, s.d.EnqueuedAt = batch, now
		s.key = ledger.Key{Batch: batch, Hash: s.d.Hash()}
		if j, ok := seen[s.key.Hash]; ok {
			s.first = j
			continue
		}
		s.first = -1
		seen[s.key.Hash] = i
		look = append(look, s.key)
		lookIdx = append(lookIdx, i)
	}

	// 1. What the batch already has.
	states, errs := p.store.StatesOf(ctx, look)
	work := make([]int, 0, len(lookIdx))
	for j, i := range lookIdx {
		s := &slots[i]
		switch {
		case errs != nil && errs[j] != nil:
			s.err = errs[j]
		case states[j] != nil:
			s.dup = &Duplicate{Line: s.it.row.Line, Of: states[j].Line, State: states[j].State}
		default:
			work = append(work, i)
		}
	}
	if errs != nil {
		work = nil // the chunk fails: enqueue nothing more
	}
	if err := p.pace(ctx, slots, work); err != nil {
		slots[work[0]].err = err
		work = nil
	}

	// 2. The tasks.
	p.enqueueTasks(ctx, slots, work, now)

	// 3. Register.
	regs := make([]ledger.Registration, 0, len(work))
	regIdx := make([]int, 0, len(work))
	for _, i := range work {
		if slots[i].ready {
			regs = append(regs, ledger.Registration{Key: slots[i].key, Meta: slots[i].meta})
			regIdx = append(regIdx, i)
		}
	}
	var moves []ledger.Move
	var moveIdx []int
	if len(regs) > 0 {
		exs, errs := p.store.RegisterMany(ctx, regs)
		for j, i := range regIdx {
			s := &slots[i]
			row := s.it.row
			switch {
			case errs != nil && errs[j] != nil:
				s.err = errs[j]
			case exs[j] != nil:
				s.dup = dupOf(row, exs[j])
			case row.Conf.NeedsChallenge() || s.d.Job != nil || s.d.Update != nil || s.watch != nil:
				s.outcome = events.Queued
			default:
				moves = append(moves, ledger.Move{Key: s.key, State: events.NotRequired, Event: &events.Event{
					Event: events.NotRequired, BatchID: batch, Scope: row.Scope, ScopeID: row.ScopeID,
					Destination: s.meta.Destination, DestinationType: row.Conf.Type, Time: now.UTC(), Line: row.Line,
				}})
				moveIdx = append(moveIdx, i)
			}
		}
	}

	// 4. End the destinations that need no challenge.
	if len(moves) > 0 {
		_, errs := p.store.TransitionMany(ctx, moves)
		for j, i := range moveIdx {
			if errs != nil && errs[j] != nil {
				slots[i].err = errs[j]
			} else {
				slots[i].outcome = events.NotRequired
			}
		}
	}

	// Count, in file order.
	var firstErr error
	for i := range slots {
		s := &slots[i]
		if s.first >= 0 {
			f := &slots[s.first]
			switch {
			case f.dup != nil:
				s.dup = &Duplicate{Line: s.it.row.Line, Of: f.dup.Of, State: f.dup.State}
			case f.outcome != "":
				s.dup = &Duplicate{Line: s.it.row.Line, Of: f.it.row.Line, State: f.outcome}
			}
		}
		switch {
		case s.err != nil:
			if firstErr == nil {
				firstErr = fmt.Errorf("line %d: %w", s.it.row.Line, s.err)
			}
		case s.dup != nil:
			res.Known++
			if len(res.Duplicates) < p.cfg.MaxErrors {
				res.Duplicates = append(res.Duplicates, *s.dup)
			}
		case s.outcome == events.NotRequired:
			res.NotRequired++
		case s.outcome == events.Queued:
			res.Enqueued++
		}
	}
	if firstErr == nil {
		return ctx.Err() // cancelled: rows may not have been reached
	}
	return firstErr
}

// pace sets the due times of the challenges among work, in file order,
// reserving the slots of each credential's rows from its own pacer.
func (p *Client) pace(ctx context.Context, slots []slot, work []int) error {
	if p.pacer == nil {
		return nil
	}
	var order []string
	need := map[string][]int{}
	for _, i := range work {
		if slots[i].it.row.Conf.NeedsChallenge() && slots[i].watch == nil {
			c := ""
			if p.perCredential {
				c = slots[i].d.Credential
			}
			if _, ok := need[c]; !ok {
				order = append(order, c)
			}
			need[c] = append(need[c], i)
		}
	}
	for _, c := range order {
		pacer, err := p.pacer(ctx, c)
		if err != nil {
			return err
		}
		if pacer == nil {
			continue
		}
		off, err := pacer.Reserve(ctx, len(need[c]))
		if err != nil {
			return err
		}
		for k, i := range need[c] {
			slots[i].delay = off + time.Duration(k)*pacer.Interval()
		}
	}
	return nil
}

// enqueueTasks builds the records of the slots work names and enqueues the
// tasks of those that need a challenge, Concurrency at a time, marking the
// slots ready to register. The first failure stops the rest: it is the
// failing slot's err; the slots not reached stay not ready, without error.
func (p *Client) enqueueTasks(ctx context.Context, slots []slot, work []int, now time.Time) {
	if len(work) == 0 {
		return
	}
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	failed := false
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(p.cfg.Concurrency, len(work)) {
		wg.Go(func() {
			for {
				n := int(next.Add(1)) - 1
				if n >= len(work) || ectx.Err() != nil {
					return
				}
				s := &slots[work[n]]
				err := p.enqueueOne(ectx, s, now)
				if err == nil {
					s.ready = true
					continue
				}
				mu.Lock()
				if !failed {
					failed = true
					s.err = err
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// enqueueOne builds a new destination's record and enqueues its first
// task: the challenge, or, for a destination that needs none but gets a
// job, the job at once.
func (p *Client) enqueueOne(ctx context.Context, s *slot, now time.Time) error {
	row := s.it.row
	s.meta = ledger.Meta{Line: row.Line, Scope: row.Scope, ScopeID: row.ScopeID, Destination: row.Conf.Redacted(),
		Type: row.Conf.Type, EnqueuedAt: now, Credential: row.Credential}
	var task *asynq.Task
	var err error
	switch {
	case s.watch != nil:
		task, err = tasks.NewHealthTask(tasks.HealthPayload{Dest: s.d, JobID: s.watch.JobID, JobExisted: s.watch.JobExisted,
			Filename: s.watch.Filename, Deadline: now.Add(p.cfg.WatchFor)}, p.cfg.Task, 0)
	case row.Conf.NeedsChallenge():
		task, err = tasks.NewChallengeTask(s.d, p.cfg.Task, s.delay)
	case s.d.Job != nil:
		task, err = tasks.NewCreateJobTask(tasks.CreateJobPayload{Dest: s.d}, p.cfg.Task)
	case s.d.Update != nil:
		task, err = tasks.NewUpdateJobTask(tasks.UpdateJobPayload{Dest: s.d}, p.cfg.Task)
	default:
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := p.enq.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue: %w", err)
	}
	return nil
}

func dupOf(row input.Row, ex *ledger.Existing) *Duplicate {
	if ex == nil {
		return nil
	}
	return &Duplicate{Line: row.Line, Of: ex.Line, State: ex.State}
}

// each reads every row of the input, calling ok for good rows and bad for
// line errors.
func (p *Client) each(ctx context.Context, open Opener, ok func(input.Row, rowOptions) error, bad func(*input.LineError)) error {
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	r := input.NewReader(rc, p.cfg.input())
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		row, err := r.Next()
		var le *input.LineError
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case errors.As(err, &le):
			bad(le)
		case err != nil:
			return err
		default:
			opt, fe := p.options(row)
			if fe != nil {
				bad(&input.LineError{Line: row.Line, Field: fe.Field, Err: errors.New(fe.Msg)})
				continue
			}
			if err := ok(row, opt); err != nil {
				return err
			}
		}
	}
}

// options reads a row's optional columns.
func (p *Client) options(row input.Row) (rowOptions, *tasks.FieldError) {
	var opt rowOptions
	var fe *tasks.FieldError
	var err error
	if opt.readAs, err = tasks.ParseReadAs(row.Extra); errors.As(err, &fe) {
		return opt, fe
	}
	if p.cfg.CreateJob {
		if opt.job, err = tasks.ParseJobSpec(row.Extra); errors.As(err, &fe) {
			return opt, fe
		}
	}
	if p.cfg.Migrate {
		if opt.update, err = tasks.ParseJobUpdate(row.Extra); errors.As(err, &fe) {
			return opt, fe
		}
		opt.update.Copy = p.cfg.Copy
	}
	return opt, nil
}
