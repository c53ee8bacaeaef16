package budget

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

// testBundle is one test's view of the real Redis: options to open clients
// (one per simulated process) and a key prefix no other test uses. Tests
// never flush: they delete their own keys when they end.
type testBundle struct {
	opt    *redis.Options
	prefix string
}

var unsafeKeyChars = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// setup connects to the real Redis (REDIS_TEST_URL, default
// redis://127.0.0.1:6379/0). It fails the test when Redis does not answer,
// unless LOGPUSH_SKIP_REDIS=1.
func setup(t *testing.T) *testBundle {
	t.Helper()
	opt, err := redis.ParseURL(testutil.RedisURL())
	if err != nil {
		t.Fatalf("REDIS_TEST_URL: %v", err)
	}
	admin := redis.NewClient(opt)
	t.Cleanup(func() { admin.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := admin.Ping(ctx).Err(); err != nil {
		if os.Getenv("LOGPUSH_SKIP_REDIS") == "1" {
			t.Skipf("LOGPUSH_SKIP_REDIS=1 and Redis at %s does not answer: %v", opt.Addr, err)
		}
		t.Fatalf("real Redis at %s does not answer (start one, or set LOGPUSH_SKIP_REDIS=1): %v", opt.Addr, err)
	}
	prefix := fmt.Sprintf("logpush-test:budget:%s:%d:%d:",
		unsafeKeyChars.ReplaceAllString(t.Name(), "_"), os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() {
		ctx := context.Background()
		for _, pattern := range []string{prefix + "*", "rate:" + prefix + "*"} {
			iter := admin.Scan(ctx, 0, pattern, 100).Iterator()
			for iter.Next(ctx) {
				admin.Del(ctx, iter.Val())
			}
		}
	})
	return &testBundle{opt: opt, prefix: prefix}
}

// client opens a new connection pool, as a separate process would.
func (tb *testBundle) client(t *testing.T) *redis.Client {
	c := redis.NewClient(tb.opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// budget returns a Budget on its own client with the test's prefix.
func (tb *testBundle) budget(t *testing.T, cfg Config) *Budget {
	t.Helper()
	cfg.Prefix = tb.prefix
	cfg.Key = cmp.Or(cfg.Key, "cred")
	b, err := New(tb.client(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSlidingWindow is the sizing proof on the real Redis: 6 processes of 4
// workers each hammer one 40/2s budget for 5s. No window of 2s may hold more
// than 40 grants, and the fleet must get at least 90% of the theoretical
// maximum (Limit/Window * duration + burst).
func TestSlidingWindow(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	const (
		processes = 6
		workers   = 4
		run       = 5 * time.Second
	)
	rate := Rate{Limit: 40, Window: 2 * time.Second}
	budgets := make([]*Budget, processes)
	for i := range budgets {
		budgets[i] = tb.budget(t, Config{Rate: rate})
	}
	burst := budgets[0].limit.Burst
	// The processes are running before the clock starts: connections dialled,
	// scripts loaded (on a key of their own).
	for _, b := range budgets {
		if _, _, err := b.Cooldown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := b.limiter.Allow(context.Background(), tb.prefix+"warmup", b.limit); err != nil {
			t.Fatal(err)
		}
	}

	var (
		mu     sync.Mutex
		grants []time.Duration
		wg     sync.WaitGroup
	)
	start := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(run))
	defer cancel()
	errs := make(chan error, processes*workers)
	for _, b := range budgets {
		for range workers {
			wg.Go(func() {
				for {
					_, err := b.Wait(ctx)
					if err != nil {
						if !errors.Is(err, context.DeadlineExceeded) {
							errs <- err
						}
						return
					}
					at := time.Since(start) // monotonic
					mu.Lock()
					grants = append(grants, at)
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	slices.Sort(grants)

	most := maxInWindow(grants, rate.Window)
	l := budgets[0].limit
	ideal := float64(rate.Limit)/rate.Window.Seconds()*run.Seconds() + float64(burst)
	tight := burst + int(run.Seconds()*float64(l.Rate)/l.Period.Seconds()) // B + floor(D/T)
	steady := float64(len(grants)-burst) / grants[len(grants)-1].Seconds()
	t.Logf("%d grants in %s: %.1f%% of Limit/Window*D+B = %.0f, %.1f%% of the GCRA maximum B+floor(D/T) = %d",
		len(grants), run, 100*float64(len(grants))/ideal, ideal, 100*float64(len(grants))/float64(tight), tight)
	t.Logf("most grants in any %s window: %d (limit %d); steady rate %.2f/s = %.1f%% of the limit %.0f/s, %.1f%% of the configured %d/%s (burst %d)",
		rate.Window, most, rate.Limit, steady, 100*steady*rate.Window.Seconds()/float64(rate.Limit), float64(rate.Limit)/rate.Window.Seconds(),
		100*steady*l.Period.Seconds()/float64(l.Rate), l.Rate, l.Period, burst)
	if most > rate.Limit {
		t.Errorf("a %s window holds %d grants; limit %d", rate.Window, most, rate.Limit)
	}
	if float64(len(grants)) < 0.9*ideal {
		t.Errorf("%d grants in %s; want at least 90%% of %.0f", len(grants), run, ideal)
	}
}

func TestPauseBlocksEveryProcess(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	ctx := context.Background()
	rate := Rate{Limit: 1000, Window: time.Second} // the limiter is not in the way
	a := tb.budget(t, Config{Rate: rate})
	others := []*Budget{tb.budget(t, Config{Rate: rate}), tb.budget(t, Config{Rate: rate}), tb.budget(t, Config{Rate: rate})}

	const pause = 800 * time.Millisecond
	t0 := time.Now()
	if err := a.Pause(ctx, pause, "429 from validate"); err != nil {
		t.Fatal(err)
	}
	left, reason, err := others[0].Cooldown(ctx)
	if err != nil || left <= 0 || left > pause || reason != "429 from validate" {
		t.Fatalf("Cooldown() = %s, %q, %v; want (0, %s], the reason", left, reason, err, pause)
	}
	var wg sync.WaitGroup
	for i, b := range others {
		wg.Go(func() {
			waited, err := b.Wait(ctx)
			end := time.Since(t0)
			if err != nil {
				t.Errorf("process %d: %v", i, err)
				return
			}
			// Redis expires the key to the millisecond; allow that rounding.
			if end < pause-5*time.Millisecond || end > pause+500*time.Millisecond {
				t.Errorf("process %d: Wait returned %s after Pause(%s) (waited %s)", i, end, pause, waited)
			}
		})
	}
	wg.Wait()
	if left, reason, err := a.Cooldown(ctx); err != nil || left != 0 || reason != "" {
		t.Errorf("after the pause: Cooldown() = %s, %q, %v; want none", left, reason, err)
	}
	// Once it passed, Wait does not block.
	if waited, err := a.Wait(ctx); err != nil || waited > 100*time.Millisecond {
		t.Errorf("Wait after the pause = %s, %v", waited, err)
	}
}

func TestPauseNeverShortens(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	ctx := context.Background()
	a, b := tb.budget(t, Config{}), tb.budget(t, Config{})

	check := func(step string, min, max time.Duration, wantReason string) {
		t.Helper()
		left, reason, err := b.Cooldown(ctx)
		if err != nil || left < min || left > max || reason != wantReason {
			t.Errorf("%s: Cooldown() = %s, %q, %v; want [%s, %s], %q", step, left, reason, err, min, max, wantReason)
		}
	}
	if err := a.Pause(ctx, 2*time.Second, "first"); err != nil {
		t.Fatal(err)
	}
	check("pause 2s", 1500*time.Millisecond, 2*time.Second, "first")
	if err := b.Pause(ctx, 500*time.Millisecond, "second"); err != nil {
		t.Fatal(err)
	}
	check("then 500ms", 1500*time.Millisecond, 2*time.Second, "first")
	if err := b.Pause(ctx, 0, "zero"); err != nil {
		t.Fatal(err)
	}
	check("then 0", 1500*time.Millisecond, 2*time.Second, "first")
	if err := b.Pause(ctx, 3*time.Second, ""); err != nil {
		t.Fatal(err)
	}
	check("then 3s", 2500*time.Millisecond, 3*time.Second, "paused")
	if err := a.Pause(ctx, time.Second, "shorter"); err != nil {
		t.Fatal(err)
	}
	check("then 1s", 2500*time.Millisecond, 3*time.Second, "paused")
}

func TestWaitContextCancel(t *testing.T) {
	t.Parallel()
	tb := setup(t)

	t.Run("cooldown", func(t *testing.T) {
		t.Parallel()
		b := tb.budget(t, Config{Key: "cooldown"})
		if err := b.Pause(context.Background(), 10*time.Second, "429"); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		waited, err := b.Wait(ctx)
		if !errors.Is(err, context.Canceled) || waited > 400*time.Millisecond {
			t.Errorf("Wait = %s, %v; want context.Canceled soon after 100ms", waited, err)
		}
	})
	t.Run("rate", func(t *testing.T) {
		t.Parallel()
		b := tb.budget(t, Config{Key: "rate", Rate: Rate{Limit: 2, Window: time.Minute}}) // burst 1, then one per minute
		if _, err := b.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		waited, err := b.Wait(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || waited > 450*time.Millisecond {
			t.Errorf("Wait = %s, %v; want context.DeadlineExceeded soon after 150ms", waited, err)
		}
	})
	t.Run("done before", func(t *testing.T) {
		t.Parallel()
		b := tb.budget(t, Config{Key: "done"})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := b.Wait(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Wait(canceled ctx) = %v", err)
		}
	})
}

func TestMaxWait(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	ctx := context.Background()

	t.Run("cooldown", func(t *testing.T) {
		t.Parallel()
		b := tb.budget(t, Config{Key: "cooldown", MaxWait: time.Second})
		if err := b.Pause(ctx, 5*time.Second, "429 from challenge"); err != nil {
			t.Fatal(err)
		}
		waited, err := b.Wait(ctx)
		var mw *MaxWaitError
		if !errors.Is(err, ErrMaxWait) || !errors.As(err, &mw) || waited > 200*time.Millisecond {
			t.Fatalf("Wait = %s, %v; want an immediate ErrMaxWait", waited, err)
		}
		if mw.RetryIn < 4*time.Second || mw.RetryIn > 5*time.Second || mw.Reason != "429 from challenge" || mw.MaxWait != time.Second {
			t.Errorf("MaxWaitError = %+v", *mw)
		}
	})
	t.Run("rate", func(t *testing.T) {
		t.Parallel()
		b := tb.budget(t, Config{Key: "rate", Rate: Rate{Limit: 2, Window: time.Minute}, MaxWait: time.Second})
		if _, err := b.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		waited, err := b.Wait(ctx)
		var mw *MaxWaitError
		if !errors.As(err, &mw) || waited > 200*time.Millisecond || mw.Reason != "" || mw.RetryIn < 50*time.Second {
			t.Fatalf("Wait = %s, %v; want an immediate MaxWaitError, next slot in about 1m", waited, err)
		}
		t.Log(err)
	})
	t.Run("short enough", func(t *testing.T) {
		t.Parallel()
		b := tb.budget(t, Config{Key: "short", MaxWait: time.Second})
		if err := b.Pause(ctx, 300*time.Millisecond, "429"); err != nil {
			t.Fatal(err)
		}
		if waited, err := b.Wait(ctx); err != nil || waited < 250*time.Millisecond {
			t.Errorf("Wait = %s, %v; want a grant after the 300ms cooldown", waited, err)
		}
	})
}

func TestKeyIsolation(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	ctx := context.Background()
	rate := Rate{Limit: 2, Window: time.Minute} // burst 1
	a := tb.budget(t, Config{Key: "aaaa", Rate: rate, MaxWait: 100 * time.Millisecond})
	b := tb.budget(t, Config{Key: "bbbb", Rate: rate, MaxWait: 100 * time.Millisecond})

	if _, err := a.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Wait(ctx); !errors.Is(err, ErrMaxWait) {
		t.Fatalf("second Wait on a spent budget = %v; want ErrMaxWait", err)
	}
	if _, err := b.Wait(ctx); err != nil {
		t.Fatalf("Wait on another key = %v; want a grant", err)
	}
	if err := a.Pause(ctx, 10*time.Second, "429"); err != nil {
		t.Fatal(err)
	}
	if left, _, err := b.Cooldown(ctx); err != nil || left != 0 {
		t.Errorf("another key's cooldown = %s, %v; want none", left, err)
	}
	// The same key under another prefix is another budget too.
	c, err := New(tb.client(t), Config{Key: "aaaa", Rate: rate, Prefix: tb.prefix + "other:", MaxWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(ctx); err != nil {
		t.Fatalf("Wait under another prefix = %v; want a grant", err)
	}
}

func TestOnWait(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	var got []time.Duration
	b := tb.budget(t, Config{MaxWait: time.Second, OnWait: func(d time.Duration) { got = append(got, d) }})
	if err := b.Pause(context.Background(), 200*time.Millisecond, "429"); err != nil {
		t.Fatal(err)
	}
	waited, err := b.Wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Pause(context.Background(), 5*time.Second, "429"); err != nil {
		t.Fatal(err)
	}
	failed, err := b.Wait(context.Background())
	if !errors.Is(err, ErrMaxWait) {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != waited || got[1] != failed || waited < 150*time.Millisecond {
		t.Errorf("OnWait got %v; Wait returned %s and %s", got, waited, failed)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	t.Cleanup(func() { rdb.Close() })
	for _, tt := range []struct {
		cfg     Config
		wantErr string
	}{
		{cfg: Config{}, wantErr: "api budget: key is required"},
		{cfg: Config{Key: "k", Burst: 1200}, wantErr: "burst 1200: must be at least 1 and below the limit 1200"},
		{cfg: Config{Key: "k", Burst: -1}, wantErr: "burst -1"},
		{cfg: Config{Key: "k", Rate: Rate{Limit: 1, Window: time.Second}, Burst: 2}, wantErr: "burst 2"},
		{cfg: Config{Key: "k", Rate: Rate{Limit: 10}}, wantErr: "window must be at least 1s"},
		{cfg: Config{Key: "k", MaxWait: -time.Second}, wantErr: "max wait -1s"},
		{cfg: Config{Key: "k"}},
		{cfg: Config{Key: "k", Rate: Rate{Limit: 1, Window: time.Second}}},
		{cfg: Config{Key: "k", Rate: Rate{Limit: 1200, Window: 5 * time.Minute}, Burst: 100}},
	} {
		_, err := New(rdb, tt.cfg)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !regexp.MustCompile(regexp.QuoteMeta(tt.wantErr)).MatchString(err.Error())) {
			t.Errorf("New(%+v) = %v; want %q", tt.cfg, err, tt.wantErr)
		}
	}
	if _, err := New(nil, Config{Key: "k"}); err == nil {
		t.Error("New(nil client) did not fail")
	}
}

// TestMiniredis runs the budget on the embedded Redis (miniredis, with the
// clock testutil.Mini drives from the wall clock in 50ms steps): redis_rate's
// script and the cooldown scripts run there unchanged.
func TestMiniredis(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	ctx := context.Background()
	b, err := New(rdb, Config{Key: "k", Rate: Rate{Limit: 10, Window: time.Second}}) // burst 1, then one per 1/9s
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 5 {
		if _, err := b.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// 4 emission intervals of 111ms, less one clock step.
	if el := time.Since(start); el < 4*time.Second/9-60*time.Millisecond || el > 2*time.Second {
		t.Errorf("5 grants of 10/1s took %s; want about 444ms", el)
	}
	if err := b.Pause(ctx, 300*time.Millisecond, "429"); err != nil {
		t.Fatal(err)
	}
	if left, reason, err := b.Cooldown(ctx); err != nil || left <= 0 || reason != "429" {
		t.Fatalf("Cooldown() = %s, %q, %v", left, reason, err)
	}
	if err := b.Pause(ctx, 100*time.Millisecond, "shorter"); err != nil {
		t.Fatal(err)
	}
	if _, reason, _ := b.Cooldown(ctx); reason != "429" {
		t.Errorf("a shorter Pause replaced the reason: %q", reason)
	}
	if waited, err := b.Wait(ctx); err != nil || waited < 240*time.Millisecond {
		t.Errorf("Wait during a 300ms cooldown = %s, %v", waited, err)
	}
}
