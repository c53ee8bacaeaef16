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
func setup(t testing.TB) *testBundle {
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
func (tb *testBundle) client(t testing.TB) *redis.Client {
	c := redis.NewClient(tb.opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// budget returns a Budget on its own client with the test's prefix.
func (tb *testBundle) budget(t testing.TB, cfg Config) *Budget {
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
// than 40 grants, however the machine schedules them. How close the fleet
// gets to the theoretical maximum (Limit/Window * duration + burst) is the
// machine's pace as much as the budget's: BenchmarkSlidingWindow reports it.
func TestSlidingWindow(t *testing.T) {
	t.Parallel()
	rate := Rate{Limit: 40, Window: 2 * time.Second}
	grants, _ := hammer(t, setup(t), rate, 5*time.Second)
	if len(grants) == 0 {
		t.Fatal("no grants")
	}
	if most := maxInWindow(grants, rate.Window); most > rate.Limit {
		t.Errorf("a %s window holds %d grants; limit %d", rate.Window, most, rate.Limit)
	}
}

// BenchmarkSlidingWindow runs TestSlidingWindow's fleet and reports its
// grants as a share of the theoretical maximum (target: at least 90%) and
// of the GCRA maximum B+floor(D/T).
func BenchmarkSlidingWindow(b *testing.B) {
	rate := Rate{Limit: 40, Window: 2 * time.Second}
	const run = 5 * time.Second
	for range b.N {
		grants, l := hammer(b, setup(b), rate, run)
		ideal := float64(rate.Limit)/rate.Window.Seconds()*run.Seconds() + float64(l.Burst)
		tight := l.Burst + int(run.Seconds()*float64(l.Rate)/l.Period.Seconds())
		b.ReportMetric(100*float64(len(grants))/ideal, "%ideal")
		b.ReportMetric(100*float64(len(grants))/float64(tight), "%gcra")
		b.ReportMetric(float64(maxInWindow(grants, rate.Window)), "max/window")
	}
}

// hammer runs 6 processes of 4 workers each on one budget of rate for run
// and returns the grants' times from the start, sorted, and the limit.
func hammer(t testing.TB, tb *testBundle, rate Rate, run time.Duration) ([]time.Duration, redis_rate.Limit) {
	const (
		processes = 6
		workers   = 4
	)
	budgets := make([]*Budget, processes)
	for i := range budgets {
		budgets[i] = tb.budget(t, Config{Rate: rate})
	}
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
	l := budgets[0].limit
	if len(grants) > 0 {
		ideal := float64(rate.Limit)/rate.Window.Seconds()*run.Seconds() + float64(l.Burst)
		t.Logf("%d grants in %s: %.1f%% of Limit/Window*D+B = %.0f; most in any %s window: %d (limit %d)",
			len(grants), run, 100*float64(len(grants))/ideal, ideal, rate.Window, maxInWindow(grants, rate.Window), rate.Limit)
	}
	return grants, l
}

func TestPauseBlocksEveryProcess(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	ctx := context.Background()
	rate := Rate{Limit: 1000, Window: time.Second} // the limiter is not in the way
	a := tb.budget(t, Config{Rate: rate})
	others := []*Budget{tb.budget(t, Config{Rate: rate}), tb.budget(t, Config{Rate: rate}), tb.budget(t, Config{Rate: rate})}

	const pause = 2 * time.Second
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
			// Not before the pause ends (Redis expires the key to the
			// millisecond; allow that rounding). How late is not asserted:
			// that is the machine's, not the budget's.
			if end < pause-5*time.Millisecond {
				t.Errorf("process %d: Wait returned %s after Pause(%s) (waited %s)", i, end, pause, waited)
			}
		})
	}
	wg.Wait()
	if left, reason, err := a.cooldownLeft(ctx); err != nil || left != 0 || reason != "" {
		t.Errorf("after the pause: Cooldown() = %s, %q, %v; want none", left, reason, err)
	}
	// Once it passed, Wait grants without sleeping: a budget that may not
	// sleep at all (MaxWait 1ns) grants.
	now, err := New(a.rdb, Config{Rate: rate, Prefix: tb.prefix, Key: "cred", MaxWait: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if waited, err := now.Wait(ctx); err != nil {
		t.Errorf("Wait after the pause = %s, %v; want a grant without sleeping", waited, err)
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
	// Pauses of hours, checked to the hour below: the checks hold however
	// slowly the machine runs them.
	if err := a.Pause(ctx, 2*time.Hour, "first"); err != nil {
		t.Fatal(err)
	}
	check("pause 2h", time.Hour, 2*time.Hour, "first")
	if err := b.Pause(ctx, 30*time.Minute, "second"); err != nil {
		t.Fatal(err)
	}
	check("then 30m", time.Hour, 2*time.Hour, "first")
	if err := b.Pause(ctx, 0, "zero"); err != nil {
		t.Fatal(err)
	}
	check("then 0", time.Hour, 2*time.Hour, "first")
	if err := b.Pause(ctx, 3*time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	check("then 3h", 2*time.Hour, 3*time.Hour, "paused")
	if err := a.Pause(ctx, time.Hour, "shorter"); err != nil {
		t.Fatal(err)
	}
	check("then 1h", 2*time.Hour, 3*time.Hour, "paused")
}

func TestWaitContextCancel(t *testing.T) {
	t.Parallel()
	tb := setup(t)

	t.Run("cooldown", func(t *testing.T) {
		t.Parallel()
		b := tb.budget(t, Config{Key: "cooldown"})
		// An hour: only the cancel can end this Wait within the test.
		if err := b.Pause(context.Background(), time.Hour, "429"); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		waited, err := b.Wait(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Wait = %s, %v; want context.Canceled", waited, err)
		}
	})
	t.Run("rate", func(t *testing.T) {
		t.Parallel()
		b := tb.budget(t, Config{Key: "rate", Rate: Rate{Limit: 2, Window: time.Hour}}) // burst 1, then one per hour
		if _, err := b.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		waited, err := b.Wait(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait = %s, %v; want context.DeadlineExceeded", waited, err)
		}
	})
	t.Run("queued", func(t *testing.T) {
		t.Parallel()
		b := tb.budget(t, Config{Key: "queued"})
		if err := b.Pause(context.Background(), time.Hour, "429"); err != nil {
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
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("queued Wait = %s, %v; want context.DeadlineExceeded", waited, err)
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
		// MaxWait of minutes: a Wait that slept before it gave up would
		// not return within the test.
		const maxWait = 10 * time.Minute
		b := tb.budget(t, Config{Key: "cooldown", MaxWait: maxWait})
		if err := b.Pause(ctx, time.Hour, "429 from challenge"); err != nil {
			t.Fatal(err)
		}
		waited, err := b.Wait(ctx)
		var mw *MaxWaitError
		if !errors.Is(err, ErrMaxWait) || !errors.As(err, &mw) || waited >= maxWait {
			t.Fatalf("Wait = %s, %v; want ErrMaxWait without sleeping", waited, err)
		}
		if mw.RetryIn < 50*time.Minute || mw.RetryIn > time.Hour || mw.Reason != "429 from challenge" || mw.MaxWait != maxWait {
			t.Errorf("MaxWaitError = %+v", *mw)
		}
	})
	t.Run("rate", func(t *testing.T) {
		t.Parallel()
		const maxWait = 10 * time.Minute
		b := tb.budget(t, Config{Key: "rate", Rate: Rate{Limit: 2, Window: time.Hour}, MaxWait: maxWait})
		if _, err := b.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		waited, err := b.Wait(ctx)
		var mw *MaxWaitError
		if !errors.As(err, &mw) || waited >= maxWait || mw.Reason != "" || mw.RetryIn < 50*time.Minute {
			t.Fatalf("Wait = %s, %v; want a MaxWaitError without sleeping, next slot in about 1h", waited, err)
		}
		t.Log(err)
	})
	t.Run("short enough", func(t *testing.T) {
		t.Parallel()
		b := tb.budget(t, Config{Key: "short", MaxWait: time.Hour})
		t0 := time.Now()
		if err := b.Pause(ctx, 300*time.Millisecond, "429"); err != nil {
			t.Fatal(err)
		}
		if waited, err := b.Wait(ctx); err != nil || time.Since(t0) < 295*time.Millisecond {
			t.Errorf("Wait = %s (%s after the pause began), %v; want a grant once the 300ms cooldown ended", waited, time.Since(t0), err)
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
	b := tb.budget(t, Config{MaxWait: time.Minute, OnWait: func(d time.Duration) { got = append(got, d) }})
	const pause = 200 * time.Millisecond
	t0 := time.Now()
	if err := b.Pause(context.Background(), pause, "429"); err != nil {
		t.Fatal(err)
	}
	t1 := time.Now()
	waited, err := b.Wait(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The Wait slept out what was left of the pause when it began.
	if least := pause - t1.Sub(t0) - 5*time.Millisecond; waited < least {
		t.Errorf("Wait = %s, want at least %s", waited, least)
	}
	if err := b.Pause(context.Background(), time.Hour, "429"); err != nil {
		t.Fatal(err)
	}
	failed, err := b.Wait(context.Background())
	if !errors.Is(err, ErrMaxWait) {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != waited || got[1] != failed {
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
	// 4 emission intervals of 111ms, less one clock step; how much more
	// is the machine's.
	if el := time.Since(start); el < 4*time.Second/9-60*time.Millisecond {
		t.Errorf("5 grants of 10/1s took %s; want at least 444ms", el)
	}
	// A shorter Pause keeps the longer one's reason (an hour: the check
	// holds however slowly the machine runs it).
	long, err := New(rdb, Config{Key: "long", Rate: Rate{Limit: 10, Window: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if err := long.Pause(ctx, time.Hour, "429"); err != nil {
		t.Fatal(err)
	}
	if left, reason, err := long.cooldownLeft(ctx); err != nil || left <= 0 || reason != "429" {
		t.Fatalf("Cooldown() = %s, %q, %v", left, reason, err)
	}
	if err := long.Pause(ctx, 100*time.Millisecond, "shorter"); err != nil {
		t.Fatal(err)
	}
	if _, reason, _ := long.cooldownLeft(ctx); reason != "429" {
		t.Errorf("a shorter Pause replaced the reason: %q", reason)
	}
	t0 := time.Now()
	if err := b.Pause(ctx, 300*time.Millisecond, "429"); err != nil {
		t.Fatal(err)
	}
	// Not before the cooldown ends, less one clock step.
	if waited, err := b.Wait(ctx); err != nil || time.Since(t0) < 300*time.Millisecond-60*time.Millisecond {
		t.Errorf("Wait during a 300ms cooldown = %s (%s after it began), %v", waited, time.Since(t0), err)
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
	// run starts waiters Waits at once on b and returns their results, and
	// the time from the first Wait's start to the last's.
	run := func(b *Budget) (waited []time.Duration, errs []error, spread time.Duration) {
		var (
			mu     sync.Mutex
			wg     sync.WaitGroup
			starts []time.Time
		)
		for range waiters {
			wg.Go(func() {
				start := time.Now()
				w, err := b.Wait(context.Background())
				mu.Lock()
				waited, errs, starts = append(waited, w), append(errs, err), append(starts, start)
				mu.Unlock()
			})
		}
		wg.Wait()
		slices.SortFunc(starts, time.Time.Compare)
		return waited, errs, starts[len(starts)-1].Sub(starts[0])
	}

	t.Run("rate", func(t *testing.T) {
		t.Parallel()
		// Burst 1, then one per 10s/9 = 1.1s: the slots that open before
		// the last Wait's MaxWait of 2s ends, time queued included, are
		// the most that can be granted (1 + 2 when the Waits start
		// together); the rest give up, told when the next slot opens. How
		// many of those slots a loaded machine still catches is not
		// asserted, but the first Wait finds the burst.
		const maxWait = 2 * time.Second
		b := tb.budget(t, Config{Key: "rate", Rate: Rate{Limit: 10, Window: 10 * time.Second}, MaxWait: maxWait})
		waited, errs, spread := run(b)
		granted := 0
		for i, err := range errs {
			var mw *MaxWaitError
			switch {
			case err == nil:
				granted++
			case !errors.As(err, &mw) || mw.Reason != "" || mw.RetryIn <= 0 || mw.RetryIn > b.interval || mw.MaxWait != maxWait:
				t.Errorf("Wait = %v (%+v) after %s; want a grant or a rate MaxWaitError", err, mw, waited[i])
			}
		}
		most := 1 + int((spread+maxWait)/b.interval)
		t.Logf("%d of %d Waits granted within %s (started over %s)", granted, waiters, maxWait, spread)
		if granted < 1 || granted > most {
			t.Errorf("%d Waits granted; want the burst 1 and at most %d in all", granted, most)
		}
	})
	t.Run("cooldown", func(t *testing.T) {
		t.Parallel()
		var commands atomic.Int64
		c := tb.client(t)
		c.AddHook(countHook{&commands})
		// A MaxWait of minutes: a Wait that slept before it gave up
		// would not return within the test.
		const maxWait = 10 * time.Minute
		b, err := New(c, Config{Prefix: tb.prefix, Key: "cooldown", MaxWait: maxWait})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Pause(context.Background(), time.Hour, "429 from validate"); err != nil {
			t.Fatal(err)
		}
		commands.Store(0)
		waited, errs, _ := run(b)
		for i, err := range errs {
			var mw *MaxWaitError
			if !errors.As(err, &mw) || mw.Reason != "429 from validate" || mw.RetryIn < 50*time.Minute || mw.RetryIn > time.Hour {
				t.Errorf("Wait = %v; want a MaxWaitError for the cooldown", err)
			}
			if waited[i] >= maxWait {
				t.Errorf("Wait took %s; want a MaxWaitError without sleeping", waited[i])
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
			granted, d, reason, _, err := b.check(ctx)
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
				if err != nil || len(v) < 4 {
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

// TestWaitInTurn: a WaitInTurn that would queue behind TurnSpan or more of
// this process's Waits returns a *MaxWaitError at once, about when its
// turn would come, instead of queueing; one with fewer ahead waits its turn.
func TestWaitInTurn(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	// Burst 1, then one call per 10 s / 3: the second Wait holds the gate,
	// asleep until its slot, and the third is blocked behind it.
	b := tb.budget(t, Config{Key: "turn", Rate: Rate{Limit: 4, Window: 10 * time.Second}})
	if b.interval < TurnSpan {
		t.Fatalf("interval %s: the test needs one Wait ahead to be TurnSpan", b.interval)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := b.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 3)
	go func() { _, err := b.Wait(ctx); errs <- err }()
	for b.blocked.Load() != 0 || len(b.gate) == 0 {
		time.Sleep(time.Millisecond) // the second holds the gate
	}
	// None blocked ahead: it queues, and waits for its turn.
	go func() { _, err := b.WaitInTurn(ctx, nil); errs <- err }()
	for b.blocked.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	// One ahead, a full interval of grants: not in turn.
	_, err := b.WaitInTurn(ctx, nil)
	var mw *MaxWaitError
	if !errors.As(err, &mw) || mw.RetryIn != 2*b.interval || mw.Reason != "" {
		t.Fatalf("WaitInTurn behind one Wait = %v, want a MaxWaitError to retry in %s", err, 2*b.interval)
	}
	if n := b.blocked.Load(); n != 1 {
		t.Fatalf("%d Waits blocked after it gave up, want the one that queued", n)
	}
	cancel()
	for range 2 {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Fatalf("a queued Wait ended with %v, want its context's end", err)
		}
	}
}

// TestWaitInTurnHandsOff: a WaitInTurn that would rather not use a grant
// (accept false) hands it to a plain Wait blocked behind it, and takes the
// next; with none blocked and nothing to wait for (later 0), or once it
// accepts, it takes its grant.
func TestWaitInTurnHandsOff(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	// Burst 1, one call per 250 ms.
	b := tb.budget(t, Config{Key: "handoff", Rate: Rate{Limit: 41, Window: 10 * time.Second}, Burst: 1})
	ctx := context.Background()
	if _, err := b.Wait(ctx); err != nil { // the burst: the next slot is an interval away
		t.Fatal(err)
	}
	var asked []int64
	var validated atomic.Int64
	order := make(chan string, 2)
	go func() {
		_, err := b.WaitInTurn(ctx, func() (bool, time.Duration) {
			asked = append(asked, validated.Load())
			return len(asked) > 1, 0 // not the first grant
		})
		if err != nil {
			t.Error(err)
		}
		order <- "challenge"
	}()
	for len(b.gate) == 0 {
		time.Sleep(time.Millisecond) // it holds the gate, asleep until its slot
	}
	go func() {
		if _, err := b.Wait(ctx); err != nil {
			t.Error(err)
		}
		validated.Add(1)
		order <- "validate"
	}()
	for b.blocked.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	first, second := <-order, <-order // asked is the challenge's, done
	if first != "validate" || second != "challenge" {
		t.Fatalf("calls in order %s, %s; want the blocked Wait handed the first grant, then the challenge", first, second)
	}
	if len(asked) != 2 || asked[1] != 1 {
		t.Fatalf("accept asked %v (calls done at each ask), want twice, the second after the handed one", asked)
	}
	// Alone, a grant it would rather not use is still its call.
	n := 0
	if _, err := b.WaitInTurn(ctx, func() (bool, time.Duration) { n++; return false, 0 }); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("accept asked %d times with no Wait blocked, want once", n)
	}
}

// TestWaitInTurnGivesBack: a WaitInTurn that waited for its slot (the
// budget at its rate) and would rather have a later grant, with no Wait
// blocked behind it to take this one, gives the call back and asks again
// when it said: the budget counts one call for it, not two.
func TestWaitInTurnGivesBack(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	// Burst 1, one call per 2 s.
	b := tb.budget(t, Config{Key: "giveback", Rate: Rate{Limit: 6, Window: 10 * time.Second}, Burst: 1})
	ctx := context.Background()
	if _, err := b.Wait(ctx); err != nil { // the burst: the next slot is an interval away
		t.Fatal(err)
	}
	tat := func() float64 {
		v, err := b.rdb.Get(ctx, b.rateKey).Float64()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := tat()
	asked := 0
	if _, err := b.WaitInTurn(ctx, func() (bool, time.Duration) {
		asked++
		return asked > 1, 50 * time.Millisecond
	}); err != nil {
		t.Fatal(err)
	}
	if asked != 2 {
		t.Fatalf("accept asked %d times, want twice: the grant given back, then the one 50 ms later", asked)
	}
	// One call: TAT moved one interval and the 50 ms (and whatever the
	// machine took), two would have moved it two intervals.
	if moved := time.Duration((tat() - before) * float64(time.Second)); moved >= b.interval+time.Second {
		t.Fatalf("TAT moved %s for the call, want one interval (%s) and a little: the first grant given back", moved, b.interval)
	}
}
