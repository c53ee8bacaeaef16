package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
)

// TestFailingSince: the first failure of a stage, round and generation is
// kept across runs; another stage, round or generation starts afresh; an
// unregistered destination gets now without a record.
func TestFailingSince(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, b testBundle) {
		ctx := context.Background()
		k := ledger.Key{Batch: "b1", Hash: "h1"}
		t0 := time.UnixMilli(1_000_000)
		got, err := b.store.FailingSince(ctx, k, "challenge", 0, 0, t0)
		if err != nil || !got.Equal(t0) {
			t.Fatalf("unregistered = %v, %v; want %v", got, err, t0)
		}
		if _, err := register(ctx, b.store, k, ledger.Meta{Line: 1, Type: "s3", EnqueuedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		t1 := t0.Add(time.Minute)
		for i, c := range []struct {
			stage     string
			round, gn int
			now, want time.Time
		}{
			{"challenge", 0, 0, t1, t1},                                       // first failure: recorded
			{"challenge", 0, 0, t1.Add(time.Hour), t1},                        // the same stage later: kept
			{"challenge", 0, 1, t1.Add(2 * time.Hour), t1.Add(2 * time.Hour)}, // a fresh challenge: afresh
			{"create_job", 0, 1, t1.Add(3 * time.Hour), t1.Add(3 * time.Hour)},
			{"create_job", 1, 1, t1.Add(4 * time.Hour), t1.Add(4 * time.Hour)}, // a new round
			{"create_job", 1, 1, t1.Add(5 * time.Hour), t1.Add(4 * time.Hour)},
		} {
			got, err := b.store.FailingSince(ctx, k, c.stage, c.round, c.gn, c.now)
			if err != nil || !got.Equal(c.want) {
				t.Fatalf("case %d: FailingSince = %v, %v; want %v", i, got, err, c.want)
			}
		}
	})
}
