package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/keys"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// authGuard counts consecutive authentication failures (401/403) across the
// fleet. Past a threshold the credential is broken for every destination,
// not just one: the guard pauses the queue, so that the rest of the batch
// waits for an operator instead of failing row by row. Any successful call
// resets the count.
type authGuard struct {
	rdb       redis.UniversalClient
	now       func() time.Time
	key       string
	threshold int64
	pause     func(ctx context.Context, reason string) error
	// failed says this process counted a failure since its last reset;
	// lastReset (unix nanoseconds) is when it last reset the count.
	failed    atomic.Bool
	lastReset atomic.Int64
}

// resetEvery is how often a process that saw no failure itself resets the
// fleet's count after a success. Under Cloudflare's rate limit (4 calls/s
// per credential) that is still every success or so, while an unthrottled
// worker does not pay one Redis round trip per call.
const resetEvery = 250 * time.Millisecond

// newAuthGuard returns a guard counting under key that calls pause once
// threshold consecutive failures were seen. threshold <= 0 disables it.
func newAuthGuard(rdb redis.UniversalClient, key string, threshold int, now func() time.Time, pause func(ctx context.Context, reason string) error) *authGuard {
	return &authGuard{rdb: rdb, now: now, key: key, threshold: int64(threshold), pause: pause}
}

// verdictWait bounds how long a failure below the threshold waits for the
// fleet's verdict: the queue paused (the credential is broken: hold the
// destination), or a success reset the count (the failure is the
// destination's own: fail it).
const verdictWait = 10 * time.Second

// Failure records one auth failure. hold says the queue is paused, so the
// destination goes back to the queue for after 'resume' instead of failing:
// the failure that reaches the threshold pauses it (tripped: one pause, one
// queue_paused event per incident, however many failures follow), later
// ones find it paused, and one below the threshold waits up to verdictWait
// for the count to reach the threshold (hold) or be reset by a success
// elsewhere (the destination's own failure: not held).
func (g *authGuard) Failure(ctx context.Context, cause string) (hold, tripped bool, err error) {
	if g == nil || g.threshold <= 0 {
		return false, false, nil
	}
	g.failed.Store(true)
	n, err := g.rdb.Incr(ctx, g.key).Result()
	if err != nil {
		return false, false, fmt.Errorf("count auth failures: %w", err)
	}
	switch {
	case n == g.threshold:
		reason := fmt.Sprintf("%d consecutive authentication failures from Cloudflare (last: %s): check the API token's Logs Edit permission, then run 'logpush-onboard resume'", n, cause)
		if err := g.pause(ctx, reason); err != nil {
			return false, false, fmt.Errorf("pause queue: %w", err)
		}
		return true, true, nil
	case n > g.threshold:
		return true, false, nil
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	timeout := time.After(verdictWait)
	for {
		select {
		case <-ctx.Done():
			return false, false, ctx.Err()
		case <-timeout:
			return false, false, nil
		case <-t.C:
		}
		v, err := g.rdb.Get(ctx, g.key).Int64()
		switch {
		case errors.Is(err, redis.Nil):
			return false, false, nil // reset by a success
		case err != nil:
			return false, false, fmt.Errorf("count auth failures: %w", err)
		case v >= g.threshold:
			return true, false, nil
		case v < n:
			return false, false, nil
		}
	}
}

// Trip pauses at once (the pause of the threshold, with reason) unless the
// count reached the threshold already: every worker's copy of the
// credential is refused. It reports whether this call paused.
func (g *authGuard) Trip(ctx context.Context, reason string) (bool, error) {
	if g == nil || g.threshold <= 0 {
		return false, nil
	}
	old, err := g.rdb.SetArgs(ctx, g.key, g.threshold, redis.SetArgs{Get: true}).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("count auth failures: %w", err)
	}
	if n, _ := strconv.ParseInt(old, 10, 64); n >= g.threshold {
		return false, nil
	}
	if err := g.pause(ctx, reason+": fix the credential, then run 'logpush-onboard resume'"); err != nil {
		return false, fmt.Errorf("pause queue: %w", err)
	}
	return true, nil
}

// Success resets the count: at once when this process counted a failure
// since its last reset, otherwise at most every resetEvery (failures of
// other processes are reset by their own successes, or by this one's next).
func (g *authGuard) Success(ctx context.Context) {
	if g == nil || g.threshold <= 0 {
		return
	}
	now := g.now().UnixNano()
	last := g.lastReset.Load()
	if !g.failed.Load() && now-last < int64(resetEvery) {
		return
	}
	if !g.lastReset.CompareAndSwap(last, now) {
		return // another goroutine is resetting
	}
	g.failed.Store(false)
	g.rdb.Del(ctx, g.key)
}

// pauseQueue is the pause of the workers' guard: it pauses the logpush
// queues through insp (a queue paused already is fine) and emits a
// queue_paused event with the reason into store.
func pauseQueue(rdb redis.UniversalClient, insp *asynq.Inspector, store *ledger.Store, now func() time.Time) func(ctx context.Context, reason string) error {
	return func(ctx context.Context, reason string) error {
		if err := notePause(ctx, rdb, reason, now()); err != nil {
			return err
		}
		for _, q := range tasks.Queues() {
			if err := insp.PauseQueue(q); err != nil && !strings.Contains(err.Error(), "already paused") {
				return err
			}
		}
		return store.Emit(ctx, events.Event{Event: events.QueuePaused, Error: &events.Error{Message: reason}, Time: now().UTC()})
	}
}

// ResetAuthFailures clears the count of consecutive 401/403 answers of
// the queue-wide pause (a fleet without named credentials), as resume
// does.
func ResetAuthFailures(ctx context.Context, rdb redis.UniversalClient) error {
	return rdb.Del(ctx, keys.AuthFailures).Err()
}
