package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// Challenge handles logpush:challenge: POST .../logpush/ownership, then
// schedule the first poll.
func (h *handlers) Challenge(ctx context.Context, t *asynq.Task) error {
	return h.observe(ctx, t, h.challenge)
}

func (h *handlers) challenge(ctx context.Context, t *asynq.Task) error {
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
	if r.conf.TokenReadable() && h.leases.held() {
		loc = destination.For(r.conf, r.d.ReadAs, cloudflare.ChallengeFile(r.conf.Prefix, h.now()))
		held, rec, err := h.acquire(ctx, r, loc)
		if err != nil || !held {
			return err
		}
		record = rec
		if r.contended || record != "" {
			// A path another destination used or waits for: a task run
			// again after a crash, whose destination finished since (or
			// a newer challenge took over), must not challenge here. Its
			// token would be written later, on top of the next holder's,
			// which would take it for another destination's and poll
			// until its deadline (or, where claims do not decode, send
			// it). Superseded, enter lets the path go.
			if _, err := h.enter(ctx, r, events.Challenging, ""); err != nil {
				return err
			}
		}
	}
	if err := h.earlierWrite(ctx, r); err != nil {
		return err
	}
	if done, err := h.resume(ctx, r, loc); done {
		return err
	}
	if err := h.coldHold(r); err != nil {
		return err
	}
	// The budget first: a snooze for the budget is no attempt. A grant
	// where the request would fall wrong in its second for the file's date
	// to tell (skipRead's phase) goes to a validation waiting behind, and
	// the challenge takes the next: where challenges flow, paced by the
	// budget, those that fell wrong listed or read their paths first,
	// about one listing a second.
	accept := func() (bool, time.Duration) {
		if r.lease == "" || h.trustRecord(record) != "" {
			return true, 0
		}
		_, later, phased := h.skipRead(r, record, loc)
		return !phased, later
	}
	if err := h.waitTurn(ctx, r, accept); err != nil {
		return err
	}
	if r.lease != "" {
		// What the path holds now is not the file this challenge writes,
		// however recent it looks (S3 dates are whole seconds): read it,
		// unless the previous holder just did (trustRecord), a listing of
		// the bucket just did (fromListing), or the file's date will tell
		// (skipRead). A listing already taken goes first: it costs no
		// request, and a file's date that skipRead counted on may come
		// too early to tell, which costs a fresh challenge.
		if before = h.trustRecord(record); before == "" {
			if rec, ok := h.fromListing(ctx, r, record, loc, false); ok {
				before = rec
			} else if skip, wait, _ := h.skipRead(r, record, loc); skip {
				if err := h.sleep(ctx, wait); err != nil {
					return err
				}
				before = unread
			} else if rec, ok := h.fromListing(ctx, r, record, loc, true); ok {
				before = rec
			} else {
				rec, done, err := h.readBefore(ctx, r, loc)
				if done {
					return err
				}
				before = rec
			}
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
		return h.rec.outcome(ctx, r, events.AwaitingToken, res.Filename, nil)
	}
	deadline := requestedAt.Add(h.cfg.PollDeadline)
	st, err := h.enter(ctx, r, events.Polling, events.StageChallenge,
		"gen", r.d.Gen, "filename", r.clean(res.Filename), "requested_at", requestedAt.UnixNano())
	if err != nil {
		return err
	}
	pp := tasks.PollPayload{Dest: r.d, Filename: res.Filename, RequestedAt: requestedAt, Deadline: deadline, Lease: r.lease, Before: before,
		Contended: r.contended}
	look := h.firstLook(r)
	first := atOnce(look)
	inline := h.inlinePolls(ctx, r)
	first = h.coldFirst(r, requestedAt, first, inline)
	delay := first
	switch {
	case inline:
		delay += h.cfg.PollInline // the poll task only takes over from the polls below
	case first == 0 && firstRun(ctx):
		// At the learnt delay, under half a second: a look at once would
		// miss a file that takes a few hundred milliseconds. A stop that
		// cuts the wait short fails the look, and the poll task takes over.
		_ = h.sleep(ctx, look)
		var done bool
		if delay, done, err = h.lookFirst(ctx, r, &pp, st); done {
			return err
		}
	case h.onTime(r.d, delay):
		delay = NotEarly(delay)
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
func (h *handlers) inlinePolls(ctx context.Context, r *run) bool {
	return r.contended && h.cfg.PollInline > 0 && firstRun(ctx)
}

// firstRun says whether the task runs for the first time, not retried.
func firstRun(ctx context.Context) bool {
	retried, _ := asynq.GetRetryCount(ctx)
	return retried == 0
}

// lookFirst looks for the file of a challenge whose file is expected at
// once (the first poll is due now) in the challenge task itself, before
// any poll task: one task per destination instead of two where files come
// at once, 4 Redis round trips fewer (the poll task's enqueue, dequeue,
// stage entry and completion). done: the look ended the task with err
// (validated, failed, superseded, a fresh challenge asked). Otherwise the
// poll task takes over after delay: a miss's snooze, or, after a transient
// error, the poll task's retry of it (its retries and the poll deadline
// bound it, not the challenge task's: a retried challenge would ask
// again). Only a first run looks: a retried challenge task would spend its
// own retries.
func (h *handlers) lookFirst(ctx context.Context, r *run, pp *tasks.PollPayload, st ledger.DestState) (delay time.Duration, done bool, err error) {
	r.deadline, r.looks, pp.Looks = pp.Deadline, 1, 1
	err = h.look(ctx, r, *pp, st, st.Attempts.Poll+1)
	var s *SnoozeError
	switch {
	case errors.As(err, &s):
		return s.queueDelay(), false, nil
	case err == nil, errors.Is(err, errFailed), errors.Is(err, errSuperseded), errors.Is(err, asynq.SkipRetry):
		return 0, true, err
	}
	// Transient: the poll task retries it, as it would its own.
	return h.pollDelay(1), false, nil
}

// pollInline runs the poll of pp in this task, first after first, then as
// each answer says, for at most PollInline. The poll task enqueued after
// PollInline takes over when the file is not found by then, a poll fails
// transiently, or the worker stops; after an outcome it finds the
// destination finished.
func (h *handlers) pollInline(ctx context.Context, pp tasks.PollPayload, first time.Duration) {
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
func (h *handlers) firstPoll(r *run) time.Duration {
	return h.seen.firstPoll(h.pollFirst(r), h.cfg.PollMaxInterval, h.pollDelay)
}

// firstLook is firstPoll before it rounds below half a second to 0.
func (h *handlers) firstLook(r *run) time.Duration {
	return h.seen.firstLook(h.pollFirst(r), h.cfg.PollMaxInterval, h.pollDelay)
}

// pollFirst is the first poll's delay while no file was seen.
func (h *handlers) pollFirst(r *run) time.Duration {
	if r.contended {
		return min(h.cfg.PollFirst, h.cfg.PollContended)
	}
	return h.cfg.PollFirst
}

// rechallenge enqueues the next challenge generation, or fails the
// destination once MaxRechallenges fresh challenges were spent.
func (h *handlers) rechallenge(ctx context.Context, r *run, filename string, cause error) error {
	if r.d.Gen >= h.cfg.MaxRechallenges {
		return h.rec.fail(ctx, r, filename, fmt.Errorf("after %d fresh challenges: %w: %w", r.d.Gen, cause, asynq.SkipRetry))
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

// sleepCtx waits d, or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
