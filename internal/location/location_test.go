package location_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/location"
	"github.com/logpush-onboard/logpush-onboard/internal/luascript"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

// clock is a settable Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func setup(t *testing.T, cfg location.Config) (*location.Leases, *clock) {
	t.Helper()
	rdb, _ := testutil.Redis(t)
	c := &clock{now: time.Now()}
	cfg.Now = c.Now
	l, err := location.New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l, c
}

func waiter(h string, order float64) location.Waiter {
	return location.Waiter{Holder: h, Order: order, Queue: "q", TaskID: "task-" + h}
}

func acquire(t *testing.T, l *location.Leases, loc string, w location.Waiter) location.Grant {
	t.Helper()
	g, err := l.Acquire(context.Background(), loc, w)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestOneHolderAndAnOrderedLine: one holder at a time; the others wait in
// input order, the release names the head to wake, and only the head may
// take the free location.
func TestOneHolderAndAnOrderedLine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := setup(t, location.Config{Recheck: time.Second})
	loc := location.ID("s3://logs/http/ownership-challenge.txt")
	if g := acquire(t, l, loc, waiter("a", 1)); !g.Held {
		t.Fatal("a free location was not granted")
	}
	if g := acquire(t, l, loc, waiter("a", 1)); !g.Held {
		t.Fatal("the holder's fresh challenge was not granted again")
	}
	// c arrives before b but comes later in the input.
	if g := acquire(t, l, loc, waiter("c", 3)); g.Held || g.Ahead != 0 {
		t.Fatalf("c: %+v, want waiting first in line", g)
	}
	g := acquire(t, l, loc, waiter("b", 2))
	if g.Held || g.Ahead != 0 || g.Retry != time.Second {
		t.Fatalf("b: %+v, want waiting first in line, 1s", g)
	}
	if g := acquire(t, l, loc, waiter("c", 3)); g.Held || g.Ahead != 1 || g.Retry != 2*time.Second {
		t.Fatalf("c again: %+v, want one ahead, 2s", g)
	}
	next, err := l.Release(ctx, loc, "a", "digest-a")
	if err != nil || next == nil || next.Holder != "b" || next.Queue != "q" || next.TaskID != "task-b" {
		t.Fatalf("release: %+v %v, want b to wake", next, err)
	}
	if g := acquire(t, l, loc, waiter("c", 3)); g.Held {
		t.Fatal("c took the location before b, which comes first")
	}
	g = acquire(t, l, loc, waiter("b", 2))
	if !g.Held || g.Record != "digest-a" {
		t.Fatalf("b: %+v, want held with a's record", g)
	}
	// A second release by a, who no longer holds it, changes nothing.
	if next, err := l.Release(ctx, loc, "a", "stale"); err != nil || next != nil {
		t.Fatalf("a's second release: %+v %v", next, err)
	}
	if h, _ := l.Holder(ctx, loc); h != "b" {
		t.Fatalf("holder %q, want b", h)
	}
	if next, _ := l.Release(ctx, loc, "b", location.Absent); next == nil || next.Holder != "c" {
		t.Fatalf("release by b: %+v, want c", next)
	}
	if g := acquire(t, l, loc, waiter("c", 3)); !g.Held || g.Record != location.Absent {
		t.Fatalf("c: %+v", g)
	}
	if next, _ := l.Release(ctx, loc, "c", ""); next != nil {
		t.Fatalf("an empty line woke %+v", next)
	}
	if line, _ := l.Line(ctx, loc); len(line) != 0 {
		t.Fatalf("line left: %v", line)
	}
}

// TestExpiredLeaseAndDeadWaiters: a holder that never comes back loses the
// location after LeaseTTL, and a waiter that did not look in when it said it
// would is passed over.
func TestExpiredLeaseAndDeadWaiters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, c := setup(t, location.Config{LeaseTTL: 300 * time.Millisecond, Recheck: time.Second})
	loc := location.ID("gs://b/p/ownership-challenge.txt")
	acquire(t, l, loc, waiter("dead-holder", 1))
	acquire(t, l, loc, waiter("dead-waiter", 2))
	if g := acquire(t, l, loc, waiter("live", 3)); g.Held {
		t.Fatal("granted while held")
	}
	time.Sleep(500 * time.Millisecond) // the lease expires in Redis
	if g := acquire(t, l, loc, waiter("live", 3)); g.Held {
		t.Fatal("live went before dead-waiter, whose promised look-in has not passed")
	}
	c.Advance(time.Second + 31*time.Second) // dead-waiter's look-in (1s + grace) passed
	if g := acquire(t, l, loc, waiter("live", 3)); !g.Held {
		t.Fatalf("live still waits behind a waiter that never looked in: %+v", g)
	}
	if line, _ := l.Line(ctx, loc); len(line) != 0 {
		t.Fatalf("line left: %v", line)
	}
	// The dead holder's task comes back after all: it keeps polling but
	// does not take the location from live.
	if held, _, err := l.Renew(ctx, loc, "dead-holder"); err != nil || held {
		t.Fatalf("renew by the old holder: %v %v, want not held", held, err)
	}
	acquire(t, l, loc, waiter("next", 4))
	if held, waiting, err := l.Renew(ctx, loc, "live"); err != nil || !held || waiting != 1 {
		t.Fatalf("renew by the holder: %v %d %v, want held with 1 waiting", held, waiting, err)
	}
}

// TestEarlierInputGoesFirst: a destination earlier in the input that
// arrives when the location is free goes before the waiters.
func TestEarlierInputGoesFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := setup(t, location.Config{})
	loc := location.ID("azure://acct@c/p/ownership-challenge.txt")
	acquire(t, l, loc, waiter("x", 5))
	acquire(t, l, loc, waiter("y", 6))
	if _, err := l.Release(ctx, loc, "x", ""); err != nil {
		t.Fatal(err)
	}
	if g := acquire(t, l, loc, waiter("early", 1)); !g.Held {
		t.Fatalf("early: %+v, want held", g)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Redis(t)
	if _, err := location.New(rdb, location.Config{LeaseTTL: -time.Second}); err == nil {
		t.Error("a negative lease ttl was accepted")
	}
	if _, err := location.New(nil, location.Config{}); err == nil {
		t.Error("a nil client was accepted")
	}
}

// TestReleaseCall: the release run after another script (luascript.Then)
// frees the location and names the head of the line, as Release does.
func TestReleaseCall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, _ := testutil.Redis(t)
	l, err := location.New(rdb, location.Config{})
	if err != nil {
		t.Fatal(err)
	}
	loc := location.ID("s3://logs/http/ownership-challenge.txt")
	acquire(t, l, loc, waiter("a", 1))
	acquire(t, l, loc, waiter("b", 2))
	first := luascript.Call{Script: luascript.New(`return 1`)}
	_, res, err := luascript.Then(ctx, rdb, first, l.ReleaseCall(loc, "a", location.Absent))
	if err != nil {
		t.Fatal(err)
	}
	if next := location.Released(res); next == nil || next.Holder != "b" || next.Queue != "q" || next.TaskID != "task-b" {
		t.Fatalf("next = %+v, want b's task", next)
	}
	if h, _ := l.Holder(ctx, loc); h != "" {
		t.Fatalf("held by %q after the release", h)
	}
	if g := acquire(t, l, loc, waiter("b", 2)); !g.Held || g.Record != location.Absent {
		t.Fatalf("b's grant = %+v, want held with the record a left", g)
	}
}
