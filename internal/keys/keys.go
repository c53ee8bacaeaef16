package keys

import "strconv"

// Prefix starts every key of the pipeline (asynq's own keys start "asynq:").
const Prefix = "logpush:"

// Events is the Redis Stream of the result events (doc.go: ledger).
const Events = Prefix + "events"

// Batches is the sorted set of the batch ids, scored by creation time.
const Batches = Prefix + "batches"

// Appearances is the list of the challenge-file appearance delays the
// fleet's workers saw first, newest first.
const Appearances = Prefix + "appearances"

// Dest is the hash of one destination of a batch, hash the destination's
// id. The batch id is a Redis Cluster hash tag: a batch's keys share a slot.
func Dest(batch, hash string) string { return Prefix + "dest:{" + batch + "}:" + hash }

// Batch is the hash of a batch's counters and source.
func Batch(id string) string { return Prefix + "batch:{" + id + "}" }

// Errors is the hash of a batch's in-flight destinations' last errors,
// field the destination's hash.
func Errors(batch string) string { return Prefix + "errors:{" + batch + "}" }

// Location is the lease of one challenge-file location, id a hash of the
// location; line, wake and last are its waiters, their wake-ups and what
// the location held last.
func Location(id string) (lease, line, wake, last string) {
	k := Prefix + "loc:" + id
	return k, k + ":line", k + ":wake", k + ":last"
}

// BudgetPrefix is the default prefix of the API budgets' keys
// (budget.Config.Prefix): each Budget* key below takes the prefix and the
// budget's key (a budget_key, else the credential's digest).
const BudgetPrefix = Prefix + "budget:"

// BudgetRate is a budget's GCRA state, named as redis_rate names it.
func BudgetRate(prefix, key string) string { return "rate:" + prefix + key }

// BudgetCooldown is a budget's shared cooldown after a 429.
func BudgetCooldown(prefix, key string) string { return prefix + key + ":cooldown" }

// BudgetLimit is the rate every process of a budget uses, as "1200/5m".
func BudgetLimit(prefix, key string) string { return prefix + key + ":limit" }

// BudgetPace is the producers' next enqueue slot of a budget.
func BudgetPace(prefix, key string) string { return prefix + key + ":pace" }

// AsynqQueue is the prefix of asynq's keys of queue q, as asynq v0.26
// names them (internal/base/base.go, QueueKeyPrefix): the worker's sweeps
// read and move a few of them (worker/orphans.go: "active", "lease",
// "pending"; worker/archive.go: "archived"; both "t:<task id>", a task's
// hash). They are asynq's keys: asynq writes, reads and expires them.
func AsynqQueue(q string) string { return "asynq:{" + q + "}:" }

// BenchMarker marks a database that the bench wrote (in that database).
const BenchMarker = "logpush-bench:database"

// DBLease is the lease, in database 0, of test database db: the tests and
// the bench take it before they use or flush db.
func DBLease(db int) string { return "logpush-test:dblease:" + strconv.Itoa(db) }
