package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/events"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

func runRetry(ctx context.Context, env Env, args []string) error {
	var c common
	fs := newFlags("retry", env)
	c.register(fs, env)
	batch := fs.String("batch", "", "batch id (required)")
	maxRetry := fs.Int("max-retry", 12, "retries of a transient error per task")
	apiRate := fs.String("api-rate", envOr(env, "API_RATE", "1200/5m"),
		"the workers' shared API budget: the fresh challenges are scheduled at its pace, as enqueue does (0: all due at once); unset, the rate stored with the budget in Redis; env API_RATE")
	var bf budgetFlags
	bf.register(fs, env)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	bf.parsed(fs, env)
	creds := cloudflare.CredentialsFromEnv(env.Getenv)
	if _, _, err := bf.config(*apiRate, creds); err != nil {
		return err
	}
	if *batch == "" {
		fmt.Fprintln(env.Stderr, "retry needs --batch ID")
		return errUsage
	}
	rdb, store, closeRedis, err := c.connect(ctx, env)
	if err != nil {
		return err
	}
	defer closeRedis()
	if _, err := store.Batch(ctx, *batch); err != nil {
		return err
	}
	type failed struct {
		hash string
		st   events.DestState
	}
	var todo []failed
	if err := store.Dests(ctx, *batch, func(h string, st events.DestState) error {
		if st.State == events.Failed {
			todo = append(todo, failed{h, st})
		}
		return nil
	}); err != nil {
		return err
	}
	log, err := c.logger(env)
	if err != nil {
		return err
	}
	bcfg, ok, err := bf.shared(ctx, rdb, *apiRate, creds, log)
	if err != nil {
		return err
	}
	pace, err := pacer(rdb, bcfg, ok)
	if err != nil {
		return err
	}
	var offset time.Duration
	if pace != nil {
		if offset, err = pace.Reserve(ctx, len(todo)); err != nil {
			return err
		}
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	now := time.Now()
	var retried, lost int
	for _, f := range todo {
		d, archived, err := archivedDest(insp, *batch, f.hash, f.st)
		if err != nil {
			return err
		}
		if archived == "" {
			lost++
			fmt.Fprintf(env.Stderr, "line %d: its archived task is gone (asynq keeps archived tasks up to 90 days, 10000 at most); enqueue that row again in a new batch\n", f.st.Line)
			continue
		}
		d.Gen, d.Round, d.EnqueuedAt = 0, f.st.Round+1, now
		var delay time.Duration
		if pace != nil {
			delay = offset + time.Duration(retried+lost)*pace.Interval()
		}
		task, err := tasks.NewChallengeTask(d, tasks.Options{MaxRetry: *maxRetry}, delay)
		if err != nil {
			return err
		}
		// Enqueue before reopening: a crash in between leaves the task
		// superseded-proof (its round is newer) and a re-run finds it.
		if _, err := client.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return fmt.Errorf("line %d: %w", f.st.Line, err)
		}
		if _, err := store.Reopen(ctx, events.Key{Batch: *batch, Hash: f.hash}, d.Round); err != nil {
			return fmt.Errorf("line %d: %w", f.st.Line, err)
		}
		if err := insp.DeleteTask(tasks.Queue, archived); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return fmt.Errorf("line %d: delete archived task: %w", f.st.Line, err)
		}
		retried++
	}
	fmt.Fprintf(env.Stdout, "batch %s: %d failed destinations re-enqueued", *batch, retried)
	if lost > 0 {
		fmt.Fprintf(env.Stdout, ", %d could not be (see above)", lost)
	}
	fmt.Fprintln(env.Stdout)
	return nil
}

// archivedDest finds the archived task of a failed destination and returns
// its payload's destination and the task id.
func archivedDest(insp *asynq.Inspector, batch, hash string, st events.DestState) (tasks.Dest, string, error) {
	probe := tasks.Dest{BatchID: batch, Gen: st.Gen, Round: st.Round}
	for _, id := range tasks.TaskIDsForHash(probe, hash) {
		info, err := insp.GetTaskInfo(tasks.Queue, id)
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			continue
		}
		if err != nil {
			return tasks.Dest{}, "", err
		}
		if info.State != asynq.TaskStateArchived {
			continue
		}
		var p tasks.ChallengePayload // every payload embeds Dest
		if err := tasks.Decode(asynq.NewTask(info.Type, info.Payload), &p); err != nil {
			return tasks.Dest{}, "", err
		}
		return p.Dest, id, nil
	}
	return tasks.Dest{}, "", nil
}
