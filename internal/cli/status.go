package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/events"
)

func runStatus(ctx context.Context, env Env, args []string) error {
	var c common
	fs := newFlags("status", env)
	c.register(fs, env)
	batch := fs.String("batch", "", "batch id (empty: list recent batches)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := c.logger(env)
	if err != nil {
		return err
	}
	rdb, closeRedis, err := connectRedis(ctx, c.redisURL, log)
	if err != nil {
		return err
	}
	defer closeRedis()
	store := events.NewStore(rdb, events.Config{})
	if *batch == "" {
		ids, err := store.Batches(ctx, 20)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			fmt.Fprintln(env.Stdout, "no batches")
		}
		for _, id := range ids {
			st, err := store.Batch(ctx, id)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "%s  %s  %d/%d done  %s\n", st.ID, st.CreatedAt.Format(time.RFC3339), st.Done(), st.Total, st.Source)
		}
		return nil
	}
	st, err := store.Batch(ctx, *batch)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(env.Stdout).Encode(st)
	}
	printStatus(env.Stdout, st)
	return nil
}

func printStatus(w io.Writer, st events.BatchStatus) {
	fmt.Fprintf(w, "batch %s (%s), created %s\n", st.ID, st.Source, st.CreatedAt.Format(time.RFC3339))
	for _, s := range events.States {
		fmt.Fprintf(w, "  %-15s %d\n", s, st.Counts[s])
	}
	fmt.Fprintf(w, "  %-15s %d/%d\n", "done", st.Done(), st.Total)
}
