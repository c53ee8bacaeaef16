package budget

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestClaimRate: the first process stores its rate; a later one with a
// default adopts it, one with another explicit rate is refused naming both,
// and an override replaces it for everyone.
func TestClaimRate(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	ctx := context.Background()
	rdb := tb.client(t)
	cfg := func(r string) Config {
		return Config{Rate: must(ParseRate(r)), Key: "cred", Prefix: tb.prefix}
	}
	if got, err := ClaimRate(ctx, rdb, cfg("30/1m"), Follow); err != nil || got.String() != "30/1m" {
		t.Fatalf("follow without a shared rate = %v, %v; want its own", got, err)
	}
	if got, err := ClaimRate(ctx, rdb, cfg("60/1m"), Require); err != nil || got.String() != "60/1m" {
		t.Fatalf("first claim = %v, %v; want 60/1m (follow stores nothing)", got, err)
	}
	if got, err := ClaimRate(ctx, rdb, cfg("30/1m"), Follow); err != nil || got.String() != "60/1m" {
		t.Fatalf("follow = %v, %v; want the shared 60/1m", got, err)
	}
	if got, err := ClaimRate(ctx, rdb, cfg("1200/5m"), Adopt); err != nil || got.String() != "60/1m" {
		t.Fatalf("adopt = %v, %v; want the shared 60/1m", got, err)
	}
	_, err := ClaimRate(ctx, rdb, cfg("600/1m"), Require)
	var ce *RateConflictError
	if !errors.As(err, &ce) || ce.Shared.String() != "60/1m" || ce.Wanted.String() != "600/1m" {
		t.Fatalf("conflicting claim = %v, want a RateConflictError naming 60/1m and 600/1m", err)
	}
	if got, err := ClaimRate(ctx, rdb, cfg("600/1m"), Override); err != nil || got.String() != "600/1m" {
		t.Fatalf("override = %v, %v", got, err)
	}
	if got, err := ClaimRate(ctx, rdb, cfg("600/1m"), Require); err != nil || got.String() != "600/1m" {
		t.Fatalf("claim after override = %v, %v", got, err)
	}
	other := cfg("60/1m")
	other.Key = "another-user"
	if got, err := ClaimRate(ctx, rdb, other, Require); err != nil || got.String() != "60/1m" {
		t.Fatalf("another key = %v, %v: keys must not share a rate", got, err)
	}
}

// TestBudgetFollowsOverride: a running budget takes the rate another
// process overrode at its next check (at the latest one slot of the old
// rate later), and the override starts the window afresh.
func TestBudgetFollowsOverride(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	ctx := context.Background()
	slow := Config{Rate: must(ParseRate("2/2s")), MaxWait: 500 * time.Millisecond}
	shared := slow
	shared.Prefix, shared.Key = tb.prefix, "cred"
	if _, err := ClaimRate(ctx, tb.client(t), shared, Require); err != nil {
		t.Fatal(err)
	}
	b := tb.budget(t, slow)
	if _, err := b.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Wait(ctx); !errors.Is(err, ErrMaxWait) {
		t.Fatalf("second wait at 2/2s = %v, want ErrMaxWait", err)
	}
	fast := shared
	fast.Rate = must(ParseRate("6000/1m"))
	if _, err := ClaimRate(ctx, tb.client(t), fast, Override); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond) // the old rate's next slot
	for i := range 10 {
		if _, err := b.Wait(ctx); err != nil {
			t.Fatalf("wait %d after the override to 6000/1m: %v", i, err)
		}
	}
}

func must(r Rate, err error) Rate {
	if err != nil {
		panic(err)
	}
	return r
}

// TestClaimForCredential: a named credential's budget is its budget_key,
// else its digest, never the process's key; its own api_rate wins over the
// process's and is required unless the process follows or overrides.
func TestClaimForCredential(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name             string
		proc             Claim
		apiRate, key     string
		wantRate, wantKy string
		wantMode         ClaimMode
	}{
		{"worker default", Claim{Rate: "1200/5m", Key: "proc", Mode: Adopt}, "", "", "1200/5m", "", Adopt},
		{"worker, file rate", Claim{Rate: "1200/5m", Mode: Adopt}, "600/5m", "bob", "600/5m", "bob", Require},
		{"explicit rate, file rate", Claim{Rate: "1200/5m", Mode: Require}, "600/5m", "", "600/5m", "", Require},
		{"producer, file rate", Claim{Rate: "1200/5m", Mode: Follow}, "600/5m", "", "600/5m", "", Follow},
		{"override, file rate", Claim{Rate: "1200/5m", Mode: Override}, "600/5m", "k", "600/5m", "k", Override},
	} {
		got := c.proc.ForCredential(c.apiRate, c.key, "digest")
		want := Claim{Rate: c.wantRate, Key: c.wantKy, Digest: "digest", Mode: c.wantMode}
		if got != want {
			t.Errorf("%s: %+v, want %+v", c.name, got, want)
		}
	}
}
