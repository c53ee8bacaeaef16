package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/internal/keys"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// batchTasksWait bounds how long a finished run or migrate on a shared
// Redis waits for the tasks of its batch still there: a poll scheduled to
// take over from the inline polls (it finds its destination finished), and
// a task a killed run left active, which the worker's orphan sweep
// requeues once its lease (30s) expired.
const batchTasksWait = 2 * time.Minute

// waitBatchTasks waits, up to limit, until no task of batch is left in the
// queues. Every destination is finished, but a task that a killed run left
// active (its destination went on in a task it had enqueued) stays in
// Redis, with the conf and its secrets in its payload, until a worker runs
// it and it finds its destination finished.
//
// It looks for the batch's own tasks by their ids, which the ledger's
// destinations give (every type, at each generation and round up to the
// destination's, and the next generation's), so a shared Redis's other
// batches cost it nothing.
func waitBatchTasks(ctx context.Context, env Env, rdb redis.UniversalClient, store *ledger.Store, batch string, limit time.Duration) {
	start := time.Now()
	deadline := start.Add(limit)
	left, err := batchTaskKeys(ctx, store, batch)
	said := false
	for err == nil {
		if left, err = existing(ctx, rdb, left); err != nil || len(left) == 0 {
			return
		}
		// The task of the last outcome is acknowledged just after it.
		if !said && time.Since(start) > 2*time.Second {
			fmt.Fprintf(env.Stdout, "every destination is finished; waiting for %d tasks of the batch still in Redis (they hold the confs) to end\n", len(left))
			said = true
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(env.Stderr, "warning: %d tasks of batch %s are still in Redis, with their confs: the next worker on this Redis drops them\n", len(left), batch)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// batchTaskKeys are the Redis keys of the tasks the batch's destinations
// may have: asynq keeps a task in its hash "t:<id>" from its enqueue to its
// end.
func batchTaskKeys(ctx context.Context, store *ledger.Store, batch string) ([]string, error) {
	var ks []string
	err := store.Dests(ctx, batch, func(hash string, st ledger.DestState) error {
		// Gen+1: a fresh challenge is enqueued before its run records
		// its generation.
		for gen := 0; gen <= st.Gen+1; gen++ {
			for round := 0; round <= st.Round; round++ {
				for _, t := range tasks.TaskIDsOf(batch, hash, gen, round) {
					ks = append(ks, keys.AsynqQueue(t.Queue)+"t:"+t.ID)
				}
			}
		}
		return nil
	})
	return ks, err
}

// existing keeps the keys of ks that exist. A task once ended does not come
// back: a finished destination enqueues nothing.
func existing(ctx context.Context, rdb redis.UniversalClient, ks []string) ([]string, error) {
	const chunk = 1000
	var kept []string
	for len(ks) > 0 {
		n := min(chunk, len(ks))
		pipe := rdb.Pipeline()
		cmds := make([]*redis.IntCmd, n)
		for i, k := range ks[:n] {
			cmds[i] = pipe.Exists(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
		for i, c := range cmds {
			if c.Val() == 1 {
				kept = append(kept, ks[i])
			}
		}
		ks = ks[n:]
	}
	return kept, nil
}
