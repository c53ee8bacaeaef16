package worker_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
)

// TestLineBeforeRegistration: the producer enqueues a destination's task
// before it registers the destination, so a fast worker runs it first. The
// worker registers it on the way at the task's line: its state and its
// events have the line at once, and the producer's registration after it
// still counts the destination as new.
func TestLineBeforeRegistration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	b.dest.Line = 7
	if err := b.h.Challenge(ctx, challengeTask(t, b.dest)); err != nil {
		t.Fatal(err)
	}
	st, err := b.store.Get(ctx, b.key())
	if err != nil || st.Line != 7 || st.State != events.Polling {
		t.Fatalf("state before the producer's registration = %+v, %v; want polling at line 7", st, err)
	}
	known, errs := b.store.RegisterMany(ctx, []ledger.Registration{{Key: b.key(), Meta: ledger.Meta{Line: 7, Type: "s3", EnqueuedAt: time.Now()}}})
	if errs != nil || known[0] != nil {
		t.Fatalf("the producer's registration after the worker = %+v, %v; want new", known[0], errs)
	}
	if bs, err := b.store.Batch(ctx, b.dest.BatchID); err != nil || bs.Total != 1 {
		t.Fatalf("batch = %+v, %v; want total 1", bs, err)
	}

	// A failure before the producer's registration: its event has the line.
	f := setup(t)
	f.dest.Line = 9
	f.api.challengeErr = &cloudflare.APIError{Endpoint: "ownership", HTTPStatus: http.StatusBadRequest, Codes: []int{1001}, Message: "bad destination", Kind: cloudflare.Permanent}
	if err := f.h.Challenge(ctx, challengeTask(t, f.dest)); err != nil {
		t.Fatal(err)
	}
	evs := f.events(t)
	if len(evs) != 1 || evs[0].Event != events.Failed || evs[0].Line != 9 {
		t.Fatalf("events = %+v, want one failed at line 9", evs)
	}
	if st, err := f.store.Get(ctx, f.key()); err != nil || st.Line != 9 {
		t.Fatalf("failed state = %+v, %v; want line 9", st, err)
	}
}
