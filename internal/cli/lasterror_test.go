package cli

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

// TestLastErrorShown: the last error of a destination still in flight is
// shown by status, report (CSV and JSON) and the web UI, and dropped once
// the destination has its outcome.
func TestLastErrorShown(t *testing.T) {
	t.Parallel()
	rdb, opt := testutil.Redis(t)
	url := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	ctx := context.Background()
	store := ledger.NewStore(rdb, ledger.Config{})
	const batch = "b-lasterror"
	k := ledger.Key{Batch: batch, Hash: "0123456789abcdef0123456789abcdef"}
	if err := store.CreateBatch(ctx, batch, "in.csv", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Enter(ctx, k, 0, events.Polling, 0, 0, "poll", "line", 7); err != nil {
		t.Fatal(err)
	}
	const msg = "read azure://c/p/ownership-challenge.txt: dial tcp: lookup acct.blob.core.windows.net: no such host"
	if err := store.NoteError(ctx, k, ledger.LastError{Line: 7, State: events.Polling, Message: msg, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := run(t, "", "status", "--redis", url, "--batch", batch)
	if code != 0 || !strings.Contains(out, "line 7  polling") || !strings.Contains(out, "no such host") {
		t.Fatalf("status = %d: %s %s; want the last error", code, out, stderr)
	}
	code, out, _ = run(t, "", "status", "--redis", url, "--batch", batch, "--json")
	if code != 0 || !strings.Contains(out, `"last_errors":[{"line":7,"state":"polling"`) {
		t.Fatalf("status --json = %d: %s", code, out)
	}
	code, out, _ = run(t, "", "report", "--redis", url, "--batch", batch, "--format", "csv")
	if code != 0 || !strings.Contains(out, ",last_error,worker\n") || !strings.Contains(out, "no such host") {
		t.Fatalf("report csv = %d: %s", code, out)
	}
	code, out, _ = run(t, "", "report", "--redis", url, "--batch", batch, "--format", "json")
	if code != 0 || !strings.Contains(out, `"last_error":{"line":7`) {
		t.Fatalf("report json = %d: %s", code, out)
	}
	srv := httptest.NewServer(uiHandler(store, asynq.NewInspectorFromRedisClient(rdb), pausesOf(rdb)))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), "In flight after an error") || !strings.Contains(string(page), "no such host") {
		t.Fatalf("web UI lacks the last error:\n%s", page)
	}

	if _, err := store.Transition(ctx, k, events.Failed, nil, ""); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := run(t, "", "status", "--redis", url, "--batch", batch); code != 0 || strings.Contains(out, "no such host") {
		t.Fatalf("status after the outcome = %d: %s; want no last error", code, out)
	}
}
