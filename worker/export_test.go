package worker

import (
	"context"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/keys"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/metrics"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// The handlers' construction, for the tests that run them on fakes:
// embedding programs build a worker with New.
type (
	API      = cloudflareAPI
	Deps     = deps
	Handlers = handlers
	Budget   = apiBudget
)

var (
	NewHandlers = newHandlers
	NewServer   = newServer
)

// Tenant is a credential's client, budget and guard, for Deps.Named.
type Tenant = tenant

// AuthGuard is a credential's guard, for Deps.Auth and Tenant.Auth.
type AuthGuard = authGuard

// NewAuthGuard is a guard on the wall clock.
func NewAuthGuard(rdb redis.UniversalClient, key string, threshold int, pause func(ctx context.Context, reason string) error) *AuthGuard {
	return newAuthGuard(rdb, key, threshold, time.Now, pause)
}

// NewCredentialGuard is the guard of the named credential name in a fleet
// with named credentials, and the pause it trips.
func NewCredentialGuard(rdb redis.UniversalClient, insp *asynq.Inspector, store *ledger.Store, m *metrics.Metrics, name string, threshold int) (*AuthGuard, *credentialPause) {
	p := &credentialPause{rdb: rdb, name: redisName(name), insp: insp, store: store, metrics: m, now: time.Now}
	return newAuthGuard(rdb, keys.AuthFailuresOf(name), threshold, time.Now, p.pause), p
}

// PauseQueue is the queue-wide pause on the wall clock.
func PauseQueue(rdb redis.UniversalClient, insp *asynq.Inspector, store *ledger.Store) func(ctx context.Context, reason string) error {
	return pauseQueue(rdb, insp, store, time.Now)
}

// ArchiveSweep is the worker's archive sweep (archive.go).
type ArchiveSweep = archiveSweep

// NewArchiveSweep is the archive sweep of h over queues.
func NewArchiveSweep(rdb redis.UniversalClient, insp *asynq.Inspector, h *Handlers, queues []string) *ArchiveSweep {
	return newArchiveSweep(rdb, insp, h, queues)
}

// Sweep is one look of the sweep: it returns how many tasks it deleted.
func (s *archiveSweep) Sweep(ctx context.Context) (int, error) { return s.sweep(ctx) }

// Observe records a challenge file's appearance delay, as a poll that
// takes a file does.
func (h *handlers) Observe(d time.Duration) { h.seen.observe(d) }

// ReadAt reads a file at the destination_conf's location, as the handlers
// read challenge files (measuring its store's clock on the way).
func (h *handlers) ReadAt(ctx context.Context, conf, filename string) error {
	c, err := tasks.ParseConf(conf)
	if err != nil {
		return err
	}
	_, err = h.read(ctx, destination.For(c, nil, filename), time.Time{})
	return err
}

// Learnt is the appearance delays learnt so far, in the order seen (the
// last 64).
func (h *handlers) Learnt() []time.Duration {
	h.seen.mu.Lock()
	defer h.seen.mu.Unlock()
	return append([]time.Duration(nil), h.seen.obs.vals...)
}

// ObserveLow records a precise observation's lower bound, as a poll that
// takes a file known to within a quarter second does.
func (h *handlers) ObserveLow(d time.Duration) { h.seen.observeLow(d) }

// ObserveHigh records an observation's upper bound, as a poll that finds a
// file on a store whose clock it measured does.
func (h *handlers) ObserveHigh(d time.Duration) { h.seen.observeHigh(d) }

// ScoutGap is the time from a scout's look, when it had waited that long,
// to its next.
func (h *handlers) ScoutGap(waited time.Duration) time.Duration { return h.scoutGap(waited) }

// ScoutLooks is how many looks at scouts a worker runs itself.
const ScoutLooks = scoutLooks
