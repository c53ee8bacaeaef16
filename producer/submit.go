package producer

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// SubmitToken enqueues the validation of token, the ownership token an
// operator read where the workers cannot (Sumo Logic's HTTP source), for
// the destination d of batch d.BatchID that awaits it: d gives Scope,
// ScopeID and DestinationConf exactly as enqueued, Job for a batch enqueued
// with CreateJob, and Credential, when set, the credential the batch
// recorded for it (unset: the recorded one). It returns the challenges the
// destination had so far: one more later means Cloudflare rejected the
// token and the worker challenged again.
func (p *Client) SubmitToken(ctx context.Context, d tasks.Dest, token string) (int, error) {
	st, err := p.store.Get(ctx, ledger.Key{Batch: d.BatchID, Hash: d.Hash()})
	if errors.Is(err, ledger.ErrNotFound) {
		return 0, fmt.Errorf("batch %s has no such destination (scope id, destination_conf and, with --create-job, the job columns must be exactly as enqueued)", d.BatchID)
	}
	if err != nil {
		return 0, err
	}
	if st.State != events.AwaitingToken {
		return 0, fmt.Errorf("destination is %s, not awaiting a token", st.State)
	}
	// The ledger knows the row's credential (a batch enqueued before it
	// recorded them does not: then the given name stands).
	switch {
	case d.Credential == "":
		d.Credential = st.Credential
	case st.Credential != "" && st.Credential != d.Credential:
		return 0, fmt.Errorf("credential: the destination was enqueued under credential %q, not %q (leave the credential out: the batch knows it)", st.Credential, d.Credential)
	}
	d.Line, d.Gen, d.Round, d.EnqueuedAt = st.Line, st.Gen, st.Round, st.EnqueuedAt
	task, err := tasks.NewValidateTask(tasks.ValidatePayload{Dest: d, Filename: st.Filename, Token: token}, p.cfg.Task)
	if err != nil {
		return 0, err
	}
	if _, err := p.enq.EnqueueContext(ctx, task); errors.Is(err, asynq.ErrTaskIDConflict) {
		return 0, errors.New("a token was already submitted for this challenge; wait for its outcome (events, status)")
	} else if err != nil {
		return 0, err
	}
	return st.Attempts.Challenge, nil
}
