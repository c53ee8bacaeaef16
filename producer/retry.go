package producer

import (
	"context"
	"fmt"
	"slices"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/input"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
)

// RetryResult is what Retry did.
type RetryResult struct {
	// Failed counts the batch's failed destinations.
	Failed int
	// Retried counts those enqueued again.
	Retried int
	// Lost are the batch lines of the failed destinations that the input
	// no longer has (the file changed): they were not retried.
	Lost []int
}

// Retry enqueues the failed destinations of batch again, each in a new
// round, from the input it was enqueued from (read with the client's
// ClientConfig, as Enqueue reads it): a failed task is not kept, since its
// payload holds the conf's secrets. Each goes the way Enqueue sends a new
// destination: a challenge, paced as Enqueue paces them, or, for a
// destination that needs none, its job at once. A bad line makes it
// return an error wrapping ErrInvalid, and nothing is retried.
func (p *Client) Retry(ctx context.Context, batch string, open Opener) (RetryResult, error) {
	var res RetryResult
	if err := p.settleBudget(ctx); err != nil {
		return res, err
	}
	if _, err := p.store.Batch(ctx, batch); err != nil {
		return res, err
	}
	failed := map[string]ledger.DestState{}
	if err := p.store.Dests(ctx, batch, func(h string, st ledger.DestState) error {
		if st.State == events.Failed {
			failed[h] = st
		}
		return nil
	}); err != nil {
		return res, err
	}
	res.Failed = len(failed)
	if len(failed) == 0 {
		return res, nil
	}
	now := p.cfg.Now()
	var slots []slot
	bad := 0
	err := p.each(ctx, open, func(row input.Row, opt rowOptions) error {
		d := item{row, opt}.dest()
		d.BatchID, d.EnqueuedAt = batch, now
		h := d.Hash()
		st, ok := failed[h]
		if !ok {
			return nil
		}
		delete(failed, h) // a repeated row is the same destination
		d.Line, d.Round = st.Line, st.Round+1
		slots = append(slots, slot{it: item{row, opt}, d: d, key: ledger.Key{Batch: batch, Hash: h}})
		return nil
	}, func(*input.LineError) { bad++ })
	if err == nil && bad > 0 {
		err = fmt.Errorf("%d bad lines: %w", bad, ErrInvalid)
	}
	if err != nil {
		return res, err
	}
	for _, st := range failed {
		res.Lost = append(res.Lost, st.Line)
	}
	slices.Sort(res.Lost)

	work := make([]int, len(slots))
	for i := range slots {
		work[i] = i
	}
	if err := p.pace(ctx, slots, work); err != nil {
		return res, err
	}
	p.enqueueTasks(ctx, slots, work, now)
	// Reopen once enqueued: a crash in between leaves a task of a newer
	// round, which a re-run finds by its TaskID.
	var firstErr error
	for i := range slots {
		s := &slots[i]
		if s.err != nil && firstErr == nil {
			firstErr = fmt.Errorf("line %d: %w", s.d.Line, s.err)
		}
		if !s.ready {
			continue
		}
		if _, err := p.store.Reopen(ctx, s.key, s.d.Round); err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("line %d: %w", s.d.Line, err)
			}
			continue
		}
		res.Retried++
	}
	if firstErr != nil {
		return res, firstErr
	}
	return res, ctx.Err()
}
