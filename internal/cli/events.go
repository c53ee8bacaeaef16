package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
)

func runEvents(ctx context.Context, env Env, args []string) error {
	var c common
	fs := newFlags("events", env)
	c.register(fs, env)
	batch := fs.String("batch", "", "only events of this batch")
	follow := fs.Bool("follow", false, "keep waiting for new events (like tail -f)")
	from := fs.String("from", "0", "stream id to start after: 0 for the beginning, $ for only new events")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	rdb, cl, closeRedis, err := c.connect(ctx, env)
	if err != nil {
		return err
	}
	defer closeRedis()
	if *batch != "" {
		_, err := cl.BatchStatus(ctx, *batch)
		if errors.Is(err, ledger.ErrNoBatch) {
			return noBatch(ctx, rdb, *batch)
		}
		if err != nil {
			return err
		}
	}
	var outage *redisWaiter // --follow waits out an outage
	if *follow {
		outage = &redisWaiter{w: env.Stderr, what: "events", url: c.redisURL}
	}
	after := *from
	for {
		block := 0 * time.Second
		if *follow {
			block = 5 * time.Second
		}
		entries, err := cl.Events(ctx, after, 500, block)
		if outage.retry(ctx, err) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil && *follow {
				return nil
			}
			return err
		}
		outage.answered()
		for _, e := range entries {
			after = e.ID
			if *batch == "" || e.Event.BatchID == *batch {
				fmt.Fprintln(env.Stdout, e.Raw)
			}
		}
		if len(entries) == 0 && !*follow {
			return nil
		}
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil
		}
	}
}
