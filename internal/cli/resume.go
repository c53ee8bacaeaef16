package cli

import (
	"context"
	"fmt"
	"strings"

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
	_, cl, closeRedis, err := c.connect(ctx, env)
	if err != nil {
		return err
	}
	defer closeRedis()
	res, err := cl.Resume(ctx, *only)
	for _, n := range res.Credentials {
		fmt.Fprintf(env.Stdout, "credential %s resumed\n", n)
	}
	if err != nil {
		return err
	}
	if *only != "" && len(res.Credentials) == 0 {
		fmt.Fprintf(env.Stdout, "credential %s was not paused\n", *only)
	}
	if len(res.Queues) == 0 {
		if len(res.Credentials) == 0 && *only == "" {
			fmt.Fprintf(env.Stdout, "queues %s were not paused: nothing to resume\n", strings.Join(tasks.Queues(), ", "))
		}
		return nil
	}
	fmt.Fprintf(env.Stdout, "queues %s resumed\n", strings.Join(res.Queues, ", "))
	return nil
}
