package worker

import (
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/internal/keys"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/metrics"
)

// TestCredentialPauseAllOrNothing: pausing a credential records its reason
// and its start together or not at all, and says why when it cannot: a
// pause whose start cannot be written leaves no paused credential without
// a start (nor an event), and a pause that works writes both.
func TestCredentialPauseAllOrNothing(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Redis(t)
	ctx := t.Context()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) // the worker's clock, not the wall's
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	p := &credentialPause{rdb: rdb, name: "acme", insp: insp, store: ledger.NewStore(rdb, ledger.Config{}),
		metrics: m, now: func() time.Time { return at }}
	// Another credential in use and not paused: the queue stays.
	if err := rdb.ZAdd(ctx, keys.CredentialsInUse, redis.Z{Score: float64(at.Unix()), Member: "other"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, keys.PausedCredentialsSince, "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	err = p.pause(ctx, "10 consecutive authentication failures")
	if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Fatalf("pause with an unwritable start = %v, want the WRONGTYPE error", err)
	}
	if n, _ := rdb.DBSize(ctx).Result(); n != 2 {
		left, _ := rdb.Keys(ctx, "*").Result()
		t.Errorf("a failed pause left keys %v, want only the two the test wrote", left)
	}

	if err := rdb.Del(ctx, keys.PausedCredentialsSince).Err(); err != nil {
		t.Fatal(err)
	}
	if err := p.pause(ctx, "10 consecutive authentication failures"); err != nil {
		t.Fatal(err)
	}
	reason, err := rdb.HGet(ctx, keys.PausedCredentials, "acme").Result()
	if err != nil || !strings.Contains(reason, "credential acme: 10 consecutive") {
		t.Errorf("paused credential's reason = %q, %v", reason, err)
	}
	since, err := rdb.HGet(ctx, keys.PausedCredentialsSince, "acme").Result()
	if want := at.Format(time.RFC3339); err != nil || since != want {
		t.Errorf("paused credential's start = %q, %v; want %s, the worker's clock", since, err, want)
	}
	if paused, err := QueuePaused(insp); err != nil || paused {
		t.Errorf("queue paused = %v, %v; want false: credential other is in use and not paused", paused, err)
	}
}
