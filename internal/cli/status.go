package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/budget"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/words"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

func runStatus(ctx context.Context, env Env, args []string) error {
	var c common
	fs := newFlags("status", env)
	c.register(fs, env)
	batch := fs.String("batch", "", "batch id (empty: list recent batches)")
	asJSON := fs.Bool("json", false, "print JSON")
	watchFlag := fs.Bool("watch", false, "redraw a progress bar with rate and ETA until the batch is done")
	interval := fs.Duration("interval", 2*time.Second, "with --watch, time between redraws")
	apiRate := fs.String("api-rate", envOr(env, "API_RATE", worker.APIRateDefault), "the workers' API budget, for the ETA; env API_RATE")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *interval <= 0 {
		fmt.Fprintf(env.Stderr, "-interval %s: must be positive\n", *interval)
		return errUsage
	}
	rdb, cl, closeRedis, err := c.connect(ctx, env)
	if err != nil {
		return err
	}
	defer closeRedis()
	store := cl.Ledger()
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
	if errors.Is(err, ledger.ErrNoBatch) {
		return noBatch(ctx, rdb, *batch)
	}
	if err != nil {
		return err
	}
	if *watchFlag {
		rate, err := budget.ParseRate(*apiRate)
		if err != nil {
			return fmt.Errorf("-api-rate: %w", err)
		}
		st, err := watch(ctx, store, *batch, watchConfig{view: newView(env.Stdout), every: *interval, rate: rate, start: st.CreatedAt, pauses: pausesOf(rdb),
			outage: &redisWaiter{w: env.Stderr, what: "status", url: c.redisURL}})
		if err != nil {
			if ctx.Err() != nil {
				return &exitError{code: 1, err: fmt.Errorf("stopped watching with %d of %d done", st.Done(), st.Total)}
			}
			return err
		}
		return batchOutcome(env, st)
	}
	last, err := store.LastErrors(ctx, *batch)
	if err != nil {
		return err
	}
	paused := ""
	if inFlight(st) > 0 {
		paused = pausesOf(rdb)(ctx)
	}
	if *asJSON {
		return json.NewEncoder(env.Stdout).Encode(struct {
			events.BatchStatus
			LastErrors []ledger.LastError `json:"last_errors,omitempty"`
			// Paused says what holds the rows in flight.
			Paused string `json:"paused,omitempty"`
		}{st, newestErrors(last, 0), paused})
	}
	printStatus(env.Stdout, st)
	if paused != "" {
		fmt.Fprintln(env.Stdout, paused)
	}
	printLastErrors(env.Stdout, last, 10)
	return nil
}

// newestErrors lists last errors newest first, at most n (0: all).
func newestErrors(last map[string]ledger.LastError, n int) []ledger.LastError {
	out := make([]ledger.LastError, 0, len(last))
	for _, e := range last {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// printLastErrors lists the newest last errors of in-flight destinations.
func printLastErrors(w io.Writer, last map[string]ledger.LastError, n int) {
	if len(last) == 0 {
		return
	}
	fmt.Fprintf(w, "in flight after an error: %d (newest first; 'report' lists all)\n", len(last))
	for _, e := range newestErrors(last, n) {
		fmt.Fprintf(w, "  line %d  %s  %s ago: %s\n", e.Line, e.State, time.Since(e.Time).Round(time.Second), e.Message)
	}
}

func printStatus(w io.Writer, st events.BatchStatus) {
	fmt.Fprintf(w, "batch %s (%s), created %s\n", st.ID, st.Source, st.CreatedAt.Format(time.RFC3339))
	for _, s := range events.States() {
		fmt.Fprintf(w, "  %-15s %d\n", s, st.Counts[s])
	}
	fmt.Fprintf(w, "  %-15s %d/%d\n", "done", st.Done(), st.Total)
}

// batchGone is the error for a batch that Redis lost while it was
// watched: a Redis restarted without persistence keeps no batch, state or
// task, and says nothing about it.
func batchGone(st events.BatchStatus) error {
	return &exitError{code: 1, err: fmt.Errorf("batch %s is gone from Redis (restarted without persistence?): re-enqueue from the file: %s "+
		"(its finished destinations are challenged again; deploy/README.md says how to make Redis persist)", st.ID, reenqueue(st.Source))}
}

// noBatch is the error for a batch id Redis does not have: mistyped, or
// lost with a Redis that persists nothing.
func noBatch(ctx context.Context, rdb redis.UniversalClient, id string) error {
	why := "restarted without persistence?"
	if persistenceWarning(ctx, rdb) != "" {
		why = "this Redis persists nothing: a restart loses every batch"
	}
	return &exitError{code: 2, err: fmt.Errorf("no batch %s on this Redis: check the id (status without --batch lists the batches); if it was there, Redis lost it "+
		"(%s): re-enqueue from the file: %s", id, why, reenqueue(""))}
}

// reenqueue is the command that enqueues the file of a lost batch again.
func reenqueue(source string) string {
	if source == "" || source == "-" {
		source = "FILE"
	}
	return "logpush-onboard enqueue --redis URL " + source
}

// batchOutcome says how a batch whose destinations all have an outcome
// ended: an error (exit 1) when any failed; the rows that wait for
// submit-token are named.
func batchOutcome(env Env, st events.BatchStatus) error {
	if n := st.Counts[events.AwaitingToken]; n > 0 {
		verb := "wait"
		if n == 1 {
			verb = "waits"
		}
		fmt.Fprintf(env.Stdout, "%s %s for submit-token (Sumo Logic: the token went to the HTTP source): logpush-onboard submit-token --batch %s --file tokens.csv\n",
			words.Plural(n, "row"), verb, st.ID)
	}
	if n := st.Counts[events.Failed]; n > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%s failed of %d: logpush-onboard report --batch %s says why", words.Plural(n, "destination"), st.Total, st.ID)}
	}
	if n := st.Counts[events.JobFailing]; n > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%s failing to push (job_failing) of %d: logpush-onboard report --batch %s has Cloudflare's message", words.Plural(n, "job"), st.Total, st.ID)}
	}
	return nil
}
