package cli

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// TestWebUISnoozed: asynq holds a snoozed task (worker.SnoozeError:
// waiting for its challenge file or a busy path) as a retry; the page
// shows it under "waiting for a file or path", not as a retry after an
// error.
func TestWebUISnoozed(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Redis(t)
	queue := tasks.Queue
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:    2,
		Queues:         map[string]int{queue: 1},
		IsFailure:      worker.IsFailure,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Hour },
		LogLevel:       asynq.FatalLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc("t:snooze", func(context.Context, *asynq.Task) error {
		return &worker.SnoozeError{Delay: time.Hour, Reason: "challenge file not there yet"}
	})
	mux.HandleFunc("t:error", func(context.Context, *asynq.Task) error { return errors.New("boom") })
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	client := asynq.NewClientFromRedisClient(rdb)
	for _, typ := range []string{"t:snooze", "t:snooze", "t:error"} {
		if _, err := client.Enqueue(asynq.NewTask(typ, nil), asynq.Queue(queue), asynq.MaxRetry(5)); err != nil {
			t.Fatal(err)
		}
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if info, err := insp.GetQueueInfo(queue); err == nil && info.Retry == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the 3 tasks did not reach asynq's retry set")
		}
	}

	h := httptest.NewServer(uiHandler(ledger.NewStore(rdb, ledger.Config{}), insp, func(context.Context) string { return "" }))
	defer h.Close()
	resp, err := h.Client().Get(h.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	// Columns: pending, active, scheduled, retry, waiting, archived.
	want := `<td class="l">` + queue + `</td>
<td>0</td><td>0</td><td>0</td><td>1</td><td>2</td><td>0</td>`
	if !strings.Contains(page, want) {
		t.Errorf("queue %s: want 1 retry and 2 waiting for a file or path:\n%s", queue, page)
	}
}
