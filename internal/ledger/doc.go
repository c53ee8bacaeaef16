// Package ledger keeps the outcome of every destination: its state in Redis
// (one hash per destination of a batch, counters per batch) and the result
// events on a Redis Stream (keys.Events, logpush:events). Package keys
// names and documents every key the store writes.
//
// A state change and its event are written by one Lua script, so a task that
// runs twice (asynq delivers at least once) cannot emit a second terminal
// event, and a crash between the two cannot lose one. Producers register
// destinations here, workers move them through their stages, and the status,
// report and events commands read it back.
//
// Challenge is the record of one ownership challenge, kept before the call
// (by worker.ChallengeLog: run's journal) so that a re-run takes up a
// challenge that was in flight instead of asking again; it holds no token.
//
// The scripts name states and stages only as package events does: the
// states they compare with are written into every script once, from the
// constants (luaNames), and a stage's attempt counter is the hash field
// att_<stage> for each of events.Stages().
package ledger
