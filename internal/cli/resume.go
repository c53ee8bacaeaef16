package cli

import (
	"context"
	"fmt"
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
	insp := asynq.NewInspectorFromRedisClient(rdb)
	paused, err := worker.QueuePaused(insp)
	if err != nil {
		return err
	}
	if err := worker.NewAuthGuard(rdb, worker.AuthFailuresKey, 0, nil).Reset(ctx); err != nil {
		return err
	}
	if !paused {
		fmt.Fprintf(env.Stdout, "queue %s was not paused: nothing to resume\n", tasks.Queue)
		return nil
	}
	if err := insp.UnpauseQueue(tasks.Queue); err != nil {
		return fmt.Errorf("resume queue %s: %w", tasks.Queue, err)
	}
	if err := store.Emit(ctx, events.Event{Event: events.QueueResumed, Time: time.Now().UTC()}); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "queue %s resumed\n", tasks.Queue)
	return nil
}
