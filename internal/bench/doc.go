// Package bench measures the pipeline against the Cloudflare API simulator
// and a Redis: the `logpush-onboard bench` command.
//
// It is not part of the onboarding flow; it puts numbers on it, in one run:
//
//   - a, overhead: destinations/s of the path users run (the enqueue
//     command and a worker: challenge, poll, validate; the challenge files
//     on an S3 server, read through the AWS SDK), enqueue included, with
//     instant challenge files and no API budget, beside asynq's own floor
//     on the same Redis (three chained no-op tasks per destination, its
//     enqueue included), and CPU per destination of each process;
//   - b, budget efficiency: worker processes share the API budget against a
//     simulator that enforces a scaled Cloudflare rate limit with its
//     penalty; makespan against the lower bound 2N/rate, 429s, utilisation;
//     and a naive one-at-a-time baseline on the same settings;
//   - c, latency: from the challenge file appearing to the validate call;
//   - d, cost per destination: Redis commands and bytes, storage requests,
//     worker CPU and peak RSS;
//   - e, enqueue: lines/s of a large CSV and the Redis memory it takes.
//
// The worker of a, c and the Redis figures of d runs in the bench process,
// built from the same packages and defaults as the worker command
// (internal/cli startWorker), so that knobs the command does not expose yet
// can be measured as alternative rows. b and the CPU and RSS figures of d run
// the real worker command in child processes (Env.Worker); a runs the
// simulator (and its S3 server) as the simulate command and the enqueue
// command in child processes the same way, so that this process's CPU is
// the worker's alone.
//
// The machine may be shared with other work: a runs the floor, the pipeline
// and each alternative several times in turn and reports medians, and every
// run reports CPU per destination beside wall-clock rates. Counts (Redis
// round trips and commands, bytes, storage requests, 429s) do not depend on
// the load.
//
// Every scenario flushes the Redis database it is given: the command uses a
// dedicated database (14 by default) and says so, and refuses one that holds
// keys it did not write (its marker, logpush-bench:database, tells a database
// a bench left behind) unless --flush.
package bench
