package producer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/internal/budget"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// Pacer hands out due times for challenges: slot i of a reservation of n is
// due at offset + i*Interval() from now. BudgetPacer is the one of the
// workers' shared API budget.
type Pacer interface {
	Reserve(ctx context.Context, n int) (offset time.Duration, err error)
	Interval() time.Duration
}

// BudgetConfig names the API budgets that the workers share in Redis, as
// worker.Config names them: ClientConfig.Budget, or BudgetPacer's.
type BudgetConfig struct {
	// Credentials is the credential whose budget it is (the rows that name
	// none): its digest names the budget unless Key does (never the secret
	// itself).
	Credentials credentials.Cloudflare
	// Key names the budget instead, as worker.Config.BudgetKey does.
	Key string
	// APIRate is the rate, LIMIT/WINDOW, taken when Redis has none stored
	// for the budget yet; the stored one (the workers') wins unless Claim
	// says otherwise. Default 1200/5m, Cloudflare's limit per user; "0":
	// no budget, no pacing.
	APIRate string
	// Claim says how APIRate meets the rate stored with Credentials'
	// budget: RateAdopt (the default) takes the stored rate and, unlike a
	// worker, stores none, so that an input with a bad line writes
	// nothing; RateRequire refuses a different stored rate with a
	// *worker.RateConflictError; RateOverride makes APIRate the rate of
	// every process of the budget (and of each named credential's).
	Claim worker.RateClaim
	// Named, when set, are the credentials that rows name (a credentials
	// file, as worker.Config.NamedCredentials): each one's rows are paced
	// at its own budget, its budget_key (else its digest) at its api_rate
	// (else APIRate), taken as the workers store it, so that one tenant's
	// 10,000 rows do not push back another's 10. nil: every row is paced
	// at Credentials' budget.
	Named *credentials.Set
	// Logger says when a stored rate differs from the one asked; default
	// discard (ClientConfig.Logger in a Client).
	Logger *slog.Logger
}

// validate refuses a budget key or rate that cannot work.
func (c BudgetConfig) validate() error {
	if c.Key != "" {
		if err := budget.CheckKey(c.Key); err != nil {
			return fmt.Errorf("budget key %q: %w", c.Key, err)
		}
	}
	if c.APIRate != "" && c.APIRate != "0" {
		if _, err := budget.ParseRate(c.APIRate); err != nil {
			return fmt.Errorf("api rate: %w", err)
		}
	}
	if c.Claim < worker.RateAdopt || c.Claim > worker.RateOverride {
		return fmt.Errorf("budget claim %d: want RateAdopt, RateRequire or RateOverride", c.Claim)
	}
	return nil
}

// claim is the budget claim of Credentials.
func (c BudgetConfig) claim() budget.Claim {
	mode := budget.Follow
	switch c.Claim {
	case worker.RateRequire:
		mode = budget.Require
	case worker.RateOverride:
		mode = budget.Override
	}
	return budget.Claim{Rate: cmp.Or(c.APIRate, worker.APIRateDefault), Key: c.Key, Digest: c.Credentials.Digest(), Mode: mode}
}

// BudgetPacer returns the Pacer of Credentials' budget of cfg on rdb (cfg.Named
// aside), for a ClientConfig.Pacer of one's own making; ClientConfig.Budget
// paces a Client with it. The challenges of a batch are scheduled at the
// pace the workers can spend them, two calls each, so that polls and
// validations do not queue behind a whole batch of challenges. It returns
// nil for APIRate "0".
func BudgetPacer(ctx context.Context, rdb redis.UniversalClient, cfg BudgetConfig) (Pacer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return settle(ctx, rdb, cfg.claim(), cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)))
}

// settle settles claim with the rate stored in Redis and returns the pacer
// of its budget, nil for no budget. A rate conflict is a
// *worker.RateConflictError.
func settle(ctx context.Context, rdb redis.UniversalClient, claim budget.Claim, log *slog.Logger) (Pacer, error) {
	bc, ok, err := budget.Settle(ctx, rdb, claim, log)
	if ce := (*budget.RateConflictError)(nil); errors.As(err, &ce) {
		return nil, &worker.RateConflictError{Shared: ce.Shared.String(), Wanted: ce.Wanted.String()}
	}
	if err != nil || !ok {
		return nil, err
	}
	p, err := budget.NewPacer(rdb, bc)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// budgets are a Client's pacers of cfg: each budget is settled on first
// use and kept for the client's life; the credentials of one budget key
// share its pacer.
type budgets struct {
	rdb redis.UniversalClient
	cfg BudgetConfig
	log *slog.Logger

	mu    sync.Mutex
	def   Pacer
	ready bool // def is settled
	byKey map[string]Pacer
}

// pacer is the pacer of the rows naming credential ("" for none), nil
// for no budget.
func (b *budgets) pacer(ctx context.Context, credential string) (Pacer, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if credential == "" {
		if !b.ready {
			p, err := settle(ctx, b.rdb, b.cfg.claim(), b.log)
			if err != nil {
				return nil, err
			}
			b.def, b.ready = p, true
		}
		return b.def, nil
	}
	n, ok := b.cfg.Named.Lookup(credential)
	if !ok {
		return nil, fmt.Errorf("credential %s: not in the credentials file", credential)
	}
	key := cmp.Or(n.BudgetKey, n.Digest())
	if p, ok := b.byKey[key]; ok {
		return p, nil
	}
	// A named credential's api_rate is the workers' to require: a producer
	// follows it, or overrides it with the default credential's.
	claim := b.cfg.claim()
	if claim.Mode == budget.Require {
		claim.Mode = budget.Follow
	}
	p, err := settle(ctx, b.rdb, claim.ForCredential(n.APIRate, n.BudgetKey, n.Digest()), b.log.With("credential", credential))
	if err != nil {
		return nil, fmt.Errorf("credential %s: %w", credential, err)
	}
	if b.byKey == nil {
		b.byKey = map[string]Pacer{}
	}
	b.byKey[key] = p
	return p, nil
}
