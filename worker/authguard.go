package worker

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

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
}

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

// Success resets the count.
func (g *AuthGuard) Success(ctx context.Context) {
	if g == nil || g.threshold <= 0 {
		return
	}
	g.rdb.Del(ctx, g.key)
}

// Reset clears the count, as resume does.
func (g *AuthGuard) Reset(ctx context.Context) error {
	return g.rdb.Del(ctx, g.key).Err()
}
