package cli

import (
	"context"
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

// TestWebFailures: the web UI counts the destinations failed today (asynq's
// "failed" counts task errors, and a failed destination ends its task
// without one), and its recent failures leave out a destination retried
// and validated since.
func TestWebFailures(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Redis(t)
	store := ledger.NewStore(rdb, ledger.Config{})
	ctx := context.Background()
	now := time.Now().UTC()
	fail := func(line int, dest string) events.Event {
		return events.Event{Event: events.Failed, BatchID: "b-web", Scope: "zone", ScopeID: "z", Destination: dest, Line: line, Time: now,
			Error: &events.Error{Message: "boom " + dest}}
	}
	retried := fail(2, "gs://retried/p")
	validated := retried
	validated.Event, validated.Error = events.Validated, nil
	for _, e := range []events.Event{retried, fail(3, "gs://still/p"), validated} {
		if err := store.Emit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(uiHandler(store, asynq.NewInspectorFromRedisClient(rdb), func(context.Context) string { return "" }))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if !strings.Contains(page, "boom gs://still/p") || strings.Contains(page, "boom gs://retried/p") {
		t.Errorf("recent failures: want the failing destination only, not the one validated since:\n%s", page)
	}
	if !strings.Contains(page, `Destinations failed today (UTC): <b class="err">2</b>`) {
		t.Errorf("the page does not count the 2 failures of today:\n%s", page)
	}
	if strings.Contains(page, "failed today</th>") {
		t.Errorf("the page still labels asynq's task errors as failures:\n%s", page)
	}
}
