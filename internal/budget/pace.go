package budget

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/internal/keys"
)

// Pacer schedules challenges at the pace a budget allows. Without it a
// producer puts a whole batch in the queue at once, and at 1200 calls per 5
// minutes the budget spends the first hour on challenges alone: a batch of
// 10,000 validates its first destination after more than an hour (polls run
// first, from the follow-up queue, but every validation waits for the
// budget behind the challenges). Paced, a challenge becomes due every Interval,
// polls and validations of earlier destinations run in between, and
// destinations finish steadily from the start. The budget stays the limit:
// Interval is two calls at the full rate, a little faster than the budget's
// steady rate, and an idle pacer lets the first Lead of challenges go at
// once, so that the budget has challenges to serve while the last files are
// being written (without it the batch ends with a tail of one write delay).
type Pacer struct {
	rdb      redis.UniversalClient
	key      string
	interval time.Duration
	lead     time.Duration
}

// Lead is how far ahead of the pace an idle pacer starts.
const Lead = 15 * time.Second

// NewPacer returns the pacer of the budget cfg describes: one challenge per
// two calls of cfg.Rate (a challenge and its validation), shared by every
// producer with the same Prefix and Key.
func NewPacer(rdb redis.UniversalClient, cfg Config) (*Pacer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Rate.validate(); err != nil {
		return nil, fmt.Errorf("api budget: %w", err)
	}
	if cfg.Key == "" {
		return nil, errors.New("api budget: key is required")
	}
	return &Pacer{rdb: rdb, key: keys.BudgetPace(cfg.Prefix, cfg.Key), interval: 2 * cfg.Rate.Window / time.Duration(cfg.Rate.Limit), lead: Lead}, nil
}

// Interval is the time between two paced challenges.
func (p *Pacer) Interval() time.Duration { return p.interval }

// reserveScript takes consecutive slots from the pace key: the first at the
// key's next free slot, but no earlier than the lead before now. Time is the
// Redis server's.
//
// KEYS[1] -> <prefix><key>:pace, the next free slot in Unix ms
// --
// ARGV[1] -> how many slots
// ARGV[2] -> a slot's length in ms (Interval)
// ARGV[3] -> the lead in ms
//
// Output:
// Returns the first slot's distance from now in ms (negative: due already).
var reserveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local first = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if first < now - tonumber(ARGV[3]) then
  first = now - tonumber(ARGV[3])
end
local nxt = first + tonumber(ARGV[1]) * tonumber(ARGV[2])
redis.call('SET', KEYS[1], nxt, 'PX', math.max(nxt - now, 0) + 60000)
return first - now
`)

// Reserve takes n consecutive slots after those already taken: slot i is
// due at offset + i*Interval from now (at once when that is not positive).
func (p *Pacer) Reserve(ctx context.Context, n int) (offset time.Duration, err error) {
	if n <= 0 {
		return 0, nil
	}
	ms, err := reserveScript.Run(ctx, p.rdb, []string{p.key}, n, p.interval.Milliseconds(), p.lead.Milliseconds()).Int64()
	if err != nil {
		return 0, fmt.Errorf("pace challenges: %w", err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}
