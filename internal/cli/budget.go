package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/internal/budget"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// budgetFlags name the API budget shared in Redis and say how a process's
// --api-rate meets the rate stored with it.
type budgetFlags struct {
	// key names the budget; empty: one per credential.
	key string
	// override replaces the shared rate with this process's.
	override bool
	// explicit: --api-rate or API_RATE was given, so it must agree with
	// the shared rate; otherwise the shared rate is taken.
	explicit bool
	// producer: a command that enqueues (it takes the shared rate without
	// storing its default, so that a file with a bad line writes nothing).
	producer bool
}

func (b *budgetFlags) register(fs *flag.FlagSet, env Env) {
	fs.StringVar(&b.key, "budget-key", env.Getenv("BUDGET_KEY"),
		"name of the API budget shared in Redis (empty: one per credential); give the same name to every credential of one Cloudflare user, whose limit counts all of them; env BUDGET_KEY")
	fs.BoolVar(&b.override, "api-rate-override", false,
		"make this process's --api-rate the rate of the shared budget for every worker and producer using it (otherwise a different --api-rate is refused)")
}

// parsed notes, after fs was parsed, whether the rate was given.
func (b *budgetFlags) parsed(fs *flag.FlagSet, env Env) {
	b.explicit = env.Getenv("API_RATE") != ""
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "api-rate" {
			b.explicit = true
		}
	})
}

// claim is the budget claim of a process with these flags on creds at
// rate (LIMIT/WINDOW, the --api-rate flag).
func (b budgetFlags) claim(rate string, creds cloudflare.Credentials) (budget.Claim, error) {
	if b.key != "" {
		if err := budget.CheckKey(b.key); err != nil {
			return budget.Claim{}, fmt.Errorf("-budget-key %q: %w", b.key, err)
		}
	}
	if rate != "0" && rate != "" {
		if _, err := budget.ParseRate(rate); err != nil {
			return budget.Claim{}, fmt.Errorf("-api-rate: %w", err)
		}
	}
	return budget.Claim{Rate: rate, Key: b.key, Digest: creds.Digest(), Mode: b.mode()}, nil
}

// mode is how this process's --api-rate meets the shared one.
func (b budgetFlags) mode() budget.ClaimMode {
	switch {
	case b.override:
		return budget.Override
	case b.explicit:
		return budget.Require
	case b.producer:
		return budget.Follow
	}
	return budget.Adopt
}

// rateClaim is mode for worker.Config (a worker never follows).
func (b budgetFlags) rateClaim() worker.RateClaim {
	switch b.mode() {
	case budget.Override:
		return worker.RateOverride
	case budget.Require:
		return worker.RateRequire
	}
	return worker.RateAdopt
}

// shared is the budget settled with the rate stored in Redis with it: the
// shared rate when rate was a default, an exit-2 error naming both rates
// when an explicit one differs, or rate for everyone with
// --api-rate-override; ok is false for "0" (no budget).
func (b budgetFlags) shared(ctx context.Context, rdb redis.UniversalClient, rate string, creds cloudflare.Credentials, log *slog.Logger) (budget.Config, bool, error) {
	c, err := b.claim(rate, creds)
	if err != nil {
		return budget.Config{}, false, err
	}
	cfg, ok, err := budget.Settle(ctx, rdb, c, log)
	return cfg, ok, b.explain(err)
}

// explain turns a rate conflict into the exit-2 error that says which
// flags settle it; other errors pass.
func (b budgetFlags) explain(err error) error {
	var wanted, shared string
	var ce *budget.RateConflictError
	var we *worker.RateConflictError
	switch {
	case errors.As(err, &ce):
		wanted, shared = ce.Wanted.String(), ce.Shared.String()
	case errors.As(err, &we):
		wanted, shared = we.Wanted, we.Shared
	default:
		return err
	}
	desc := budget.Claim{Key: b.key}.Describe()
	return &exitError{code: 2, err: fmt.Errorf(
		"-api-rate %s differs from %s, the rate that every worker and producer of %s shares in Redis: run with -api-rate %s (or without -api-rate and API_RATE to take it), or add -api-rate-override to make %s the rate of all of them",
		wanted, shared, desc, shared, wanted)}
}

// producerBudget is the producer's API budget (producer.ClientConfig.Budget):
// the budget of creds at rate, and each named credential's of set, which
// the client settles with the rates stored in Redis.
func (b budgetFlags) producerBudget(rate string, creds cloudflare.Credentials, set *credentials.Set, log *slog.Logger) *producer.BudgetConfig {
	return &producer.BudgetConfig{Credentials: creds, Key: b.key, APIRate: rate, Claim: b.rateClaim(), Named: set, Logger: log}
}
