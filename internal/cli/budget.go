package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"regexp"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/internal/budget"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/producer"
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

var validBudgetKey = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

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

// config is the budget of creds at rate (LIMIT/WINDOW, the --api-rate
// flag), as far as the flags say; ok is false for "0" or "" (no budget).
// It does not talk to Redis.
func (b budgetFlags) config(rate string, creds cloudflare.Credentials) (cfg budget.Config, ok bool, err error) {
	if b.key != "" && !validBudgetKey.MatchString(b.key) {
		return budget.Config{}, false, fmt.Errorf("-budget-key %q: use 1 to 64 letters, digits, '.', '_', ':' or '-'", b.key)
	}
	if rate == "0" || rate == "" {
		return budget.Config{}, false, nil
	}
	r, err := budget.ParseRate(rate)
	if err != nil {
		return budget.Config{}, false, fmt.Errorf("-api-rate: %w", err)
	}
	key := b.key
	if key == "" {
		key = creds.Digest()
	}
	return budget.Config{Rate: r, Key: key}, true, nil
}

// shared is config settled with the rate stored in Redis with the budget:
// the shared rate when rate was a default, an exit-2 error naming both
// rates when an explicit one differs, or rate for everyone with
// --api-rate-override.
func (b budgetFlags) shared(ctx context.Context, rdb redis.UniversalClient, rate string, creds cloudflare.Credentials, log *slog.Logger) (budget.Config, bool, error) {
	cfg, ok, err := b.config(rate, creds)
	if err != nil || !ok {
		return cfg, ok, err
	}
	mode := budget.Adopt
	switch {
	case b.override:
		mode = budget.Override
	case b.explicit:
		mode = budget.Require
	case b.producer:
		mode = budget.Follow
	}
	shared, err := budget.ClaimRate(ctx, rdb, cfg, mode)
	var ce *budget.RateConflictError
	if errors.As(err, &ce) {
		return cfg, false, &exitError{code: 2, err: fmt.Errorf(
			"-api-rate %s differs from %s, the rate that every worker and producer of %s shares in Redis: run with -api-rate %s (or without -api-rate and API_RATE to take it), or add -api-rate-override to make %s the rate of all of them",
			ce.Wanted, ce.Shared, b.describe(), ce.Shared, ce.Wanted)}
	}
	if err != nil {
		return cfg, false, err
	}
	switch {
	case mode == budget.Override:
		log.Warn("api budget: this rate is now the one of every process of the budget", "api_rate", shared.String(), "budget", b.describe())
	case shared != cfg.Rate:
		log.Info("api budget: using the shared rate", "api_rate", shared.String(), "budget", b.describe())
	}
	cfg.Rate = shared
	return cfg, true, nil
}

// describe names the budget for messages (never the credential's digest).
func (b budgetFlags) describe() string {
	if b.key == "" {
		return "this credential's budget"
	}
	return fmt.Sprintf("budget key %q", b.key)
}

// pacer is the producer's pacing for the budget cfg; nil when ok is false
// (no budget).
func pacer(rdb redis.UniversalClient, cfg budget.Config, ok bool) (producer.Pacer, error) {
	if !ok {
		return nil, nil
	}
	return budget.NewPacer(rdb, cfg)
}
