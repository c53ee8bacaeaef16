// Command embed onboards a batch of Logpush destinations from Go, with the
// worker and the producer running inside this program on an in-memory
// Redis (miniredis): what a provisioning service does when it enqueues the
// destinations of a new customer and runs the worker beside its other
// queues.
//
// It calls the Cloudflare API at CLOUDFLARE_API_URL with
// CLOUDFLARE_API_TOKEN, and onboards the file:// destinations it makes
// under EMBED_DIR (a temporary directory by default): point it at the
// project's simulator, which writes the challenge files there:
//
//	logpush-onboard simulate --addr 127.0.0.1:8787 &
//	CLOUDFLARE_API_URL=http://127.0.0.1:8787/client/v4 CLOUDFLARE_API_TOKEN=dev go run .
//
// It exits 0 when every destination was validated (or needed no
// challenge), 1 otherwise.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := onboard(ctx, log); err != nil {
		fmt.Fprintln(os.Stderr, "embed:", err)
		return 1
	}
	return 0
}

func onboard(ctx context.Context, log *slog.Logger) error {
	dir := os.Getenv("EMBED_DIR")
	if dir == "" {
		tmp, err := os.MkdirTemp("", "embed")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}

	// An in-memory Redis whose clock moves with the wall clock, as asynq's
	// leases need; a service would pass its own redis.Client instead.
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		return err
	}
	defer mr.Close()
	go tick(ctx, mr)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	creds := credentials.Cloudflare{APIToken: os.Getenv("CLOUDFLARE_API_TOKEN")}
	w, err := worker.New(ctx, rdb, worker.Config{
		Credentials: creds,
		APIURL:      os.Getenv("CLOUDFLARE_API_URL"),
		Handler:     worker.HandlerConfig{PollFirst: 500 * time.Millisecond, PollInterval: 500 * time.Millisecond},
		Logger:      log,
	})
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if err := w.Start(); err != nil {
		return err
	}
	defer w.Shutdown()

	// The challenges at the pace of the budget the worker spends (its
	// credential's, at its default rate), so that polls and validations do
	// not queue behind a whole batch of challenges.
	pace, err := producer.BudgetPacer(ctx, rdb, producer.BudgetConfig{Credentials: creds, Logger: log})
	if err != nil {
		return fmt.Errorf("pacer: %w", err)
	}
	fmt.Printf("challenges paced at the API budget: one every %s\n", pace.Interval().Round(time.Millisecond))
	p, err := producer.NewClient(rdb, &producer.ClientConfig{Format: tasks.FormatCSV, Source: "embed", Logger: log, Pacer: pace})
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	defer p.Close()
	input := batch(dir)
	res, err := p.Enqueue(ctx, func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(input)), nil })
	if err != nil {
		for _, le := range res.Errors {
			fmt.Fprintln(os.Stderr, le) // a *tasks.LineError: "line 3: zone_id: ..."
		}
		return err
	}
	fmt.Printf("batch %s: %d destinations, %d need a challenge\n", res.BatchID, res.Rows, res.NeedChallenge)

	st, err := wait(ctx, p, res.BatchID)
	if err != nil {
		return err
	}
	for _, s := range events.States() {
		if n := st.Counts[s]; n > 0 {
			fmt.Printf("  %-13s %d\n", s, n)
		}
	}
	if n := st.Counts[events.Failed]; n > 0 {
		return fmt.Errorf("%d destinations failed", n)
	}
	return nil
}

// batch is a CSV of three zones pushing to directories under dir, and one
// HTTPS destination, which needs no challenge.
func batch(dir string) string {
	var b strings.Builder
	b.WriteString("zone_id,destination_conf\n")
	for i := range 3 {
		fmt.Fprintf(&b, "%032x,file://%s\n", i+1, filepath.ToSlash(filepath.Join(dir, fmt.Sprintf("zone-%d", i+1))))
	}
	b.WriteString("00000000000000000000000000000004,https://logs.example.com/ingest?header_Authorization=Basic%20c2VjcmV0\n")
	return b.String()
}

// wait polls the batch's counters until every destination has an outcome.
func wait(ctx context.Context, p *producer.Client, id string) (events.BatchStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		st, err := p.BatchStatus(ctx, id)
		if err != nil {
			return st, err
		}
		if st.Done() == st.Total {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("batch %s: %d of %d done: %w", id, st.Done(), st.Total, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tick moves miniredis's clock, which stands still otherwise.
func tick(ctx context.Context, mr *miniredis.Miniredis) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			mr.FastForward(100 * time.Millisecond)
		}
	}
}
