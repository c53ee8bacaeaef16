package worker_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// TestNewRefusesWhatCannotWork: New names the field of a setting that
// cannot work, before it touches Redis, and never shows a secret.
func TestNewRefusesWhatCannotWork(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	tok := credentials.Cloudflare{APIToken: "tok-secret-123"}
	for _, c := range []struct {
		cfg   worker.Config
		field string
	}{
		{worker.Config{}, "Credentials"},
		{worker.Config{Credentials: credentials.Cloudflare{APIToken: "a b"}}, "Credentials"},
		{worker.Config{Credentials: tok, Handler: worker.HandlerConfig{PollDeadline: -time.Second}}, "Handler.PollDeadline"},
		{worker.Config{Credentials: tok, Handler: worker.HandlerConfig{PollFirst: -time.Second}}, "Handler.PollFirst"},
		{worker.Config{Credentials: tok, Server: worker.ServerConfig{Concurrency: -1}}, "Server.Concurrency"},
		{worker.Config{Credentials: tok, StateTTL: -time.Hour}, "StateTTL"},
		{worker.Config{Credentials: tok, EventsMaxLen: -1}, "EventsMaxLen"},
		{worker.Config{Credentials: tok, AuthPauseAfter: -2}, "AuthPauseAfter"},
		{worker.Config{Credentials: tok, APIRate: "lots"}, "APIRate"},
		{worker.Config{Credentials: tok, BudgetKey: "no spaces"}, "BudgetKey"},
		{worker.Config{Credentials: tok, Storage: credentials.Storage{AzureAccountKey: "az-secret"}}, "Storage"},
	} {
		_, err := worker.New(t.Context(), rdb, c.cfg)
		var ce *worker.ConfigError
		if !errors.As(err, &ce) || ce.Field != c.field {
			t.Errorf("New(%s) = %v, want a ConfigError for %s", c.field, err, c.field)
			continue
		}
		if strings.Contains(err.Error(), "tok-secret-123") || strings.Contains(err.Error(), "az-secret") {
			t.Errorf("%s: error shows a secret: %v", c.field, err)
		}
	}
	if n, _ := rdb.DBSize(context.Background()).Result(); n != 0 {
		t.Errorf("a refused config wrote %d keys", n)
	}
	if _, err := worker.New(t.Context(), nil, worker.Config{Credentials: tok}); !errors.Is(err, worker.ErrNoRedis) {
		t.Errorf("New(nil) = %v, want ErrNoRedis", err)
	}
}

// TestNewSharedRate: a chosen rate that differs from the one stored with
// the budget is refused with both rates; RateOverride replaces it.
func TestNewSharedRate(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	cfg := worker.Config{Credentials: credentials.Cloudflare{APIToken: "tok"}, APIRate: "600/1m", APIRateClaim: worker.RateRequire}
	if _, err := worker.New(t.Context(), rdb, cfg); err != nil {
		t.Fatal(err)
	}
	cfg.APIRate = "60/1m"
	_, err := worker.New(t.Context(), rdb, cfg)
	var rc *worker.RateConflictError
	if !errors.As(err, &rc) || rc.Shared != "600/1m" || rc.Wanted != "60/1m" {
		t.Fatalf("New with another rate = %v, want a RateConflictError 600/1m vs 60/1m", err)
	}
	cfg.APIRateClaim = worker.RateOverride
	if _, err := worker.New(t.Context(), rdb, cfg); err != nil {
		t.Fatalf("RateOverride: %v", err)
	}
	cfg.APIRateClaim = worker.RateRequire
	if _, err := worker.New(t.Context(), rdb, cfg); err != nil {
		t.Fatalf("after the override, 60/1m is the shared rate: %v", err)
	}
}

// TestWorkerProbes: /readyz says ready only between Start and Shutdown;
// /healthz says whether Redis answers; /metrics serves the registry.
func TestWorkerProbes(t *testing.T) {
	t.Parallel()
	rdb, mr := testutil.Mini(t)
	w, err := worker.New(t.Context(), rdb, worker.Config{Credentials: credentials.Cloudflare{APIToken: "tok"}, APIRate: "0"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)
	get := func(path string) int {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get("/readyz"); c != http.StatusServiceUnavailable {
		t.Errorf("/readyz before Start = %d", c)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	if c := get("/readyz"); c != http.StatusOK {
		t.Errorf("/readyz after Start = %d", c)
	}
	if c := get("/metrics"); c != http.StatusOK {
		t.Errorf("/metrics = %d", c)
	}
	w.Shutdown()
	if c := get("/readyz"); c != http.StatusServiceUnavailable {
		t.Errorf("/readyz after Shutdown = %d", c)
	}
	mr.Miniredis.Close() // the server only: the test's cleanup stops the clock
	if c := get("/healthz"); c != http.StatusServiceUnavailable {
		t.Errorf("/healthz with Redis gone = %d", c)
	}
}

// TestNewHooksClientOnlyWhenAsked: New adds its outage watch to the
// caller's Redis client only with WatchOutages: without it, a Redis that
// stops answering logs nothing of the worker's through that client.
func TestNewHooksClientOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	for _, watch := range []bool{false, true} {
		_, mr := testutil.Mini(t)
		px := testutil.NewProxy(t, mr.Addr())
		rdb := redis.NewClient(&redis.Options{Addr: px.Addr(), MaxRetries: -1})
		t.Cleanup(func() { rdb.Close() })
		var logs testutil.Buffer
		_, err := worker.New(t.Context(), rdb, worker.Config{Credentials: credentials.Cloudflare{APIToken: "tok"}, APIRate: "0",
			WatchOutages: watch, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		cut := make(chan struct{})
		go func() { px.Cut(time.Second); close(cut) }()
		failed := false
		for i := 0; i < 100 && !failed; i++ {
			failed = rdb.Ping(context.Background()).Err() != nil
		}
		<-cut
		if !failed {
			t.Fatal("every ping answered while the proxy was cut")
		}
		if logged := strings.Contains(logs.String(), "Redis unreachable"); logged != watch {
			t.Errorf("WatchOutages %v: outage logged = %v, want %v; logs:\n%s", watch, logged, watch, logs.String())
		}
	}
}
