package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

func runResume(ctx context.Context, env Env, args []string) error {
	var c common
	fs := newFlags("resume", env)
	c.register(fs, env)
	only := fs.String("credential", "", "release only this credential's rows (paused after repeated 401/403 answers for it; "+worker.DefaultCredentialName+": the environment's), and the queue if it is paused; default: every paused credential and the queue")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	rdb, store, closeRedis, err := c.connect(ctx, env)
	if err != nil {
		return err
	}
	defer closeRedis()
	if err := worker.ResetAuthFailures(ctx, rdb); err != nil {
		return err
	}
	// The credentials paused on their own: their rows are parked, and
	// resuming wakes them.
	creds, err := worker.PausedCredentials(ctx, rdb)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(creds))
	for n := range creds {
		names = append(names, n)
	}
	slices.Sort(names)
	if *only != "" {
		names = []string{*only}
	}
	released := 0
	for _, n := range names {
		was, err := worker.ResumeCredential(ctx, rdb, n)
		if err != nil {
			return err
		}
		if was {
			released++
			fmt.Fprintf(env.Stdout, "credential %s resumed\n", n)
		} else if *only != "" {
			fmt.Fprintf(env.Stdout, "credential %s was not paused\n", n)
		}
	}
	resumed, err := worker.UnpauseQueues(asynq.NewInspectorFromRedisClient(rdb))
	if err != nil {
		return err
	}
	if err := worker.ForgetQueuePause(ctx, rdb); err != nil {
		return err
	}
	if len(resumed) == 0 {
		if released == 0 && *only == "" {
			fmt.Fprintf(env.Stdout, "queues %s were not paused: nothing to resume\n", strings.Join(tasks.Queues(), ", "))
		}
		return nil
	}
	if err := store.Emit(ctx, events.Event{Event: events.QueueResumed, Time: time.Now().UTC()}); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "queues %s resumed\n", strings.Join(resumed, ", "))
	return nil
}
