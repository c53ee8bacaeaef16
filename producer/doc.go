// Package producer is the producing side of the pipeline: one Client,
// built once with NewClient on the Redis the workers (package worker)
// share, takes a batch from its input file to its outcome. In flow order:
//
//  1. Check reads the input without Redis: every line is validated first
//     (nothing is enqueued if one is bad, each *tasks.LineError names its
//     line and field), and the batch is named after its content, so the
//     same file is the same batch.
//  2. Enqueue records each destination in the events store and enqueues a
//     logpush:challenge task for each one that needs a challenge (paced by
//     ClientConfig.Budget at the workers' API budgets),
//     the job task of one that needs none but gets a job, and ends the
//     others at once as not_required. Task IDs derive from the batch and the
//     destination, so re-running a file, or a file half done, adds nothing.
//  3. BatchStatus and Events follow the batch as the workers move its
//     destinations on: counters per state, and the events stream.
//  4. SubmitToken takes the ownership token an operator read where the
//     workers cannot (Sumo Logic's HTTP source) for a destination awaiting
//     it.
//  5. Retry enqueues the failed destinations again, from the same input,
//     the way Enqueue sends a new destination, once their cause is fixed.
//  6. Resume releases the credentials and the queue the workers paused
//     after repeated authentication failures.
//
// Close the Client when done; the Redis client stays the caller's.
package producer
