package tasks

import (
	"time"

	"github.com/hibiken/asynq"
)

// ChallengePayload asks Cloudflare for an ownership challenge for one destination.
type ChallengePayload struct {
	Dest
}

// NewChallengeTask returns the logpush:challenge task for d with its defaults:
// queue logpush, a deterministic TaskID (so enqueueing twice adds nothing),
// maxRetry retries of transient errors, a per-run timeout and retention of
// the finished task so that a re-run within retention is detected. It is
// due after delay (0: at once; a paced batch, see budget.Pacer).
func NewChallengeTask(d Dest, o Options, delay time.Duration) (*asynq.Task, error) {
	return newTask(TypeChallenge, ChallengePayload{Dest: d}, d, o, delay)
}
