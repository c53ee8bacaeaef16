package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

// BenchmarkEnter is the challenge task's move of a registered destination
// to polling (Store.Enter with its fields) on the real Redis: one script
// run, the state read back. Its round trip dominates ns/op; allocs/op and
// B/op are the worker's.
func BenchmarkEnter(b *testing.B) {
	ctx := context.Background()
	rdb, _ := testutil.Redis(b)
	store := ledger.NewStore(rdb, ledger.Config{})
	k := ledger.Key{Batch: "b-3f2a9c1d0e4b", Hash: "13ea0aabbb95a5607d77c82c13bd3918"}
	meta := ledger.Meta{Line: 2, Scope: "zone", ScopeID: "023e105f4ecef8ad9ca31a8372d0c353",
		Destination: "s3://my-logs/http?region=us-east-1", Type: "s3", EnqueuedAt: time.Now()}
	if _, errs := store.RegisterMany(ctx, []ledger.Registration{{Key: k, Meta: meta}}); errs != nil {
		b.Fatal(errs)
	}
	at := time.Now().UnixNano()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := store.Enter(ctx, k, 2, events.Polling, 0, 0, events.StageChallenge,
			"gen", 0, "filename", "http/ownership-challenge-6a1f0c2e.txt", "requested_at", at); err != nil {
			b.Fatal(err)
		}
	}
}
