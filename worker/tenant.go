package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/metrics"
)

// tenant is what the calls made for the rows of one credential go
// through: its client, its budget and its auth guard. A row's
// tasks.Dest.Credential picks it; "" is the default credential.
type tenant struct {
	// Name is the credential's name; "" the default.
	Name string
	// API calls Cloudflare with this credential.
	API cloudflareAPI
	// Budget is this credential's shared budget; nil: none.
	Budget Budget
	// Auth counts this credential's consecutive 401/403 answers; nil:
	// never pauses.
	Auth *AuthGuard
	// Pause, when set, holds this credential's rows while it is paused
	// (a fleet with named credentials); nil: the queue-wide pause only.
	Pause *credentialPause
	// Check is this worker's view of its copy of the credential; nil:
	// none (its 401/403 answers are judged by Auth alone).
	Check *credCheck
}

// label is the credential's metrics label: its name, "" the default.
func (t *tenant) label() string { return t.Name }

// DefaultCredentialName names the default credential (the rows that name
// none) in Redis, in credential events and for resume --credential: a
// file's names cannot hold parentheses, so it is no file's name.
const DefaultCredentialName = "(default)"

// Redis keys of the per-credential pause.
const (
	// PausedCredentialsKey is a hash of the paused credentials' names to
	// the reason; resume clears it.
	PausedCredentialsKey = "logpush:paused_credentials"
	// parkedPrefix + name is a hash of the task ids of a paused
	// credential's parked rows to their queue, which resume wakes.
	parkedPrefix = "logpush:parked:"
	// inUseKey is a sorted set of the credentials that made calls lately,
	// scored by unix seconds: the queue pauses when all of them are paused.
	inUseKey = "logpush:credentials_in_use"
)

// Timing of the per-credential pause.
const (
	// pauseCheckEvery bounds how often a process reads whether a credential
	// is paused: at most one Redis read per credential per second.
	pauseCheckEvery = time.Second
	// parkDelay is how long a parked row sleeps before it looks again,
	// should resume not wake it.
	parkDelay = 10 * time.Minute
	// inUseWindow is how recently a credential must have been used to
	// count as in use; inUseEvery how often a process marks its use.
	inUseWindow = 10 * time.Minute
	inUseEvery  = 30 * time.Second
)

// redisName is a credential's name in Redis and events.
func redisName(name string) string {
	if name == "" {
		return DefaultCredentialName
	}
	return name
}

// authKey is where the consecutive 401/403 answers of a credential are
// counted: the default's where they always were.
func authKey(name string) string {
	if name == "" {
		return AuthFailuresKey
	}
	return AuthFailuresKey + ":" + name
}

// credentialPause holds the rows of one credential after repeated 401/403
// answers for it, leaving the other credentials' rows going; when every
// credential in use is paused, it pauses the queue too.
type credentialPause struct {
	rdb     redis.UniversalClient
	name    string // redisName
	insp    *asynq.Inspector
	store   *ledger.Store
	metrics *metrics.Metrics

	mu        sync.Mutex
	checked   time.Time
	paused    bool
	markedUse time.Time
}

// isPaused reports whether the credential is paused, from Redis at most
// every pauseCheckEvery.
func (p *credentialPause) isPaused(ctx context.Context) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.checked) < pauseCheckEvery {
		return p.paused, nil
	}
	ok, err := p.rdb.HExists(ctx, PausedCredentialsKey, p.name).Result()
	if err != nil {
		return false, fmt.Errorf("read credential pause: %w", err)
	}
	p.checked, p.paused = now, ok
	if !ok && now.Sub(p.markedUse) >= inUseEvery {
		p.markedUse = now
		p.rdb.ZAdd(ctx, inUseKey, redis.Z{Score: float64(now.Unix()), Member: p.name})
	}
	return ok, nil
}

// park records the running task as one of the paused credential's rows,
// for resume to wake, and returns its snooze: no retry spent, no slot held.
func (p *credentialPause) park(ctx context.Context) error {
	id, _ := asynq.GetTaskID(ctx)
	queue, _ := asynq.GetQueueName(ctx)
	if id != "" {
		if err := p.rdb.HSet(ctx, parkedPrefix+p.name, id, queue).Err(); err != nil {
			return fmt.Errorf("park row of paused credential: %w", err)
		}
	}
	return &SnoozeError{Delay: parkDelay, Reason: "credential " + p.name + " paused after repeated authentication failures"}
}

// pause is the credential's AuthGuard pause: it records the credential as
// paused, emits a credential_paused event, and pauses the queue when every
// credential used lately is paused.
func (p *credentialPause) pause(ctx context.Context, reason string) error {
	reason = "credential " + p.name + ": " + reason
	pipe := p.rdb.TxPipeline()
	pipe.HSet(ctx, PausedCredentialsKey, p.name, reason)
	pipe.HSetNX(ctx, pausedSinceKey, p.name, time.Now().UTC().Format(time.RFC3339))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("pause credential: %w", err)
	}
	p.mu.Lock()
	p.checked, p.paused = time.Now(), true
	p.mu.Unlock()
	if err := p.store.Emit(ctx, events.Event{Event: events.CredentialPaused, Credential: p.name,
		Error: &events.Error{Message: reason}, Time: time.Now().UTC()}); err != nil {
		return err
	}
	all, err := allInUsePaused(ctx, p.rdb, p.name)
	if err != nil || !all {
		return err
	}
	p.metrics.QueuePauses.WithLabelValues("auth").Inc()
	return pauseQueue(p.rdb, p.insp, p.store)(ctx, "every credential in use is paused after repeated authentication failures (last: "+reason+")")
}

// allInUsePaused reports whether every credential used in the last
// inUseWindow (and self) is paused.
func allInUsePaused(ctx context.Context, rdb redis.UniversalClient, self string) (bool, error) {
	since := time.Now().Add(-inUseWindow).Unix()
	names, err := rdb.ZRangeByScore(ctx, inUseKey, &redis.ZRangeBy{Min: fmt.Sprint(since), Max: "+inf"}).Result()
	if err != nil {
		return false, fmt.Errorf("read credentials in use: %w", err)
	}
	paused, err := rdb.HKeys(ctx, PausedCredentialsKey).Result()
	if err != nil {
		return false, fmt.Errorf("read paused credentials: %w", err)
	}
	set := map[string]bool{self: true}
	for _, n := range paused {
		set[n] = true
	}
	for _, n := range names {
		if !set[n] {
			return false, nil
		}
	}
	return true, nil
}

// PausedCredentials returns the paused credentials' names with the reason
// of each (DefaultCredentialName for the default one).
func PausedCredentials(ctx context.Context, rdb redis.UniversalClient) (map[string]string, error) {
	m, err := rdb.HGetAll(ctx, PausedCredentialsKey).Result()
	if err != nil {
		return nil, fmt.Errorf("read paused credentials: %w", err)
	}
	return m, nil
}

// ResumeCredential releases the credential called name
// (DefaultCredentialName for the default): it clears its pause and its
// count of authentication failures, emits a credential_resumed event when
// it was paused, and wakes its parked rows. It reports whether the
// credential was paused.
func ResumeCredential(ctx context.Context, rdb redis.UniversalClient, name string) (bool, error) {
	n, err := rdb.HDel(ctx, PausedCredentialsKey, name).Result()
	if err != nil {
		return false, fmt.Errorf("resume credential %s: %w", name, err)
	}
	plain := name
	if name == DefaultCredentialName {
		plain = ""
	}
	if err := rdb.Del(ctx, authKey(plain)).Err(); err != nil {
		return false, fmt.Errorf("resume credential %s: %w", name, err)
	}
	if err := rdb.HDel(ctx, pausedSinceKey, name).Err(); err != nil {
		return false, fmt.Errorf("resume credential %s: %w", name, err)
	}
	if n > 0 {
		if err := ledger.NewStore(rdb, ledger.Config{}).Emit(ctx, events.Event{Event: events.CredentialResumed, Credential: name, Time: time.Now().UTC()}); err != nil {
			return true, err
		}
	}
	parked, err := rdb.HGetAll(ctx, parkedPrefix+name).Result()
	if err != nil {
		return n > 0, fmt.Errorf("resume credential %s: %w", name, err)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	for id, queue := range parked {
		err := insp.RunTask(queue, id)
		if err != nil && !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) &&
			!strings.Contains(err.Error(), "already") {
			return n > 0, fmt.Errorf("wake a parked row of credential %s: %w", name, err)
		}
	}
	if err := rdb.Del(ctx, parkedPrefix+name).Err(); err != nil {
		return n > 0, fmt.Errorf("resume credential %s: %w", name, err)
	}
	return n > 0, nil
}

// ErrUnknownCredential is wrapped by the failure of a row whose credential
// the worker does not have (the credentials file changed between enqueue
// and worker).
var ErrUnknownCredential = errors.New("unknown credential")

// tenantOf is the tenant of a row's credential name.
func (h *Handlers) tenantOf(name string) (*tenant, error) {
	if name == "" {
		if h.def == nil {
			return nil, fmt.Errorf("%w: the row names no credential and the worker has no default credential (CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY)", ErrUnknownCredential)
		}
		return h.def, nil
	}
	if t, ok := h.named[name]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("%w %q: not in the worker's credentials file (known: %s)", ErrUnknownCredential, name, knownNames(h.named))
}

func knownNames(m map[string]*tenant) string {
	if len(m) == 0 {
		return "none"
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	if len(names) > 20 {
		return strings.Join(names[:20], ", ") + fmt.Sprintf(" and %d more", len(names)-20)
	}
	return strings.Join(names, ", ")
}
