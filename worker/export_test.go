package worker

import (
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/metrics"
)

// The handlers' construction, for the tests that run them on fakes:
// embedding programs build a worker with New.
type (
	API  = cloudflareAPI
	Deps = deps
)

var (
	NewHandlers = newHandlers
	PauseQueue  = pauseQueue
)

// Tenant is a credential's client, budget and guard, for Deps.Named.
type Tenant = tenant

// NewCredentialGuard is the guard of the named credential name in a fleet
// with named credentials, and the pause it trips.
func NewCredentialGuard(rdb redis.UniversalClient, insp *asynq.Inspector, store *ledger.Store, m *metrics.Metrics, name string, threshold int) (*AuthGuard, *credentialPause) {
	p := &credentialPause{rdb: rdb, name: redisName(name), insp: insp, store: store, metrics: m}
	return NewAuthGuard(rdb, authKey(name), threshold, p.pause), p
}
