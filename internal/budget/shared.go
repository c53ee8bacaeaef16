package budget

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/internal/keys"
)

// The rate of a budget lives in Redis with it, under <Prefix><Key>:limit, as
// Rate.String writes it: every worker and producer sharing the budget uses
// that one rate. A process that came with another rate would spend the
// window at its own pace and draw 429s for all (Cloudflare counts per user),
// so ClaimRate refuses it unless it overrides the shared rate for all.

// ClaimMode says what ClaimRate does when Redis already has a rate for the
// budget.
type ClaimMode int

const (
	// Adopt takes the shared rate (the caller's rate was a default), or
	// stores the caller's when there is none.
	Adopt ClaimMode = iota + 1
	// Require stores the caller's rate when there is none, and returns a
	// *RateConflictError when the shared one differs.
	Require
	// Follow takes the shared rate, or the caller's when there is none,
	// and stores nothing (a producer that may stop at a bad input line).
	Follow
	// Override stores the caller's rate for everyone and starts the
	// budget's window afresh (the GCRA state of the old rate is dropped):
	// running processes follow at their next check.
	Override
)

// RateConflictError is ClaimRate's answer, in Require mode, when the budget
// already has another rate.
type RateConflictError struct {
	// Shared is the rate in Redis; Wanted the caller's.
	Shared, Wanted Rate
}

func (e *RateConflictError) Error() string {
	return fmt.Sprintf("api budget: rate %s differs from %s, the rate shared in Redis by every process of this budget", e.Wanted, e.Shared)
}

// claimScript stores the caller's rate when there is none or the mode is
// "override"; storing another rate drops the GCRA state too, spent at the
// old one. With mode "follow" it stores nothing.
//
// KEYS[1] -> <prefix><key>:limit, the shared rate
// KEYS[2] -> rate:<prefix><key>, the GCRA state
// --
// ARGV[1] -> the caller's rate, as Rate.String writes it
// ARGV[2] -> the mode: "override", "follow", or "" (Require)
//
// Output:
// Returns the rate in force (with "follow" and none stored, the caller's).
var claimScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if ARGV[2] == 'follow' then
  return cur or ARGV[1]
end
if ARGV[2] == 'override' or not cur then
  if cur ~= ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[1])
    redis.call('DEL', KEYS[2])
  end
  return ARGV[1]
end
return cur
`)

// ClaimRate settles the rate of the budget cfg names with the other
// processes that share it, as mode says, and returns the rate in force (the
// one to build the Budget and Pacer with).
func ClaimRate(ctx context.Context, rdb redis.UniversalClient, cfg Config, mode ClaimMode) (Rate, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Rate.validate(); err != nil {
		return Rate{}, fmt.Errorf("api budget: %w", err)
	}
	if cfg.Key == "" {
		return Rate{}, errors.New("api budget: key is required")
	}
	arg := ""
	switch mode {
	case Override:
		arg = "override"
	case Follow:
		arg = "follow"
	}
	s, err := claimScript.Run(ctx, rdb, []string{keys.BudgetLimit(cfg.Prefix, cfg.Key), keys.BudgetRate(cfg.Prefix, cfg.Key)}, cfg.Rate.String(), arg).Text()
	if err != nil {
		return Rate{}, fmt.Errorf("api budget: read the shared rate: %w", err)
	}
	shared, err := ParseRate(s)
	if err != nil {
		return Rate{}, fmt.Errorf("api budget: the shared rate in Redis: %w", err)
	}
	if mode == Require && shared != cfg.Rate {
		return shared, &RateConflictError{Shared: shared, Wanted: cfg.Rate}
	}
	return shared, nil
}

// follow switches the budget to the shared rate s when it differs from the
// one in use (another process overrode it), and reports whether it did.
func (b *Budget) follow(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s == b.rate.String() {
		return false
	}
	r, err := ParseRate(s)
	if err != nil {
		return false // not ours to judge: ClaimRate reports it at the next start
	}
	cfg := Config{Rate: r, Key: "-", Burst: b.burst}
	if cfg.Burst >= r.Limit && r.Limit > 1 || r.Limit == 1 {
		cfg.Burst = 0 // the configured burst does not fit the new rate
	}
	cfg = cfg.WithDefaults()
	if cfg.validate() != nil {
		return false
	}
	b.rate, b.limit = r, cfg.gcra()
	b.interval = b.limit.Period / time.Duration(b.limit.Rate)
	b.slot = time.Time{}
	return true
}

// keyName is what a budget key may be: it names the budget in Redis keys,
// flags and credentials files.
var keyName = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// CheckKey checks a budget key as --budget-key, a credentials file's
// budget_key and worker.Config.BudgetKey give it: 1 to 64 letters, digits,
// '.', '_', ':' or '-'. The error says so; callers name the field.
func CheckKey(key string) error {
	if !keyName.MatchString(key) {
		return errors.New("use 1 to 64 letters, digits, '.', '_', ':' or '-'")
	}
	return nil
}

// Claim is a process's claim on the budget it shares with the other
// workers and producers of one key.
type Claim struct {
	// Rate is LIMIT/WINDOW, as ParseRate reads it; "0" or "": no budget.
	Rate string
	// Key names the budget; "": one per credential, Credentials' digest.
	Key string
	// Digest names the default budget (credentials.Cloudflare.Digest): the
	// credential itself never reaches this package.
	Digest string
	// Mode says how Rate meets the stored rate.
	Mode ClaimMode
}

// ForCredential is the claim of one named credential of a credentials
// file under c, the process's own claim: the credential's budget is its
// budgetKey, else its digest (c.Key is the default credential's), at its
// apiRate, else c.Rate. A rate the file gives is the file's choice, so
// Adopt becomes Require; Require, Follow (a producer) and Override stay.
// Workers and producers both build a named credential's budget with it.
func (c Claim) ForCredential(apiRate, budgetKey, digest string) Claim {
	if apiRate != "" {
		c.Rate = apiRate
		if c.Mode == Adopt {
			c.Mode = Require
		}
	}
	c.Key, c.Digest = budgetKey, digest
	return c
}

// Describe names c's budget for messages, never by the credential's digest.
func (c Claim) Describe() string {
	if c.Key == "" {
		return "this credential's budget"
	}
	return fmt.Sprintf("budget key %q", c.Key)
}

// Settle parses c.Rate and settles it with the rate stored in Redis for
// the budget (ClaimRate in c.Mode), logging when the stored rate wins or
// is overridden; ok is false for no budget. A conflict in Require mode is
// a *RateConflictError.
func Settle(ctx context.Context, rdb redis.UniversalClient, c Claim, log *slog.Logger) (cfg Config, ok bool, err error) {
	if c.Rate == "0" || c.Rate == "" {
		return Config{}, false, nil
	}
	r, err := ParseRate(c.Rate)
	if err != nil {
		return Config{}, false, fmt.Errorf("api rate: %w", err)
	}
	cfg = Config{Rate: r, Key: cmp.Or(c.Key, c.Digest)}
	shared, err := ClaimRate(ctx, rdb, cfg, c.Mode)
	if err != nil {
		return cfg, false, err
	}
	switch {
	case c.Mode == Override:
		log.Warn("api budget: this rate is now the one of every process of the budget", "api_rate", shared.String(), "budget", c.Describe())
	case shared != cfg.Rate:
		log.Info("api budget: using the shared rate", "api_rate", shared.String(), "budget", c.Describe())
	}
	cfg.Rate = shared
	return cfg, true, nil
}
