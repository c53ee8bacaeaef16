// Package events holds the names and shapes that programs build on when
// they consume logpush-onboard's results: a destination's State, the
// Stages counted in Attempts, the Event written to the Redis Stream
// logpush:events (one per outcome), and a batch's BatchStatus.
//
// It has no dependencies: the worker and producer packages, and the
// internal ledger that keeps states and events in Redis, all use these
// types, so an embedding program can name them.
package events
