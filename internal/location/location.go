// Package location serialises challenges per challenge-file location across
// the worker fleet.
//
// Cloudflare writes the challenge of every destination that pushes to one
// path into the same object, <path>/ownership-challenge.txt, and each
// challenge overwrites it. So at most one challenge may be in flight per
// location: a destination holds the location's lease (in Redis, with an
// expiry, so that a killed worker cannot wedge a path) from its challenge to
// its outcome, and the others wait in a line ordered by input order.
//
// A waiting destination holds no worker slot: its challenge task snoozes
// (no retry spent), and the holder, on release, wakes the head of the line
// at once (asynq's RunTask on the waiter's task) so that a location's next
// challenge follows the previous validate without a poll interval. Each
// waiter records when it will look in again; a waiter that did not (its
// task is gone) is passed over, so no line waits for the dead.
//
// The release also records what the location held last (the digest of the
// file the holder read, and when, in the worker's format), so that a next
// holder that follows at once knows what not to take for its own file
// without reading it first.
//
// Keys (keys.Location, logpush:loc:<id>, id a hash of the location): the
// lease string (holder, PX LeaseTTL), ":line" a sorted set of holders by
// input order, ":wake" a hash holder -> "lookMs|queue|taskID", ":last" the
// digest record.
package location

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/internal/keys"
	"github.com/logpush-onboard/logpush-onboard/internal/luascript"
)

// Defaults of Config.
const (
	// LeaseTTLDefault outlasts asynq's recovery of a killed worker's task
	// (its lease of 30 s plus the recoverer's round), so that the holder's
	// recovered task finds its lease still there.
	LeaseTTLDefault = 3 * time.Minute
	// RecheckDefault is how long the head of a line sleeps before it looks
	// again when no release wakes it (a holder that crashed).
	RecheckDefault = 30 * time.Second
	// RecordTTLDefault is how long what a location held last is kept (the
	// worker trusts it for far less: it records when it was read).
	RecordTTLDefault = 10 * time.Minute
	// lineTTL bounds how long an abandoned line's keys stay.
	lineTTL = 7 * 24 * time.Hour
	// grace is added to a waiter's promised look-in before it is presumed
	// gone: a busy queue starts a due task late.
	grace = 30 * time.Second
)

// Config configures Leases. Every field has a default.
type Config struct {
	// LeaseTTL is how long a lease outlives its holder's last renewal.
	// Default LeaseTTLDefault.
	LeaseTTL time.Duration
	// Recheck is the head waiter's sleep between looks; a waiter n places
	// behind sleeps up to min(n+1, 20) times as long. Default RecheckDefault.
	Recheck time.Duration
	// RecordTTL is how long the digest of what a location held is kept.
	// Default RecordTTLDefault.
	RecordTTL time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	c.LeaseTTL = cmp.Or(c.LeaseTTL, LeaseTTLDefault)
	c.Recheck = cmp.Or(c.Recheck, RecheckDefault)
	c.RecordTTL = cmp.Or(c.RecordTTL, RecordTTLDefault)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c Config) validate() error {
	for name, d := range map[string]time.Duration{"lease ttl": c.LeaseTTL, "recheck": c.Recheck, "record ttl": c.RecordTTL} {
		if d < 0 {
			return fmt.Errorf("location: %s must not be negative, got %s", name, d)
		}
	}
	return nil
}

// Leases is the fleet's locations. It is safe for concurrent use.
type Leases struct {
	rdb redis.UniversalClient
	cfg Config
}

// New returns Leases on rdb.
func New(rdb redis.UniversalClient, cfg Config) (*Leases, error) {
	if rdb == nil {
		return nil, errors.New("location: redis client is nil")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Leases{rdb: rdb, cfg: cfg}, nil
}

// ID is the lease id of a location string such as
// "s3://bucket/logs/ownership-challenge.txt": a hash, so that keys are short
// and name no bucket.
func ID(location string) string {
	sum := sha256.Sum256([]byte(location))
	return hex.EncodeToString(sum[:12])
}

// Waiter is a destination that wants a location.
type Waiter struct {
	// Holder identifies the destination across its challenges (batch and
	// destination hash), so that a fresh challenge keeps the lease.
	Holder string
	// Order places it in the line: smaller first (input order).
	Order float64
	// Queue and TaskID are its challenge task, woken on release.
	Queue, TaskID string
}

// Absent is the Record of a location that held no file.
const Absent = "-"

// Grant is the answer of Acquire.
type Grant struct {
	// Held: the caller holds the lease and may challenge.
	Held bool
	// Record, when Held, is what the location held when its previous
	// holder let go (a digest, or Absent), if that was less than RecordTTL
	// ago; "" when unknown.
	Record string
	// Waiting, when Held, is how many destinations wait for the location.
	Waiting int64
	// Ahead, when not Held, is how many waiters come first.
	Ahead int64
	// Retry, when not Held, is how long to sleep before looking again
	// (a release wakes the head sooner).
	Retry time.Duration
}

func (l *Leases) keys(loc string) []string {
	lease, line, wake, last := keys.Location(loc)
	return []string{lease, line, wake, last}
}

// acquireScript takes the lease for the holder when it holds it already,
// or when it is free and no live waiter comes first in the line (a waiter
// is live until the look-in time it promised; the dead ones ahead are
// dropped); otherwise it puts the holder in the line at its order and
// records its task and next look-in:
// now + recheck * min(rank + 1, 20) + grace.
//
// KEYS[1] -> logpush:loc:<id>, the lease (its holder, with an expiry)
// KEYS[2] -> logpush:loc:<id>:line, the waiters by input order
// KEYS[3] -> logpush:loc:<id>:wake, waiter -> "lookMs|queue|taskID"
// KEYS[4] -> logpush:loc:<id>:last, what the location held last
// --
// ARGV[1] -> the holder
// ARGV[2] -> the lease's TTL in ms
// ARGV[3] -> the holder's order in the line
// ARGV[4] -> the holder's challenge task, "queue|taskID"
// ARGV[5] -> now, Unix ms
// ARGV[6] -> the line's TTL in ms
// ARGV[7] -> recheck in ms
// ARGV[8] -> grace in ms
//
// Output:
// Returns {1, record or false, waiting} when the holder holds the lease.
// Returns {0, rank, sleep ms} when it waits, rank the waiters ahead of it.
var acquireScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, redis.call('GET', KEYS[4]), redis.call('ZCARD', KEYS[2])}
end
local now, mine = tonumber(ARGV[5]), tonumber(ARGV[3])
if not cur then
  local free = true
  while true do
    local head = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    if #head == 0 or head[1] == ARGV[1] or tonumber(head[2]) > mine then break end
    local w = redis.call('HGET', KEYS[3], head[1])
    local look = w and tonumber(string.match(w, '^(%d+)|')) or 0
    if look >= now then free = false break end
    redis.call('ZREM', KEYS[2], head[1])
    redis.call('HDEL', KEYS[3], head[1])
  end
  if free then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    redis.call('ZREM', KEYS[2], ARGV[1])
    redis.call('HDEL', KEYS[3], ARGV[1])
    return {1, redis.call('GET', KEYS[4]), redis.call('ZCARD', KEYS[2])}
  end
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local rank = redis.call('ZRANK', KEYS[2], ARGV[1])
local sleep = tonumber(ARGV[7]) * math.min(rank + 1, 20)
redis.call('HSET', KEYS[3], ARGV[1], string.format('%d', now + sleep + tonumber(ARGV[8])) .. '|' .. ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
redis.call('PEXPIRE', KEYS[3], ARGV[6])
return {0, rank, sleep}
`)

// Acquire takes location loc (an ID) for w, or puts w in its line.
func (l *Leases) Acquire(ctx context.Context, loc string, w Waiter) (Grant, error) {
	res, err := acquireScript.Run(ctx, l.rdb, l.keys(loc), w.Holder, l.cfg.LeaseTTL.Milliseconds(), w.Order,
		w.Queue+"|"+w.TaskID, l.cfg.Now().UnixMilli(), lineTTL.Milliseconds(),
		l.cfg.Recheck.Milliseconds(), grace.Milliseconds()).Slice()
	if err != nil {
		return Grant{}, fmt.Errorf("acquire challenge location: %w", err)
	}
	if held, _ := res[0].(int64); held == 1 {
		record, _ := res[1].(string)
		waiting, _ := res[2].(int64)
		return Grant{Held: true, Record: record, Waiting: waiting}, nil
	}
	rank, _ := res[1].(int64)
	sleep, _ := res[2].(int64)
	return Grant{Ahead: rank, Retry: time.Duration(sleep) * time.Millisecond}, nil
}

// renewScript extends the holder's lease, or takes a free one back (the
// holder outlived its lease).
//
// KEYS[1] -> logpush:loc:<id>, the lease
// KEYS[2] -> logpush:loc:<id>:line, the waiters
// --
// ARGV[1] -> the holder
// ARGV[2] -> the lease's TTL in ms
//
// Output:
// Returns {1, waiting} when the holder holds the lease.
// Returns {0, waiting} when another holds it.
var renewScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
local waiting = redis.call('ZCARD', KEYS[2])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return {1, waiting} end
if not cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return {1, waiting} end
return {0, waiting}
`)

// Renew extends holder's lease of loc; held is false when another holder
// took the location after this one's lease expired. waiting is how many
// destinations wait for the location.
func (l *Leases) Renew(ctx context.Context, loc, holder string) (held bool, waiting int64, err error) {
	res, err := renewScript.Run(ctx, l.rdb, l.keys(loc)[:2], holder, l.cfg.LeaseTTL.Milliseconds()).Slice()
	if err != nil {
		return false, 0, fmt.Errorf("renew challenge location: %w", err)
	}
	n, _ := res[0].(int64)
	waiting, _ = res[1].(int64)
	return n == 1, waiting, nil
}

// releaseScript lets go of the holder's lease (only its own), records what
// the location held (unless the record is ""), takes the holder out of the
// line and, when the location is free, returns the head of the line to
// wake.
//
// KEYS[1] -> logpush:loc:<id>, the lease
// KEYS[2] -> logpush:loc:<id>:line, the waiters
// KEYS[3] -> logpush:loc:<id>:wake, waiter -> "lookMs|queue|taskID"
// KEYS[4] -> logpush:loc:<id>:last, what the location held last
// --
// ARGV[1] -> the holder
// ARGV[2] -> what the location held (the caller's record, e.g. a digest or Absent), "" for unknown
// ARGV[3] -> the record's TTL in ms
//
// Output:
// Returns {head, its wake record} when the location is free and has a waiter.
// Returns {} otherwise.
var releaseScript = luascript.New(`
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if ARGV[2] ~= '' then redis.call('SET', KEYS[4], ARGV[2], 'PX', ARGV[3]) end
  cur = false
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if cur then return {} end
local head = redis.call('ZRANGE', KEYS[2], 0, 0)
if #head == 0 then return {} end
return {head[1], redis.call('HGET', KEYS[3], head[1]) or ''}
`)

// Next is a waiter to wake.
type Next struct {
	Holder, Queue, TaskID string
}

// Release lets go of holder's lease of loc (if it holds it), leaving
// record (a digest, Absent, or "" for unknown) as what the location held,
// and takes holder out of the line. It returns the waiter to wake, if the
// location is free and has one. Release is idempotent.
func (l *Leases) Release(ctx context.Context, loc, holder, record string) (*Next, error) {
	c := l.ReleaseCall(loc, holder, record)
	res, err := releaseScript.Run(ctx, l.rdb, c.Keys, c.Args...).Result()
	if err != nil {
		return nil, fmt.Errorf("release challenge location: %w", err)
	}
	return Released(res), nil
}

// ReleaseCall is Release as a script call, for another package's script
// to run it right after its own in one round trip (luascript.Then):
// a destination's outcome, then its location's release. Released reads
// its result.
func (l *Leases) ReleaseCall(loc, holder, record string) luascript.Call {
	return luascript.Call{Script: releaseScript, Keys: l.keys(loc), Args: []any{holder, record, l.cfg.RecordTTL.Milliseconds()}}
}

// Released is the waiter to wake after a release whose script result is
// res (ReleaseCall), nil for none.
func Released(res any) *Next {
	r, _ := res.([]any)
	if len(r) < 2 {
		return nil
	}
	head, _ := r[0].(string)
	wake, _ := r[1].(string)
	_, rest, _ := strings.Cut(wake, "|")
	queue, task, _ := strings.Cut(rest, "|")
	return &Next{Holder: head, Queue: queue, TaskID: task}
}

// Leave takes holder out of loc's line (its task is gone) and returns the
// next waiter to wake, as Release does.
func (l *Leases) Leave(ctx context.Context, loc, holder string) (*Next, error) {
	return l.Release(ctx, loc, holder, "")
}

// Holder returns who holds loc, "" when nobody does.
func (l *Leases) Holder(ctx context.Context, loc string) (string, error) {
	h, err := l.rdb.Get(ctx, l.keys(loc)[0]).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return h, err
}

// Line returns the holders waiting for loc, first first.
func (l *Leases) Line(ctx context.Context, loc string) ([]string, error) {
	return l.rdb.ZRange(ctx, l.keys(loc)[1], 0, -1).Result()
}
