package cli

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// TestReadyz: a worker on a Redis where nothing was ever enqueued is ready
// (the queue does not exist yet); a paused queue makes it unready, resume
// ready again.
func TestReadyz(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Redis(t)
	e := newE2E(t, rdb, e2eConfig{})
	get := func() (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + e.worker.metricsAddr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	if code, body := get(); code != http.StatusOK {
		t.Fatalf("fresh Redis: /readyz = %d %q, want 200", code, body)
	}
	e.enqueue(t, 5)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	if err := insp.PauseQueue(tasks.Queue); err != nil {
		t.Fatal(err)
	}
	if code, body := get(); code != http.StatusServiceUnavailable || !strings.Contains(body, "paused") {
		t.Fatalf("paused: /readyz = %d %q, want 503 paused", code, body)
	}
	if err := insp.UnpauseQueue(tasks.Queue); err != nil {
		t.Fatal(err)
	}
	if code, body := get(); code != http.StatusOK {
		t.Fatalf("resumed: /readyz = %d %q, want 200", code, body)
	}
}

// TestBadTuningFlags: negative durations and sizes are errors that name the
// flag, never a silent default.
func TestBadTuningFlags(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Redis(t)
	for _, f := range []workerFlags{{pollFirst: -time.Second}, {pollInterval: -time.Second}, {retention: -time.Hour},
		{stateTTL: -time.Hour}, {eventsMaxLen: -1}} {
		f.concurrency, f.apiRate = 1, "0"
		w, err := startWorker(context.Background(), rdb, f, cloudflare.Credentials{APIToken: "t"}, credentials.Storage{}, slog.New(slog.DiscardHandler))
		if err == nil {
			w.stop()
			t.Errorf("%+v: started", f)
			continue
		}
		if !strings.Contains(err.Error(), "must not be negative") {
			t.Errorf("%+v: %v", f, err)
		}
	}
	code, _, stderr := run(t, "", "enqueue", "--redis", "redis://127.0.0.1:1/0", "--task-retention", "-1h", "-")
	if code != 2 || !strings.Contains(stderr, "-task-retention -1h0m0s: must not be negative") {
		t.Fatalf("enqueue --task-retention -1h = %d: %s", code, stderr)
	}
}
