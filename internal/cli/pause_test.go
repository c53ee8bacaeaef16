package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// cancelOnWrite cancels a context at its first write: a watch that drew
// one frame stops.
type cancelOnWrite struct {
	mu     sync.Mutex
	b      bytes.Buffer
	cancel context.CancelFunc
}

func (w *cancelOnWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cancel()
	return w.b.Write(p)
}

// TestStatusShowsPausedQueue: while the queue is paused, status --batch
// and status --watch say so, and what to do, in place of an ETA.
func TestStatusShowsPausedQueue(t *testing.T) {
	t.Parallel()
	rdb, opt := testutil.Redis(t)
	url := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	path := filepath.Join(t.TempDir(), "batch.csv")
	if err := os.WriteFile(path, []byte("zone_id,account_id,destination_conf\n023e105f4ecef8ad9ca31a8372d0c353,,s3://logs/http?region=us-east-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runEnv(t, map[string]string{"CLOUDFLARE_API_TOKEN": "t"}, "", "enqueue", "--skip-preflight", "--redis", url, path)
	if code != 0 {
		t.Fatalf("enqueue = %d: %s", code, stderr)
	}
	batch := strings.Fields(strings.TrimPrefix(out, "batch "))[0]
	batch = strings.TrimSuffix(batch, ":")
	if err := asynq.NewInspectorFromRedisClient(rdb).PauseQueue(tasks.Queue); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = runEnv(t, nil, "", "status", "--redis", url, "--batch", batch)
	if code != 0 || !strings.Contains(out, "paused (queue)") || !strings.Contains(out, "run 'logpush-onboard resume'") {
		t.Fatalf("status of a batch on a paused queue = %d:\n%s%s\nwant it to say paused", code, out, stderr)
	}
	srv := httptest.NewServer(uiHandler(ledger.NewStore(rdb, ledger.Config{}), asynq.NewInspectorFromRedisClient(rdb), pausesOf(rdb)))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), `<p class="paused">paused (queue)`) {
		t.Fatalf("web UI on a paused queue:\n%s\nwant it to say paused", page)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &cancelOnWrite{cancel: cancel}
	Run(ctx, []string{"status", "--redis", url, "--batch", batch, "--watch"}, Env{Stdin: strings.NewReader(""), Stdout: w, Stderr: w,
		Getenv: func(string) string { return "" }})
	w.mu.Lock()
	frame := w.b.String()
	w.mu.Unlock()
	if !strings.Contains(frame, "paused (queue)") || strings.Contains(frame, "ETA") {
		t.Fatalf("status --watch frame on a paused queue:\n%s\nwant paused in place of the ETA", frame)
	}
}
