// Package worker runs the stages of onboarding as asynq handlers. New
// builds a Worker from a Config on a Redis client; Start serves the
// logpush queues (the follow-up queue first); Shutdown drains them and
// ends every goroutine the worker started.
//
// A destination goes through the stages in this order, one file each:
//
//	logpush:challenge  challenge.go: take the challenge file's path (one
//	                   challenge in flight per path, pathlease.go), then
//	                   POST .../logpush/ownership and schedule a poll
//	logpush:poll       poll.go: read <filename> from the destination; not
//	                   there yet: snooze (no retry spent, no worker slot
//	                   held); found: POST .../logpush/ownership/validate
//	                   with its token (validate.go)
//	logpush:validate   validate.go: the same call for a token an operator
//	                   submitted
//	logpush:create_job createjob.go: the job of a validated destination
//	                   (--create-job)
//	logpush:update_job updatejob.go: an existing job moved to its validated
//	                   new conf: GET it, PUT it with every setting as read
//	                   (migrate)
//	logpush:health     health.go: a created job watched for its first push
//
// handler.go holds what every stage shares: decoding a task (start),
// entering a stage (enter), the API budget (wait). A Cloudflare error is
// judged in apierror.go (429 cooldowns, the auth pause of tenant.go and
// authguard.go, this worker's view of its credential in credcheck.go).
//
// Each handler ends in one of three ways: done (nil), transient (a plain
// error that asynq retries after RetryDelay), or failed: the failure is
// recorded (state and a failed event, outcome.go) and the task ends with
// nil, so that asynq deletes it rather than archiving its payload and the
// conf's secrets. A missing challenge file is a *SnoozeError: RetryDelay
// reads its delay and IsFailure returns false. Every outcome goes through
// the events store, whose Lua scripts make a handler that runs twice emit
// a single terminal event. What asynq archives where no handler can stop
// it (a last attempt whose lease expired, or that ran past asynq's
// deadline) the archive sweep takes out (archive.go), as the orphan sweep
// (orphans.go) requeues what an outage left active; both run from Start to
// Shutdown.
package worker
