package producer

import (
	"context"
	"slices"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// Resumed is what Resume released.
type Resumed struct {
	// Credentials are the paused credentials released, by name.
	Credentials []string
	// Queues are the queues unpaused.
	Queues []string
}

// Resume releases what the workers paused after repeated authentication
// failures, once the cause is fixed: the credential named (its rows wake
// up), or every paused credential when credential is "", and the queues if
// they are paused (one queue_resumed event). The fleet's count of
// authentication failures starts again from zero.
func (p *Client) Resume(ctx context.Context, credential string) (Resumed, error) {
	var res Resumed
	if err := worker.ResetAuthFailures(ctx, p.rdb); err != nil {
		return res, err
	}
	names := []string{credential}
	if credential == "" {
		creds, err := worker.PausedCredentials(ctx, p.rdb)
		if err != nil {
			return res, err
		}
		names = names[:0]
		for n := range creds {
			names = append(names, n)
		}
		slices.Sort(names)
	}
	for _, n := range names {
		was, err := worker.ResumeCredential(ctx, p.rdb, n)
		if err != nil {
			return res, err
		}
		if was {
			res.Credentials = append(res.Credentials, n)
		}
	}
	var err error
	if res.Queues, err = worker.UnpauseQueues(p.insp); err != nil {
		return res, err
	}
	if err := worker.ForgetQueuePause(ctx, p.rdb); err != nil {
		return res, err
	}
	if len(res.Queues) == 0 {
		return res, nil
	}
	return res, p.store.Emit(ctx, events.Event{Event: events.QueueResumed, Time: p.cfg.Now().UTC()})
}
