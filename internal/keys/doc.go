// Package keys names every Redis key of logpush-onboard, in one place, so
// that a key has one owner and an operator can see what a Redis holds.
// asynq's own keys ("asynq:{<queue>}:...") are asynq's and not listed;
// AsynqQueue names their prefix for the worker's sweeps, which touch a few.
//
// Every key but the test and bench keys starts with Prefix ("logpush:").
// A batch's keys carry the batch id as a Redis Cluster hash tag
// ({<batch>}); the tool still needs its keys on one node (a single Redis,
// or Sentinel: the CLI refuses Cluster), since the ledger's scripts write
// the stream together with a batch's keys.
//
// # Ledger (internal/ledger)
//
//	Events             stream  one JSON events.Event per outcome, awaiting_token and fleet event.
//	                           Written by workers and producers (ledger scripts), read by
//	                           events, status, report, run, the web UI. Trimmed to about
//	                           ledger.Config.StreamMaxLen entries (MAXLEN ~); no TTL.
//	Batches            zset    batch ids by creation time (unix seconds). Written by producers
//	                           (ledger.Store.CreateBatch), read by status without --batch and
//	                           the web UI. No TTL: kept until deleted by hand.
//	Batch(id)          hash    created_at, source, state:<state> counters. Written by producers
//	                           and the ledger's transition scripts, read by status, report,
//	                           run's view. No TTL.
//	Dest(batch, hash)  hash    one destination: state, line, att_<stage>, filename,
//	                           last error fields, job id. Written by producers (register) and
//	                           workers (transitions), read by report, retry, status. Expires
//	                           ledger.Config.StateTTL (default 7 days) after its terminal state.
//	Errors(batch)      hash    destination hash -> its last error as JSON while in flight.
//	                           Written by workers (NoteError), read by status, report and the web UI;
//	                           a destination's field is deleted at its terminal state. No TTL.
//	Appearances        list    the first challenge-file appearance delays each worker saw
//	                           (milliseconds, newest first, the last 64), so that a cold
//	                           worker schedules its first polls by the fleet's. Written and
//	                           read by workers (ledger.Store.ShareAppearance, Appearances);
//	                           PX ledger.AppearanceTTL (an hour) from the last write.
//
// # Challenge locations (internal/location)
//
// Location(id) returns four keys, id a hash of the challenge file's
// location; all written and read by workers only:
//
//	lease  string  the holder's id, PX location.Config.LeaseTTL (default 3 minutes), renewed
//	               while held, deleted on release.
//	line   zset    waiting holders by input order; PEXPIRE'd with each wait.
//	wake   hash    waiter -> "lookMs|queue|taskID"; PEXPIRE'd with each wait.
//	last   string  digest record of what the location held last, PX RecordTTL.
//
// # API budgets (internal/budget)
//
// For budget.Config{Prefix: p, Key: k}, p BudgetPrefix unless a test sets
// another, k the budget_key or the credential's digest (never the
// credential):
//
//	BudgetRate(p, k)      string  GCRA state (redis_rate's layout), EX until it is full again.
//	                              Written and read by workers (Budget.Wait); deleted when the
//	                              rate is overridden.
//	BudgetCooldown(p, k)  string  the shared cooldown after a 429: the reason, PX the time left.
//	                              Written by workers (Budget.Pause), read by Budget.Wait.
//	BudgetLimit(p, k)     string  the shared rate ("1200/5m"). Written by workers and producers
//	                              (budget.ClaimRate), read by every Wait. No TTL.
//	BudgetPace(p, k)      string  the producers' next enqueue slot (budget.Pacer), PX until
//	                              a minute after the slot.
//
// # Worker (pauses, credentials, auth failures)
//
// The worker's keys (the queue's pause record, the paused credentials and
// since when, parked tasks, the credentials in use, the auth-failure
// counters, the credential check marks) are named in worker.go of this
// package.
//
// # Bench and tests
//
//	BenchMarker  string  in the bench's database: the database holds only what the bench wrote.
//	DBLease(db)  string  in database 0: the test or bench run that holds database db.
package keys
