package producer

import (
	"cmp"
	"context"
	"log/slog"
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

// BudgetConfig names the API budget that the workers of one credential
// share in Redis, as worker.Config names it.
type BudgetConfig struct {
	// Credentials is the credential whose budget it is: its digest names
	// the budget unless Key does (never the secret itself).
	Credentials credentials.Cloudflare
	// Key names the budget instead, as worker.Config.BudgetKey does.
	Key string
	// APIRate is the rate, LIMIT/WINDOW, taken when Redis has none stored
	// for the budget yet; the stored one (the workers') wins. Default
	// 1200/5m, Cloudflare's limit per user; "0": no budget, no pacing.
	APIRate string
	// Logger says when the stored rate differs from APIRate; default
	// discard.
	Logger *slog.Logger
}

// BudgetPacer returns the Pacer of the budget cfg names on rdb, for
// ClientConfig.Pacer: the challenges of a batch are scheduled at the pace
// the workers can spend them, two calls each, so that polls and
// validations do not queue behind a whole batch of challenges. It returns
// nil for APIRate "0".
func BudgetPacer(ctx context.Context, rdb redis.UniversalClient, cfg BudgetConfig) (Pacer, error) {
	log := cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	bc, ok, err := budget.Settle(ctx, rdb, budget.Claim{Rate: cmp.Or(cfg.APIRate, worker.APIRateDefault), Key: cfg.Key,
		Digest: cfg.Credentials.Digest(), Mode: budget.Follow}, log)
	if err != nil || !ok {
		return nil, err
	}
	return budget.NewPacer(rdb, bc)
}
