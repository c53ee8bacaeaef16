package cli

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

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
