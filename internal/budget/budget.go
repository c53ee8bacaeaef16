package budget

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/internal/keys"
)

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
	// Prefix is the Redis key prefix. Default keys.BudgetPrefix.
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
	cfg.Prefix = cmp.Or(cfg.Prefix, keys.BudgetPrefix)
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
//
// Within one process only one Wait at a time talks to Redis (the gate); the
// others queue behind it in FIFO order, so that a contended budget costs
// about one Redis check per process per slot instead of one per waiter.
type Budget struct {
	rdb      redis.UniversalClient
	limit    redis_rate.Limit
	interval time.Duration // the emission interval T = Period/Rate
	rateKey  string        // "rate:" + Prefix + Key, as redis_rate names it
	coolKey  string
	limitKey string // the shared rate (ClaimRate)
	// burst is Config.Burst as configured (0: the default of each rate).
	burst    int
	maxWait  time.Duration
	onWait   func(time.Duration)
	take     *redis.Script
	refund   *redis.Script
	pause    *redis.Script
	cooldown *redis.Script

	// gate admits one Wait at a time to Redis: a Wait holds it by sending,
	// releases it by receiving. Blocked senders are served in FIFO order.
	gate chan struct{}
	// blocked counts the Waits blocked on the gate (WaitInTurn).
	blocked atomic.Int64
	// handoff passes a grant the gate's holder would rather not use (see
	// WaitInTurn's accept) to a Wait blocked on the gate.
	handoff chan struct{}

	mu sync.Mutex
	// rate is the budget's rate: the configured one until a check reads
	// another from the shared rate in Redis (an override by another process).
	rate Rate
	// slot is the local time at which the next slot opens, as the latest
	// grant or refusal said (zero or past: now, or unknown). A Wait that
	// takes the gate sleeps until then before its first check: right after a
	// grant the budget is usually spent until then, and a check would only
	// be refused. Pause in this process clears it, so that the next check
	// sees the cooldown.
	slot time.Time
	// next is the earliest local time at which the budget could grant a
	// call, as the latest grant or refusal said (zero or past: unknown), and
	// nextReason the cooldown's reason then ("" when the budget was spent).
	// Only kept when MaxWait is set: queued waiters read it to give up at
	// once when they could not be granted within MaxWait.
	next       time.Time
	nextReason string
	queued     map[*queuedWait]struct{} // waiters with a MaxWait queued on the gate
}

// queuedWait is a Wait queued on the gate with a MaxWait deadline; giveUp is
// closed (under Budget.mu, and the entry removed) when next moves beyond it.
type queuedWait struct {
	deadline time.Time
	giveUp   chan struct{}
}

// pauseScript extends the cooldown unless it already lasts at least that
// long: a Pause never shortens a cooldown.
//
// KEYS[1] -> <prefix><key>:cooldown, the cooldown (its reason, with an expiry)
// --
// ARGV[1] -> the cooldown's length in ms
// ARGV[2] -> its reason
//
// Output:
// Returns 1 when it extended the cooldown, 0 when it already lasts as long.
const pauseScript = `
local d = tonumber(ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl >= d then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', d)
return 1
`

// cooldownScript reads the cooldown. A key without expiry is ignored (and
// overwritten by the next Pause).
//
// KEYS[1] -> <prefix><key>:cooldown, the cooldown
//
// Output:
// Returns {ms left, reason} during a cooldown, {0, ""} when there is none.
const cooldownScript = `
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then
  return {0, ''}
end
return {ttl, redis.call('GET', KEYS[1]) or ''}
`

// takeScript is one check of Wait. Every reply ends with the shared rate
// stored under KEYS[3] ("" when none), so that a rate another process set
// (ClaimRate with override) reaches this one without a round trip of its
// own; when it differs from the caller's the script touches nothing: the
// caller checks again at that rate, so that no token is ever taken at a
// stale one. During a cooldown it leaves the GCRA state alone. Otherwise it
// is redis_rate's allow_n with cost 1 on KEYS[1], the GCRA state in
// redis_rate's own layout (TAT, seconds since 2017, as a string), so that
// processes running either share one budget: an allowed call sets
// TAT := max(TAT, now) + T. Times are rounded up to the microsecond, so
// that a waiter never wakes before its slot.
//
// KEYS[1] -> rate:<prefix><key>, the GCRA state
// KEYS[2] -> <prefix><key>:cooldown, the cooldown (optional)
// KEYS[3] -> <prefix><key>:limit, the shared rate (optional)
// --
// ARGV[1] -> burst (Config.gcra)
// ARGV[2] -> rate, calls per period
// ARGV[3] -> period in seconds
// ARGV[4] -> the caller's rate, as Rate.String writes it (optional)
//
// Output:
// Returns {0, µs until the slot after this one, "", shared, TAT as stored
// (or "")} when allowed.
// Returns {1, µs until the next slot, "", shared} when spent.
// Returns {2, µs left, reason, shared} during a cooldown.
// Returns {3, 0, "", shared} when the shared rate is not the caller's.
const takeScript = `
-- this script has side-effects, so it requires replicate commands mode
redis.replicate_commands()

local shared = KEYS[3] and redis.call('GET', KEYS[3]) or ''
if shared ~= '' and ARGV[4] and shared ~= ARGV[4] then
  return {3, 0, '', shared}
end
if KEYS[2] then
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl > 0 then
    return {2, ttl * 1000, redis.call('GET', KEYS[2]) or '', shared}
  end
end

local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local period = tonumber(ARGV[3])

local emission_interval = period / rate
local burst_offset = emission_interval * burst

-- Redis time in seconds since Jan 1, 2017, as redis_rate counts it.
local jan_1_2017 = 1483228800
local now = redis.call('TIME')
now = (now[1] - jan_1_2017) + (now[2] / 1000000)

local tat = redis.call('GET', KEYS[1])
if not tat then
  tat = now
else
  tat = tonumber(tat)
end
tat = math.max(tat, now)

local new_tat = tat + emission_interval
local allow_at = new_tat - burst_offset
local diff = now - allow_at
if diff < 0 then
  return {1, math.ceil(-diff * 1000000), '', shared}
end

local reset_after = new_tat - now
if reset_after > 0 then
  redis.call('SET', KEYS[1], new_tat, 'EX', math.ceil(reset_after))
end
-- the next call is allowed once new_tat <= t + (burst - 1) * T
local next_in = new_tat - burst_offset + emission_interval - now
if next_in < 0 then
  next_in = 0
end
return {0, math.ceil(next_in * 1000000), '', shared, redis.call('GET', KEYS[1]) or ''}
`

// refundScript gives back the call a grant took (see WaitInTurn), where
// the GCRA state is still what that grant left: TAT := TAT - T, as if it
// had not been asked. Where another process was granted since, it does
// nothing: that grant counted this one, and the call is made.
//
// KEYS[1] -> rate:<prefix><key>, the GCRA state
// --
// ARGV[1] -> the TAT the grant stored, as the take script returned it
// ARGV[2] -> the emission interval T, in seconds
//
// Returns 1 when it gave the call back, else 0.
const refundScript = `
local tat = redis.call('GET', KEYS[1])
if not tat or tat ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], tonumber(ARGV[1]) - tonumber(ARGV[2]), 'KEEPTTL')
return 1
`

// New returns the budget cfg describes, stored in rdb. It does not talk to
// Redis.
func New(rdb redis.UniversalClient, cfg Config) (*Budget, error) {
	if rdb == nil {
		return nil, errors.New("api budget: redis client is nil")
	}
	burst := cfg.Burst
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("api budget: %w", err)
	}
	limit := cfg.gcra()
	return &Budget{
		rdb:      rdb,
		rate:     cfg.Rate,
		burst:    burst,
		limit:    limit,
		interval: limit.Period / time.Duration(limit.Rate),
		rateKey:  keys.BudgetRate(cfg.Prefix, cfg.Key),
		coolKey:  keys.BudgetCooldown(cfg.Prefix, cfg.Key),
		limitKey: keys.BudgetLimit(cfg.Prefix, cfg.Key),
		maxWait:  cfg.MaxWait,
		onWait:   cfg.OnWait,
		take:     redis.NewScript(takeScript),
		refund:   redis.NewScript(refundScript),
		pause:    redis.NewScript(pauseScript),
		cooldown: redis.NewScript(cooldownScript),
		gate:     make(chan struct{}, 1),
		handoff:  make(chan struct{}),
		queued:   make(map[*queuedWait]struct{}),
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
// the budget. It first queues behind the other Waits of this process (only
// one at a time talks to Redis), then, in one script, honours the shared
// cooldown (see Pause) or takes a token; when it gets neither it sleeps
// exactly as long as Redis says and starts over, so a Pause made meanwhile is
// honoured too. It returns how long it took, and ctx's error (wrapped) when
// ctx is done first, a *MaxWaitError when the call cannot be granted within
// Config.MaxWait of the start of Wait (time queued included), or a Redis
// error.
func (b *Budget) Wait(ctx context.Context) (waited time.Duration, err error) {
	return b.wait(ctx, false, nil)
}

// TurnSpan is how far ahead of its turn a WaitInTurn queues: its caller
// waits this long for the budget at most, unless the budget is paused.
const TurnSpan = time.Second

// Interval is the emission interval: the time between two grants at the
// budget's rate.
func (b *Budget) Interval() time.Duration { return b.interval }

// WaitInTurn is Wait for a caller that should not wait long behind others
// in this process: when the Waits blocked before it would take more than
// TurnSpan of the budget's grants, it returns a *MaxWaitError at once,
// RetryIn about when its turn would come, instead of queueing. A worker's
// challenges use it: one tenant's many challenges waiting for its budget
// held every slot of the worker, and other tenants' challenges waited in
// the queue behind them for seconds with their own budgets idle.
//
// accept, when not nil, is asked at each grant whether the caller would
// rather have a later one (false), and when (later): a challenge whose
// file's date tells it new only when its request falls in the right part
// of a second, which otherwise reads its path first. Such a grant goes to
// a plain Wait blocked behind it, if any (one that takes any grant: a
// validation), and this caller takes the next slot. With none blocked,
// where this caller waited for its slot (the budget is at its rate), it
// gives the call back, unless another process was granted since, and asks
// again later. Up to handoffs times; then it takes the grant. A grant is
// one call, made by one caller or the other, or given back.
func (b *Budget) WaitInTurn(ctx context.Context, accept func() (ok bool, later time.Duration)) (waited time.Duration, err error) {
	return b.wait(ctx, true, accept)
}

// handoffs bounds the grants one WaitInTurn hands to Waits behind it: at
// one grant every Interval, a few reach every part of a second at the
// default rate, so a grant the caller accepts comes within them.
const handoffs = 4

func (b *Budget) wait(ctx context.Context, inTurn bool, accept func() (bool, time.Duration)) (waited time.Duration, err error) {
	start := time.Now()
	defer func() {
		waited = time.Since(start)
		if b.onWait != nil {
			b.onWait(waited)
		}
	}()
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("api budget wait: %w", err)
	}
	handed, err := b.enter(ctx, start, inTurn, accept == nil)
	if err != nil || handed {
		return 0, err
	}
	defer b.leave()
	passed, slept := 0, false
	b.mu.Lock()
	d, reason := time.Until(b.slot), ""
	b.mu.Unlock()
	for {
		if d > 0 {
			if err := b.sleep(ctx, start, d, reason); err != nil {
				return 0, err
			}
			slept = true
		}
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("api budget wait: %w", err)
		}
		var granted bool
		var tat string
		granted, d, reason, tat, err = b.check(ctx)
		if err != nil {
			return 0, fmt.Errorf("api budget wait: %w", err)
		}
		if granted && accept != nil && passed < handoffs {
			if ok, later := accept(); !ok {
				if b.handOff() {
					passed++
					continue // the next slot, in d
				}
				if slept && later > 0 && b.giveBack(ctx, tat) {
					passed++
					d = later
					continue
				}
			}
		}
		if granted {
			b.publish(time.Now().Add(d), "")
			return 0, nil
		}
	}
}

// giveBack gives back the call of the grant that stored tat (refundScript),
// and says whether it did; a Redis error keeps the grant.
func (b *Budget) giveBack(ctx context.Context, tat string) bool {
	if tat == "" {
		return false
	}
	b.mu.Lock()
	interval := b.limit.Period.Seconds() / float64(b.limit.Rate)
	b.mu.Unlock()
	n, err := b.refund.Run(ctx, b.rdb, []string{b.rateKey}, tat, interval).Int()
	return err == nil && n == 1
}

// handOff passes the grant the gate's holder has to a Wait blocked on the
// gate that takes any (see WaitInTurn), and says whether one took it.
func (b *Budget) handOff() bool {
	select {
	case b.handoff <- struct{}{}:
		return true
	default:
		return false
	}
}

// enter takes the gate for a Wait begun at start. When the gate is busy it
// queues, and with a MaxWait it gives up with a *MaxWaitError as soon as
// the least time at which the budget could grant (what the holder last
// learned from Redis) lies beyond start+MaxWait, or when that deadline
// passes while it is still queued. A Wait that takes any grant (takeAny)
// may be handed the holder's meanwhile (handed): it has its call, and not
// the gate.
func (b *Budget) enter(ctx context.Context, start time.Time, inTurn, takeAny bool) (handed bool, err error) {
	select {
	case b.gate <- struct{}{}:
		return false, nil
	default:
	}
	ahead := b.blocked.Add(1) - 1
	defer b.blocked.Add(-1)
	if inTurn && time.Duration(ahead)*b.interval >= TurnSpan {
		return false, &MaxWaitError{RetryIn: time.Duration(ahead+1) * b.interval, MaxWait: TurnSpan}
	}
	var handoff chan struct{}
	if takeAny {
		handoff = b.handoff
	}
	if b.maxWait <= 0 {
		select {
		case b.gate <- struct{}{}:
			return false, nil
		case <-handoff:
			return true, nil
		case <-ctx.Done():
			return false, fmt.Errorf("api budget wait: %w", ctx.Err())
		}
	}
	q := &queuedWait{deadline: start.Add(b.maxWait), giveUp: make(chan struct{})}
	b.mu.Lock()
	if b.next.After(q.deadline) {
		err := b.maxWaitErrorLocked(time.Now())
		b.mu.Unlock()
		return false, err
	}
	b.queued[q] = struct{}{}
	b.mu.Unlock()
	dequeue := func() {
		b.mu.Lock()
		delete(b.queued, q)
		b.mu.Unlock()
	}
	timer := time.NewTimer(time.Until(q.deadline))
	defer timer.Stop()
	select {
	case b.gate <- struct{}{}:
		dequeue()
		return false, nil
	case <-handoff:
		dequeue()
		return true, nil
	case <-ctx.Done():
		dequeue()
		return false, fmt.Errorf("api budget wait: %w", ctx.Err())
	case <-q.giveUp: // dequeued by publish
	case <-timer.C:
		dequeue()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return false, b.maxWaitErrorLocked(time.Now())
}

// maxWaitErrorLocked is the *MaxWaitError of a queued Wait that gives up at
// now: RetryIn is the time left until next, or, when that is past (the
// holder is talking to Redis or about to be granted), one emission interval,
// the earliest the slot after the holder's opens under contention.
func (b *Budget) maxWaitErrorLocked(now time.Time) error {
	retryIn, reason := b.next.Sub(now), b.nextReason
	if retryIn <= 0 {
		retryIn, reason = max(b.interval, time.Millisecond), ""
	}
	return &MaxWaitError{RetryIn: retryIn, Reason: reason, MaxWait: b.maxWait}
}

// leave releases the gate to the next queued Wait.
func (b *Budget) leave() { <-b.gate }

// publish records that the budget cannot grant before at, for reason (""
// when it is spent: at is also the next slot), and sends the queued Waits
// whose deadline lies before at away.
func (b *Budget) publish(at time.Time, reason string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if reason == "" {
		b.slot = at
	}
	if b.maxWait <= 0 {
		return
	}
	b.next, b.nextReason = at, reason
	for q := range b.queued {
		if at.After(q.deadline) {
			close(q.giveUp)
			delete(b.queued, q)
		}
	}
}

// check runs one check on Redis. When it grants a call, d is the time until
// the next slot opens (0: at once). Otherwise d is how long until the budget
// could grant one and reason the cooldown's reason ("" when it is simply
// spent).
func (b *Budget) check(ctx context.Context) (granted bool, d time.Duration, reason, tat string, err error) {
	// One script reads all three keys: they must live on one node (the tool
	// refuses Redis Cluster; Sentinel and single nodes are fine).
	b.mu.Lock()
	limit, rate := b.limit, b.rate.String()
	b.mu.Unlock()
	v, err := b.take.Run(ctx, b.rdb, []string{b.rateKey, b.coolKey, b.limitKey}, limit.Burst, limit.Rate, limit.Period.Seconds(), rate).Slice()
	if err != nil {
		return false, 0, "", "", fmt.Errorf("take token: %w", err)
	}
	if len(v) < 4 {
		return false, 0, "", "", fmt.Errorf("take token: unexpected reply %v", v)
	}
	kind, _ := v[0].(int64)
	us, _ := v[1].(int64)
	reason, _ = v[2].(string)
	d = time.Duration(us) * time.Microsecond
	switch kind {
	case 0:
		if len(v) > 4 {
			tat, _ = v[4].(string)
		}
		return true, d, "", tat, nil
	case 1:
		reason = ""
	case 3:
		shared, _ := v[3].(string)
		if !b.follow(shared) {
			return false, 0, "", "", fmt.Errorf("take token: the shared rate %q in Redis is not a rate", shared)
		}
		return false, time.Millisecond, "", "", nil
	}
	// Positive by construction; guard against a busy loop all the same.
	return false, max(d, time.Millisecond), reason, "", nil
}

// sleep sleeps d unless ctx is done first or d would take Wait (begun at
// start) beyond MaxWait.
func (b *Budget) sleep(ctx context.Context, start time.Time, d time.Duration, reason string) error {
	now := time.Now()
	b.publish(now.Add(d), reason)
	if b.maxWait > 0 && now.Sub(start)+d > b.maxWait {
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
	b.mu.Lock()
	b.slot = time.Time{}
	b.mu.Unlock()
	return nil
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
