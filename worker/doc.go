// Package worker runs the three stages of onboarding as asynq handlers:
//
//	logpush:challenge  POST .../logpush/ownership, then schedule a poll
//	logpush:poll       read <filename> from the destination; not there yet:
//	                   snooze (no retry spent, no worker slot held); found:
//	                   POST .../logpush/ownership/validate with its token
//	logpush:validate   the same call for a token an operator submitted
//	logpush:create_job the job of a validated destination (--create-job)
//	logpush:update_job an existing job moved to its validated new conf:
//	                   GET it, PUT it with every setting as read (migrate)
//
// Each handler ends in one of three ways: done (nil), transient (a plain
// error that asynq retries after RetryDelay), or failed: the failure is
// recorded (state and a failed event) and the task ends with nil, so that
// asynq deletes it rather than archiving its payload and the conf's secrets. A missing challenge file
// is a *SnoozeError: RetryDelay reads its delay and IsFailure returns false.
// Every outcome goes through the events store, whose Lua scripts make a
// handler that runs twice emit a single terminal event.
package worker
