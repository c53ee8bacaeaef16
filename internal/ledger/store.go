package ledger

import (
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of Config.
const (
	DefaultStreamMaxLen int64 = 200000
	DefaultStateTTL           = 7 * 24 * time.Hour
)

// Config sets for how long the store keeps state. Its keys are named by
// package keys (Dest, Batch, Batches, Errors, Events).
type Config struct {
	// StreamMaxLen caps the event stream (approximate trimming). Default
	// DefaultStreamMaxLen.
	StreamMaxLen int64
	// StateTTL is how long a finished destination's state is kept. Default
	// DefaultStateTTL.
	StateTTL time.Duration
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.StreamMaxLen <= 0 {
		c.StreamMaxLen = DefaultStreamMaxLen
	}
	if c.StateTTL <= 0 {
		c.StateTTL = DefaultStateTTL
	}
	return c
}

// Store reads and writes destination state, batch counters and events.
type Store struct {
	rdb redis.UniversalClient
	cfg Config
}

// NewStore returns a Store on rdb.
func NewStore(rdb redis.UniversalClient, cfg Config) *Store {
	return &Store{rdb: rdb, cfg: cfg.WithDefaults()}
}

// Key names one destination of one batch.
type Key struct {
	Batch string
	Hash  string
}

// A destination's dest key, and its batch's batch and errors keys, carry the
// batch id as a Redis Cluster hash tag ({<batch>}), so they share one slot.
// The batches index and the stream carry none, and transitionScript writes
// the stream with the batch's keys: the store needs all its keys on one node
// (a single Redis, or Sentinel; internal/cli refuses Cluster).
