package ledger

import (
	"time"

	"github.com/redis/go-redis/v9"
)

// Stream is the default Redis Stream of the events: one JSON entry
// (events.Event) per outcome, per destination that awaits its token, and
// per fleet event (queue paused or resumed).
const Stream = "logpush:events"

// Defaults of Config.
const (
	DefaultStreamMaxLen int64 = 200000
	DefaultStateTTL           = 7 * 24 * time.Hour
)

// Config sets where and for how long the store keeps state.
type Config struct {
	// Prefix of every key but the stream. Default "logpush:".
	Prefix string
	// Stream is the event stream's key. Default Stream (logpush:events).
	Stream string
	// StreamMaxLen caps the event stream (approximate trimming). Default
	// DefaultStreamMaxLen.
	StreamMaxLen int64
	// StateTTL is how long a finished destination's state is kept. Default
	// DefaultStateTTL.
	StateTTL time.Duration
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = "logpush:"
	}
	if c.Stream == "" {
		c.Stream = Stream
	}
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
func (s *Store) destKey(k Key) string      { return s.cfg.Prefix + "dest:{" + k.Batch + "}:" + k.Hash }
func (s *Store) batchKey(id string) string { return s.cfg.Prefix + "batch:{" + id + "}" }
func (s *Store) batchesKey() string        { return s.cfg.Prefix + "batches" }

// errorsKey is the hash of a batch's in-flight destinations' last errors,
// field the destination's hash (see NoteError).
func (s *Store) errorsKey(batch string) string { return s.cfg.Prefix + "errors:{" + batch + "}" }
