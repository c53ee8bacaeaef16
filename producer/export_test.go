package producer

import "github.com/logpush-onboard/logpush-onboard/internal/ledger"

// Enqueuer is enqueuer, for the tests' failing and counting clients.
type Enqueuer = enqueuer

// NewWith returns a Client on enq and store, for tests that replace the
// asynq client or run Check without Redis (nil, nil).
func NewWith(enq Enqueuer, store *ledger.Store, cfg ClientConfig) *Client {
	return &Client{enq: enq, store: store, cfg: cfg.WithDefaults()}
}
