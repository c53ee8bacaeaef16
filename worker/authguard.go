package worker

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/internal/events"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// AuthFailuresKey is where workers count consecutive 401/403 answers across
// the fleet; resume clears it.
const AuthFailuresKey = "logpush:auth_failures"

// AuthGuard counts consecutive authentication failures (401/403) across the
// fleet. Past a threshold the credential is broken for every destination,
// not just one: the guard pauses the queue, so that the rest of the batch
// waits for an operator instead of failing row by row. Any successful call
// resets the count.
type AuthGuard struct {
	rdb       redis.UniversalClient
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

// NewAuthGuard returns a guard counting under key that calls pause once
// threshold consecutive failures were seen. threshold <= 0 disables it.
func NewAuthGuard(rdb redis.UniversalClient, key string, threshold int, pause func(ctx context.Context, reason string) error) *AuthGuard {
	return &AuthGuard{rdb: rdb, key: key, threshold: int64(threshold), pause: pause}
}

// Failure records one auth failure and reports whether the queue is now
// paused because of it.
func (g *AuthGuard) Failure(ctx context.Context, cause string) (bool, error) {
	if g == nil || g.threshold <= 0 {
		return false, nil
	}
	g.failed.Store(true)
	n, err := g.rdb.Incr(ctx, g.key).Result()
	if err != nil {
		return false, fmt.Errorf("count auth failures: %w", err)
	}
	if n < g.threshold {
		return false, nil
	}
	reason := fmt.Sprintf("%d consecutive authentication failures from Cloudflare (last: %s): check the API token's Logs Edit permission, then run 'logpush-onboard resume'", n, cause)
	if err := g.pause(ctx, reason); err != nil {
		return false, fmt.Errorf("pause queue: %w", err)
	}
	return true, nil
}

// Success resets the count: at once when this process counted a failure
// since its last reset, otherwise at most every resetEvery (failures of
// other processes are reset by their own successes, or by this one's next).
func (g *AuthGuard) Success(ctx context.Context) {
	if g == nil || g.threshold <= 0 {
		return
	}
	now := time.Now().UnixNano()
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

// PauseQueue is the pause of the workers' guard: it pauses the logpush
// queue through insp (a queue paused already is fine) and emits a
// queue_paused event with the reason into store.
func PauseQueue(insp *asynq.Inspector, store *events.Store) func(ctx context.Context, reason string) error {
	return func(ctx context.Context, reason string) error {
		if err := insp.PauseQueue(tasks.Queue); err != nil && !strings.Contains(err.Error(), "already paused") {
			return err
		}
		return store.Emit(ctx, events.Event{Event: events.QueuePaused, Error: &events.Error{Message: reason}, Time: time.Now().UTC()})
	}
}

// Reset clears the count, as resume does.
func (g *AuthGuard) Reset(ctx context.Context) error {
	return g.rdb.Del(ctx, g.key).Err()
}
