package budget

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// DefaultPrefix is the default Redis key prefix of budgets.
const DefaultPrefix = "logpush:budget:"

// ErrMaxWait is matched (errors.Is) by the *MaxWaitError Wait returns when
// the budget cannot grant a call within Config.MaxWait.
var ErrMaxWait = errors.New("api budget: wait would exceed max wait")

// Config configures a Budget. The zero value of every field but Key is
// replaced by its default.
type Config struct {
	// Rate is the budget: at most Rate.Limit calls in any window of length
	// Rate.Window. Default 1200/5m (DefaultLimit/DefaultWindow).
	Rate Rate
	// Key identifies the budget, one per credential: all processes with the
	// same Prefix and Key share it. Use a digest of the credential (e.g. a
	// SHA-256 prefix), never the credential itself. Required.
	Key string
	// Prefix is the Redis key prefix. Default DefaultPrefix.
	Prefix string
	// Burst is how many calls an idle budget grants at once; the steady rate
	// is then Rate.Limit-Burst per Rate.Window, so that no window holds more
	// than Rate.Limit (see the package documentation for the bound). Default
	// max(1, Rate.Limit/100), but 2 when the budget is so fast that a burst
	// of 1 would lose more to wake-up lateness than a second token costs
	// (Limit*(Limit-1)*2ms > Window, e.g. 40/2s or 120/10s; 1200/5m gets 12).
	// Must be below Rate.Limit (1 when Limit is 1).
	Burst int
	// MaxWait bounds one Wait: when the budget cannot grant a call within
	// MaxWait of the start of Wait, Wait returns a *MaxWaitError at once,
	// without sleeping first. Default 0: wait until ctx is done.
	MaxWait time.Duration
	// OnWait, if set, is called at the end of every Wait with the time it
	// took, whether or not it granted a call (e.g. to feed a histogram).
	OnWait func(waited time.Duration)
}

// WithDefaults returns cfg with every zero field but Key set to its default.
func (cfg Config) WithDefaults() Config {
	if cfg.Rate == (Rate{}) {
		cfg.Rate = Rate{Limit: DefaultLimit, Window: DefaultWindow}
	}
	cfg.Prefix = cmp.Or(cfg.Prefix, DefaultPrefix)
	if cfg.Burst == 0 {
		cfg.Burst = defaultBurst(cfg.Rate)
	}
	return cfg
}

// lateness is how late a waiter typically takes a slot after it opens: the
// Redis round trip plus timer slack (1-3ms measured on loopback).
const lateness = 2 * time.Millisecond

// defaultBurst is max(1, Limit/100), raised to 2 when the emission interval
// T = Window/(Limit-1) is so short that losing `lateness` per grant, which a
// burst of 1 does (see the package documentation), would cost more than the
// one token a burst of 2 takes from the steady rate: when
// lateness/T > 1/Limit, i.e. Limit*(Limit-1)*lateness > Window.
func defaultBurst(r Rate) int {
	b := max(1, r.Limit/100)
	if b == 1 && r.Limit >= 3 && float64(r.Limit)*float64(r.Limit-1)*float64(lateness) > float64(r.Window) {
		b = 2
	}
	return b
}

func (cfg Config) validate() error {
	if err := cfg.Rate.validate(); err != nil {
		return err
	}
	if cfg.Key == "" {
		return errors.New("key is required")
	}
	if cfg.Burst < 1 || (cfg.Rate.Limit > 1 && cfg.Burst >= cfg.Rate.Limit) || (cfg.Rate.Limit == 1 && cfg.Burst != 1) {
		return fmt.Errorf("burst %d: must be at least 1 and below the limit %d (1 when the limit is 1)", cfg.Burst, cfg.Rate.Limit)
	}
	if cfg.MaxWait < 0 {
		return fmt.Errorf("max wait %s: must not be negative", cfg.MaxWait)
	}
	return nil
}

// gcra returns the redis_rate limit for cfg: burst B and a steady rate of
// Limit-B per Window, so that B + floor(Window/T) <= Limit (package doc).
func (cfg Config) gcra() redis_rate.Limit {
	if cfg.Rate.Limit == 1 {
		// r = Limit-B would be 0: one call per slightly more than Window.
		return redis_rate.Limit{Rate: 1, Burst: 1, Period: cfg.Rate.Window + time.Millisecond}
	}
	return redis_rate.Limit{Rate: cfg.Rate.Limit - cfg.Burst, Burst: cfg.Burst, Period: cfg.Rate.Window}
}

// Budget is one credential's API budget, shared in Redis by every process
// that uses the same Prefix and Key. It is safe for concurrent use.
type Budget struct {
	rdb      redis.UniversalClient
	limiter  *redis_rate.Limiter
	limit    redis_rate.Limit
	rateKey  string // redis_rate prepends "rate:"
	coolKey  string
	maxWait  time.Duration
	onWait   func(time.Duration)
	pause    *redis.Script
	cooldown *redis.Script
}

// pauseScript extends the cooldown to ARGV[1] ms with reason ARGV[2] unless
// it already lasts at least that long: a Pause never shortens a cooldown.
const pauseScript = `
local d = tonumber(ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl >= d then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', d)
return 1
`

// cooldownScript returns {ms left, reason}, {0, ""} when there is no
// cooldown (a key without expiry is ignored, and overwritten by the next
// Pause).
const cooldownScript = `
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then
  return {0, ''}
end
return {ttl, redis.call('GET', KEYS[1]) or ''}
`

// New returns the budget cfg describes, stored in rdb. It does not talk to
// Redis.
func New(rdb redis.UniversalClient, cfg Config) (*Budget, error) {
	if rdb == nil {
		return nil, errors.New("api budget: redis client is nil")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("api budget: %w", err)
	}
	return &Budget{
		rdb:      rdb,
		limiter:  redis_rate.NewLimiter(rdb),
		limit:    cfg.gcra(),
		rateKey:  cfg.Prefix + cfg.Key,
		coolKey:  cfg.Prefix + cfg.Key + ":cooldown",
		maxWait:  cfg.MaxWait,
		onWait:   cfg.OnWait,
		pause:    redis.NewScript(pauseScript),
		cooldown: redis.NewScript(cooldownScript),
	}, nil
}

// MaxWaitError is the error Wait returns when the budget cannot grant a call
// within Config.MaxWait. errors.Is(err, ErrMaxWait) matches it; a handler
// can snooze its task for RetryIn instead of holding a worker.
type MaxWaitError struct {
	// RetryIn is the least time from the failed Wait until the budget could
	// grant a call (other callers may take that slot first).
	RetryIn time.Duration
	// Reason is the shared cooldown's reason, or "" when the budget is
	// simply spent.
	Reason string
	// MaxWait is the configured bound.
	MaxWait time.Duration
}

func (e *MaxWaitError) Error() string {
	what := "rate limit"
	if e.Reason != "" {
		what = "cooldown (" + e.Reason + ")"
	}
	return fmt.Sprintf("api budget: %s allows the next call in %s, beyond max wait %s", what, e.RetryIn, e.MaxWait)
}

// Is reports whether target is ErrMaxWait.
func (e *MaxWaitError) Is(target error) bool { return target == ErrMaxWait }

// Wait blocks until this process may make one API call and takes it from
// the budget. It first honours the shared cooldown (see Pause), then takes a
// token; when none is left it sleeps exactly as long as the limiter says and
// starts over, so a Pause made meanwhile is honoured too. It returns how long
// it took, and ctx's error (wrapped) when ctx is done first, a *MaxWaitError
// when the call cannot be granted within Config.MaxWait, or a Redis error.
func (b *Budget) Wait(ctx context.Context) (waited time.Duration, err error) {
	start := time.Now()
	defer func() {
		waited = time.Since(start)
		if b.onWait != nil {
			b.onWait(waited)
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("api budget wait: %w", err)
		}
		left, reason, err := b.readCooldown(ctx)
		if err != nil {
			return 0, fmt.Errorf("api budget wait: read cooldown: %w", err)
		}
		if left > 0 {
			if err := b.sleep(ctx, start, left, reason); err != nil {
				return 0, err
			}
			continue
		}
		res, err := b.limiter.Allow(ctx, b.rateKey, b.limit)
		if err != nil {
			return 0, fmt.Errorf("api budget wait: take token: %w", err)
		}
		if res.Allowed > 0 {
			return 0, nil
		}
		// Refused: RetryAfter is when the next slot opens. It is positive;
		// guard against a zero from float rounding becoming a busy loop.
		if err := b.sleep(ctx, start, max(res.RetryAfter, time.Millisecond), ""); err != nil {
			return 0, err
		}
	}
}

// sleep sleeps d unless ctx is done first or d would take Wait (begun at
// start) beyond MaxWait.
func (b *Budget) sleep(ctx context.Context, start time.Time, d time.Duration, reason string) error {
	if b.maxWait > 0 && time.Since(start)+d > b.maxWait {
		return &MaxWaitError{RetryIn: d, Reason: reason, MaxWait: b.maxWait}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("api budget wait: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}

// Pause starts or extends the shared cooldown to d from now, e.g. with the
// Retry-After of a 429: every Wait on this budget, in every process, blocks
// until it passes. It only extends: when the current cooldown lasts at least
// d, it and its reason are kept. d is rounded up to a millisecond; d <= 0
// does nothing.
func (b *Budget) Pause(ctx context.Context, d time.Duration, reason string) error {
	if d <= 0 {
		return nil
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if reason == "" {
		reason = "paused"
	}
	if err := b.pause.Run(ctx, b.rdb, []string{b.coolKey}, int64(ms), reason).Err(); err != nil {
		return fmt.Errorf("api budget pause: %w", err)
	}
	return nil
}

// Cooldown returns how long the shared cooldown has left and the reason its
// latest extension gave; 0 and "" when there is none.
func (b *Budget) Cooldown(ctx context.Context) (remaining time.Duration, reason string, err error) {
	remaining, reason, err = b.readCooldown(ctx)
	if err != nil {
		return 0, "", fmt.Errorf("api budget cooldown: %w", err)
	}
	return remaining, reason, nil
}

func (b *Budget) readCooldown(ctx context.Context) (time.Duration, string, error) {
	v, err := b.cooldown.Run(ctx, b.rdb, []string{b.coolKey}).Slice()
	if err != nil {
		return 0, "", err
	}
	if len(v) != 2 {
		return 0, "", fmt.Errorf("unexpected reply %v", v)
	}
	ms, _ := v[0].(int64)
	reason, _ := v[1].(string)
	if ms <= 0 {
		return 0, "", nil
	}
	return time.Duration(ms) * time.Millisecond, reason, nil
}
