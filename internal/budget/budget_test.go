package budget

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/go-redis/redis_rate/v10"
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
		if _, _, err := b.cooldownLeft(context.Background()); err != nil {
			t.Fatal(err)
		}
		w, err := New(b.rdb, Config{Rate: rate, Prefix: tb.prefix, Key: "warmup"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Wait(context.Background()); err != nil {
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
	left, reason, err := others[0].cooldownLeft(ctx)
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
	if left, reason, err := a.cooldownLeft(ctx); err != nil || left != 0 || reason != "" {
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
		left, reason, err := b.cooldownLeft(ctx)
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
	t.Run("queued", func(t *testing.T) {
		t.Parallel()
		b := tb.budget(t, Config{Key: "queued"})
		if err := b.Pause(context.Background(), 10*time.Second, "429"); err != nil {
			t.Fatal(err)
		}
		holder, cancelHolder := context.WithCancel(context.Background())
		defer cancelHolder()
		held := make(chan error, 1)
		go func() { _, err := b.Wait(holder); held <- err }()
		for len(b.gate) == 0 { // the first Wait holds the gate, sleeping on the cooldown
			time.Sleep(time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		waited, err := b.Wait(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || waited > 450*time.Millisecond {
			t.Errorf("queued Wait = %s, %v; want context.DeadlineExceeded soon after 150ms", waited, err)
		}
		cancelHolder()
		if err := <-held; !errors.Is(err, context.Canceled) {
			t.Errorf("holder's Wait = %v; want context.Canceled", err)
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
	if left, _, err := b.cooldownLeft(ctx); err != nil || left != 0 {
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
	if left, reason, err := b.cooldownLeft(ctx); err != nil || left <= 0 || reason != "429" {
		t.Fatalf("Cooldown() = %s, %q, %v", left, reason, err)
	}
	if err := b.Pause(ctx, 100*time.Millisecond, "shorter"); err != nil {
		t.Fatal(err)
	}
	if _, reason, _ := b.cooldownLeft(ctx); reason != "429" {
		t.Errorf("a shorter Pause replaced the reason: %q", reason)
	}
	if waited, err := b.Wait(ctx); err != nil || waited < 240*time.Millisecond {
		t.Errorf("Wait during a 300ms cooldown = %s, %v", waited, err)
	}
}

// countHook counts the commands a client sends: one per command, pipelines
// by their length.
type countHook struct{ n *atomic.Int64 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// TestCommandsPerGrant is the cost of contention: 3 processes of 20 workers
// each wait on one 40/2s budget for 4s. Every grant used to cost ~60 Redis
// checks of 2 scripts each (every waiter woke for every slot); with one
// waiter per process talking to Redis it costs about one check per process.
func TestCommandsPerGrant(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	const (
		processes = 3
		workers   = 20
		run       = 4 * time.Second
	)
	rate := Rate{Limit: 40, Window: 2 * time.Second}
	var commands atomic.Int64
	budgets := make([]*Budget, processes)
	for i := range budgets {
		c := tb.client(t)
		c.AddHook(countHook{&commands})
		b, err := New(c, Config{Rate: rate, Prefix: tb.prefix, Key: "cred"})
		if err != nil {
			t.Fatal(err)
		}
		budgets[i] = b
		// Warm up: dial, load the scripts (on a key of its own).
		w, err := New(c, Config{Rate: rate, Prefix: tb.prefix, Key: "warmup" + strconv.Itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	commands.Store(0)

	var (
		mu     sync.Mutex
		grants []time.Duration
		per    [processes]int
		wg     sync.WaitGroup
	)
	start := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(run))
	defer cancel()
	for i, b := range budgets {
		for range workers {
			wg.Go(func() {
				for {
					if _, err := b.Wait(ctx); err != nil {
						if !errors.Is(err, context.DeadlineExceeded) {
							t.Error(err)
						}
						return
					}
					at := time.Since(start)
					mu.Lock()
					grants = append(grants, at)
					per[i]++
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	n := commands.Load()
	slices.Sort(grants)
	if len(grants) == 0 {
		t.Fatal("no grants")
	}
	most := maxInWindow(grants, rate.Window)
	l := budgets[0].limit
	ideal := float64(rate.Limit)/rate.Window.Seconds()*run.Seconds() + float64(l.Burst)
	perGrant := float64(n) / float64(len(grants))
	t.Logf("%d grants in %s (%.1f%% of Limit/Window*D+B = %.0f), per process %v; most in any %s window: %d (limit %d)",
		len(grants), run, 100*float64(len(grants))/ideal, ideal, per, rate.Window, most, rate.Limit)
	t.Logf("%d Redis commands: %.2f per grant", n, perGrant)
	if most > rate.Limit {
		t.Errorf("a %s window holds %d grants; limit %d", rate.Window, most, rate.Limit)
	}
	if float64(len(grants)) < 0.9*ideal {
		t.Errorf("%d grants in %s; want at least 90%% of %.0f", len(grants), run, ideal)
	}
	if perGrant >= 6 {
		t.Errorf("%.2f Redis commands per grant; want fewer than 6", perGrant)
	}
	// No process starves: each gets at least a third of its fair share.
	for i, g := range per {
		if float64(g) < float64(len(grants))/processes/3 {
			t.Errorf("process %d got %d of %d grants", i, g, len(grants))
		}
	}
}

// TestMaxWaitQueued: time queued on the gate counts towards MaxWait, and
// waiters queued behind a holder that learns of a long cooldown give up at
// once, without asking Redis themselves.
func TestMaxWaitQueued(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	const waiters = 20
	// run starts waiters Waits at once on b and returns their results.
	run := func(b *Budget) (waited []time.Duration, errs []error) {
		var (
			mu sync.Mutex
			wg sync.WaitGroup
		)
		for range waiters {
			wg.Go(func() {
				w, err := b.Wait(context.Background())
				mu.Lock()
				waited, errs = append(waited, w), append(errs, err)
				mu.Unlock()
			})
		}
		wg.Wait()
		return waited, errs
	}

	t.Run("rate", func(t *testing.T) {
		t.Parallel()
		// Burst 2, then one per 2s/38 = 53ms: about 5 grants in 200ms.
		const maxWait = 200 * time.Millisecond
		b := tb.budget(t, Config{Key: "rate", Rate: Rate{Limit: 40, Window: 2 * time.Second}, MaxWait: maxWait})
		waited, errs := run(b)
		granted := 0
		for i, err := range errs {
			var mw *MaxWaitError
			switch {
			case err == nil:
				granted++
			case !errors.As(err, &mw) || mw.Reason != "" || mw.RetryIn <= 0 || mw.RetryIn > time.Second || mw.MaxWait != maxWait:
				t.Errorf("Wait = %v (%+v); want a grant or a rate MaxWaitError", err, mw)
			}
			if waited[i] > maxWait+150*time.Millisecond {
				t.Errorf("Wait took %s (%v); max wait %s", waited[i], err, maxWait)
			}
		}
		t.Logf("%d of %d Waits granted within %s", granted, waiters, maxWait)
		if granted < 3 || granted > 2+int(maxWait/b.interval)+1 {
			t.Errorf("%d Waits granted; want the burst 2 and about %d more", granted, maxWait/b.interval)
		}
	})
	t.Run("cooldown", func(t *testing.T) {
		t.Parallel()
		var commands atomic.Int64
		c := tb.client(t)
		c.AddHook(countHook{&commands})
		b, err := New(c, Config{Prefix: tb.prefix, Key: "cooldown", MaxWait: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Pause(context.Background(), 3*time.Second, "429 from validate"); err != nil {
			t.Fatal(err)
		}
		commands.Store(0)
		waited, errs := run(b)
		for i, err := range errs {
			var mw *MaxWaitError
			if !errors.As(err, &mw) || mw.Reason != "429 from validate" || mw.RetryIn < 2*time.Second || mw.RetryIn > 3*time.Second {
				t.Errorf("Wait = %v; want a MaxWaitError for the cooldown", err)
			}
			if waited[i] > 300*time.Millisecond {
				t.Errorf("Wait took %s; want an immediate MaxWaitError", waited[i])
			}
		}
		// One check learns of the cooldown; Waits that queued meanwhile give up
		// without one. (Waits that find the gate free check for themselves.)
		t.Logf("%d Waits during a cooldown: %d Redis commands", waiters, commands.Load())
		if n := commands.Load(); n > waiters+1 {
			t.Errorf("%d Redis commands for %d Waits", n, waiters)
		}
	})
}

// TestTakeMatchesRedisRate: the take script is redis_rate's allow_n (cost
// 1), decision for decision and byte for byte in the stored state, on a
// Redis whose clock the test drives.
func TestTakeMatchesRedisRate(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	limiter := redis_rate.NewLimiter(rdb)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, rate := range []Rate{{40, 2 * time.Second}, {1200, 5 * time.Minute}, {10, time.Second}, {3, time.Second}, {1, time.Second}} {
		b, err := New(rdb, Config{Rate: rate, Prefix: "p" + rate.String() + ":", Key: "ours"})
		if err != nil {
			t.Fatal(err)
		}
		theirs := "p" + rate.String() + ":theirs"
		allowed := 0
		for i := range 300 {
			// Mostly faster than the rate, sometimes idle for a while.
			step := time.Duration(rng.Float64() * float64(b.interval))
			if i%50 == 49 {
				step = 3 * rate.Window
			}
			now = now.Add(step)
			mr.SetTime(now)
			granted, d, reason, err := b.check(ctx)
			if err != nil || reason != "" {
				t.Fatalf("%s: check = %t, %s, %q, %v", rate, granted, d, reason, err)
			}
			res, err := limiter.Allow(ctx, theirs, b.limit)
			if err != nil {
				t.Fatal(err)
			}
			if granted != (res.Allowed == 1) {
				t.Fatalf("%s, call %d: take granted %t (%s), redis_rate allowed %d (retry after %s)", rate, i, granted, d, res.Allowed, res.RetryAfter)
			}
			if !granted {
				if want := max(res.RetryAfter, time.Millisecond); d < want || d > want+time.Microsecond {
					t.Fatalf("%s, call %d: take waits %s, redis_rate retries after %s", rate, i, d, res.RetryAfter)
				}
			} else {
				allowed++
				// d is when the next slot opens: a call at the same instant, on
				// a copy of the state, is allowed iff d is 0, else told to wait d.
				state, err := rdb.Get(ctx, b.rateKey).Result()
				if err != nil {
					t.Fatal(err)
				}
				probe := b.rateKey + ":probe"
				rdb.Set(ctx, probe, state, 0)
				v, err := b.take.Run(ctx, rdb, []string{probe}, b.limit.Burst, b.limit.Rate, b.limit.Period.Seconds()).Slice()
				if err != nil || len(v) != 4 {
					t.Fatal(v, err)
				}
				kind, _ := v[0].(int64)
				us, _ := v[1].(int64)
				if next := time.Duration(us) * time.Microsecond; (d == 0) != (kind == 0) || d > 0 && next != d {
					t.Fatalf("%s, call %d: granted, next slot in %s; a call then gets %v", rate, i, d, v)
				}
			}
			ours, err1 := rdb.Get(ctx, b.rateKey).Result()
			their, err2 := rdb.Get(ctx, "rate:"+theirs).Result()
			ttl1, ttl2 := mr.TTL(b.rateKey), mr.TTL("rate:"+theirs)
			if ours != their || err1 != nil || err2 != nil || ttl1 != ttl2 {
				t.Fatalf("%s, call %d: state %q (ttl %s, %v), redis_rate's %q (ttl %s, %v)", rate, i, ours, ttl1, err1, their, ttl2, err2)
			}
		}
		t.Logf("%s: %d of 300 allowed, identical", rate, allowed)
		if allowed == 0 || allowed == 300 {
			t.Errorf("%s: %d of 300 allowed; the sequence does not test much", rate, allowed)
		}
	}
}
