package producer

import (
	"context"

	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
)

// Enqueuer is enqueuer, for the tests' failing and counting clients.
type Enqueuer = enqueuer

// NewWith returns a Client on enq and store, for tests that replace the
// asynq client or run Check without Redis (nil, nil).
func NewWith(enq Enqueuer, store *ledger.Store, cfg ClientConfig) *Client {
	return newClient(nil, enq, store, cfg)
}

// NewWithPacers is NewWith pacing each credential's rows with pacers.
func NewWithPacers(enq Enqueuer, store *ledger.Store, cfg ClientConfig, pacers func(credential string) (Pacer, error)) *Client {
	c := NewWith(enq, store, cfg)
	c.pacer = func(_ context.Context, credential string) (Pacer, error) { return pacers(credential) }
	c.perCredential = true
	return c
}
