package producer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/internal/events"
	"github.com/logpush-onboard/logpush-onboard/internal/input"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// Enqueuer is the part of the asynq client the producer uses.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Config sets how a batch is enqueued.
type Config struct {
	// BatchID names the batch. Default: derived from the file's
	// destinations, so the same file is the same batch.
	BatchID string
	// Source describes the input (a file name) in the batch record.
	Source string
	// Input sets the input format and the extra columns allowed.
	Input input.Options
	// CreateJob creates each destination's Logpush job after validation,
	// from the job columns of the input (tasks.JobColumns; dataset
	// required).
	CreateJob bool
	// Task sets the options of the enqueued tasks.
	Task tasks.Options
	// Concurrency is the number of enqueue round trips in flight. Default 16.
	Concurrency int
	// MaxErrors caps the line errors kept for the report. Default 1000.
	MaxErrors int
	// Logger; default discard.
	Logger *slog.Logger
	// Now; default time.Now.
	Now func() time.Time
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.MaxErrors <= 0 {
		c.MaxErrors = 1000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Task = c.Task.WithDefaults()
	c.Input.Extra = append(c.Input.Extra, tasks.ReadAsColumns...)
	if c.CreateJob {
		c.Input.Extra = append(c.Input.Extra, tasks.JobColumns...)
	}
	return c
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
	// Errors are the bad lines (at most MaxErrors); ErrorCount counts all.
	Errors     []*input.LineError
	ErrorCount int
}

// Result is what Enqueue did.
type Result struct {
	Plan
	// Enqueued challenge tasks.
	Enqueued int
	// NotRequired destinations, ended at once.
	NotRequired int
	// Known destinations: already in the batch (a duplicate line, or a re-run).
	Known int
	// Duplicates says, for lines already in the batch, which line has them.
	Duplicates []Duplicate
}

// Duplicate is a line whose destination the batch already had.
type Duplicate struct {
	Line, Of int
	State    string
}

var validBatchID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// ErrInvalid is returned when the file has bad lines: nothing was enqueued.
var ErrInvalid = errors.New("input has invalid lines; nothing was enqueued")

// Producer enqueues batches.
type Producer struct {
	enq   Enqueuer
	store *events.Store
	cfg   Config
}

// New returns a Producer.
func New(enq Enqueuer, store *events.Store, cfg Config) *Producer {
	return &Producer{enq: enq, store: store, cfg: cfg.WithDefaults()}
}

// Opener opens the input again for each pass.
type Opener func() (io.ReadCloser, error)

// Check reads the whole input once: counts, errors and the batch id.
func (p *Producer) Check(ctx context.Context, open Opener) (Plan, error) {
	plan := Plan{ByType: map[string]int{}}
	h := sha256.New()
	err := p.each(ctx, open, func(row input.Row, _ rowOptions) error {
		plan.Rows++
		plan.ByType[row.Conf.Type]++
		if row.Conf.NeedsChallenge() {
			plan.NeedChallenge++
		}
		h.Write([]byte(tasks.DestHash(row.Scope, row.ScopeID, row.Conf.Raw)))
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
	if plan.BatchID != "" && !validBatchID.MatchString(plan.BatchID) {
		return plan, fmt.Errorf("batch id %q: use 1 to 64 letters, digits, '.', '_' or '-'", plan.BatchID)
	}
	if plan.BatchID == "" {
		plan.BatchID = "b-" + hex.EncodeToString(h.Sum(nil))[:12]
	}
	return plan, nil
}

// Enqueue checks the input, then, if every line is good, enqueues the batch.
func (p *Producer) Enqueue(ctx context.Context, open Opener) (Result, error) {
	plan, err := p.Check(ctx, open)
	res := Result{Plan: plan}
	if err != nil {
		return res, err
	}
	if plan.ErrorCount > 0 {
		return res, ErrInvalid
	}
	now := p.cfg.Now()
	if err := p.store.CreateBatch(ctx, plan.BatchID, p.cfg.Source, now); err != nil {
		return res, err
	}

	// Rows go to workers by destination hash, so that repeated rows of one
	// destination are handled in file order: the later line is the
	// duplicate.
	shards := make([]chan item, p.cfg.Concurrency)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := range shards {
		shards[i] = make(chan item, 16)
		rows := shards[i]
		wg.Go(func() {
			for it := range rows {
				row := it.row
				out, dup, err := p.one(ctx, plan.BatchID, it, now)
				mu.Lock()
				switch {
				case err != nil:
					if firstErr == nil {
						firstErr = fmt.Errorf("line %d: %w", row.Line, err)
						cancel()
					}
				case dup != nil:
					res.Known++
					if len(res.Duplicates) < p.cfg.MaxErrors {
						res.Duplicates = append(res.Duplicates, *dup)
					}
				case out == events.NotRequired:
					res.NotRequired++
				default:
					res.Enqueued++
				}
				mu.Unlock()
			}
		})
	}
	err = p.each(ctx, open, func(row input.Row, opt rowOptions) error {
		h := fnv.New32a()
		h.Write([]byte(row.Scope + row.ScopeID + row.Conf.Raw))
		select {
		case shards[h.Sum32()%uint32(len(shards))] <- item{row, opt}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, func(*input.LineError) {})
	for _, c := range shards {
		close(c)
	}
	wg.Wait()
	if firstErr != nil {
		return res, firstErr
	}
	if err != nil {
		return res, err
	}
	p.cfg.Logger.Info("batch enqueued", "batch_id", plan.BatchID, "rows", plan.Rows, "enqueued", res.Enqueued,
		"not_required", res.NotRequired, "known", res.Known)
	return res, nil
}

// one records and enqueues one destination. The task is enqueued before the
// destination is registered: a crash in between leaves a task whose TaskID
// a re-run finds, never a registered destination without a task.
// item is a good input row and the job it asks for, if any.
type item struct {
	row input.Row
	opt rowOptions
}

// rowOptions are what a row's optional columns ask for.
type rowOptions struct {
	job    *tasks.JobSpec
	readAs *tasks.ReadAs
}

func (p *Producer) one(ctx context.Context, batch string, it item, now time.Time) (string, *Duplicate, error) {
	row := it.row
	d := tasks.Dest{BatchID: batch, Scope: row.Scope, ScopeID: row.ScopeID, DestinationConf: row.Conf.Raw, EnqueuedAt: now,
		Job: it.opt.job, ReadAs: it.opt.readAs}
	key := events.Key{Batch: batch, Hash: d.Hash()}
	st, err := p.store.Get(ctx, key)
	switch {
	case err == nil:
		return "", &Duplicate{Line: row.Line, Of: st.Line, State: st.State}, nil
	case !errors.Is(err, events.ErrNotFound):
		return "", nil, err
	}
	meta := events.Meta{Line: row.Line, Scope: row.Scope, ScopeID: row.ScopeID, Destination: row.Conf.Redacted(),
		Type: row.Conf.Type, EnqueuedAt: now}
	if !row.Conf.NeedsChallenge() {
		if ex, err := p.store.Register(ctx, key, meta); err != nil || ex != nil {
			return "", dupOf(row, ex), err
		}
		ev := &events.Event{
			Event: events.NotRequired, BatchID: batch, Scope: row.Scope, ScopeID: row.ScopeID,
			Destination: row.Conf.Redacted(), DestinationType: row.Conf.Type, Time: now.UTC(), Line: row.Line,
		}
		_, err := p.store.Transition(ctx, key, events.NotRequired, ev, "")
		return events.NotRequired, nil, err
	}
	task, err := tasks.NewChallengeTask(d, p.cfg.Task)
	if err != nil {
		return "", nil, err
	}
	if _, err := p.enq.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return "", nil, fmt.Errorf("enqueue: %w", err)
	}
	ex, err := p.store.Register(ctx, key, meta)
	return events.Queued, dupOf(row, ex), err
}

func dupOf(row input.Row, ex *events.Existing) *Duplicate {
	if ex == nil {
		return nil
	}
	return &Duplicate{Line: row.Line, Of: ex.Line, State: ex.State}
}

// each reads every row of the input, calling ok for good rows and bad for
// line errors.
func (p *Producer) each(ctx context.Context, open Opener, ok func(input.Row, rowOptions) error, bad func(*input.LineError)) error {
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	r := input.NewReader(rc, p.cfg.Input)
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
func (p *Producer) options(row input.Row) (rowOptions, *tasks.FieldError) {
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
	return opt, nil
}
