package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/internal/events"
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
	rdb, store, closeRedis, err := c.connect(ctx, env)
	if err != nil {
		return err
	}
	defer closeRedis()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	if err := insp.UnpauseQueue(tasks.Queue); err != nil && !strings.Contains(err.Error(), "not paused") {
		return fmt.Errorf("resume queue %s: %w", tasks.Queue, err)
	}
	if err := rdb.Del(ctx, worker.AuthFailuresKey).Err(); err != nil {
		return err
	}
	if err := store.Emit(ctx, events.Event{Event: events.QueueResumed, Time: time.Now().UTC()}); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "queue %s resumed\n", tasks.Queue)
	return nil
}
