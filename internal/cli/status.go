package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/budget"
	"github.com/logpush-onboard/logpush-onboard/internal/events"
)

func runStatus(ctx context.Context, env Env, args []string) error {
	var c common
	fs := newFlags("status", env)
	c.register(fs, env)
	batch := fs.String("batch", "", "batch id (empty: list recent batches)")
	asJSON := fs.Bool("json", false, "print JSON")
	watch := fs.Bool("watch", false, "redraw a progress bar with rate and ETA until the batch is done")
	interval := fs.Duration("interval", 2*time.Second, "with --watch, time between redraws")
	apiRate := fs.String("api-rate", envOr(env, "API_RATE", "1200/5m"), "the workers' API budget, for the ETA; env API_RATE")
	if err := parse(fs, args); err != nil {
		return err
	}
	_, store, closeRedis, err := c.connect(ctx, env)
	if err != nil {
		return err
	}
	defer closeRedis()
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
	if *watch {
		rate, err := budget.ParseRate(*apiRate)
		if err != nil {
			return fmt.Errorf("-api-rate: %w", err)
		}
		return watchBatch(ctx, env.Stdout, store, *batch, rate, *interval)
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

// watchBatch redraws one progress line per interval until the batch is done.
// The ETA is the larger of what the measured rate and what the API budget
// allow: two calls per destination still to be challenged or validated.
func watchBatch(ctx context.Context, w io.Writer, store *events.Store, id string, rate budget.Rate, every time.Duration) error {
	type sample struct {
		at   time.Time
		done int64
	}
	var hist []sample
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		st, err := store.Batch(ctx, id)
		if err != nil {
			return err
		}
		now := time.Now()
		hist = append(hist, sample{now, st.Done()})
		for len(hist) > 2 && now.Sub(hist[0].at) > time.Minute {
			hist = hist[1:]
		}
		fmt.Fprint(w, "\r"+progressLine(st, hist[0].done, now.Sub(hist[0].at), rate))
		if st.Done()+st.Counts[events.AwaitingToken] >= st.Total {
			fmt.Fprintln(w)
			return nil
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(w)
			return nil
		case <-t.C:
		}
	}
}

// progressLine renders the bar, counts, measured rate and ETA.
func progressLine(st events.BatchStatus, doneBefore int64, over time.Duration, rate budget.Rate) string {
	const width = 30
	frac := 0.0
	if st.Total > 0 {
		frac = float64(st.Done()) / float64(st.Total)
	}
	bar := strings.Repeat("#", int(frac*width)) + strings.Repeat(".", width-int(frac*width))
	perSec := 0.0
	if over > 0 {
		perSec = float64(st.Done()-doneBefore) / over.Seconds()
	}
	// Calls still needed: a challenge and a validate for queued and
	// challenging destinations, a validate for polling ones.
	calls := 2*(st.Counts[events.Queued]+st.Counts[events.WaitingPath]+st.Counts[events.Challenging]) + st.Counts[events.Polling] + st.Counts[events.Validating]
	eta := time.Duration(float64(calls) / (float64(rate.Limit) / rate.Window.Seconds()) * float64(time.Second))
	if left := st.Total - st.Done() - st.Counts[events.AwaitingToken]; perSec > 0 {
		eta = max(eta, time.Duration(float64(left)/perSec*float64(time.Second)))
	}
	return fmt.Sprintf("[%s] %3.0f%% %d/%d  validated %d  failed %d  not_required %d  %.1f/s  ETA %s ",
		bar, frac*100, st.Done(), st.Total, st.Counts[events.Validated], st.Counts[events.Failed], st.Counts[events.NotRequired],
		perSec, eta.Round(time.Second))
}
