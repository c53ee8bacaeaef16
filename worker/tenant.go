package worker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/keys"
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
	Budget apiBudget
	// Auth counts this credential's consecutive 401/403 answers; nil:
	// never pauses.
	Auth *authGuard
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
const DefaultCredentialName = keys.DefaultCredential

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

// credentialPause holds the rows of one credential after repeated 401/403
// answers for it, leaving the other credentials' rows going; when every
// credential in use is paused, it pauses the queue too.
type credentialPause struct {
	rdb     redis.UniversalClient
	name    string // redisName
	insp    *asynq.Inspector
	store   *ledger.Store
	metrics *metrics.Metrics
	now     func() time.Time

	mu        sync.Mutex
	checked   time.Time
	paused    bool
	markedUse time.Time
}

// isPausedScript reports whether credential ARGV[1] is paused (1) and,
// when it is not and ARGV[2] is a time, marks it in use at ARGV[2]:
// KEYS[1] keys.PausedCredentials, KEYS[2] keys.CredentialsInUse.
var isPausedScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 1 end
if ARGV[2] ~= '' then redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1]) end
return 0`)

// isPaused reports whether the credential is paused, from Redis at most
// every pauseCheckEvery; a credential not paused is marked in use at most
// every inUseEvery, in the same round trip.
func (p *credentialPause) isPaused(ctx context.Context) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if now.Sub(p.checked) < pauseCheckEvery {
		return p.paused, nil
	}
	mark := now.Sub(p.markedUse) >= inUseEvery
	use := ""
	if mark {
		use = strconv.FormatInt(now.Unix(), 10)
	}
	ok, err := isPausedScript.Run(ctx, p.rdb, []string{keys.PausedCredentials, keys.CredentialsInUse}, p.name, use).Bool()
	if err != nil {
		return false, fmt.Errorf("read credential pause: %w", err)
	}
	p.checked, p.paused = now, ok
	if !ok && mark {
		p.markedUse = now
	}
	return ok, nil
}

// park records the running task as one of the paused credential's rows,
// for resume to wake, and returns its snooze: no retry spent, no slot held.
func (p *credentialPause) park(ctx context.Context) error {
	id, _ := asynq.GetTaskID(ctx)
	queue, _ := asynq.GetQueueName(ctx)
	if id != "" {
		if err := p.rdb.HSet(ctx, keys.ParkedPrefix+p.name, id, queue).Err(); err != nil {
			return fmt.Errorf("park row of paused credential: %w", err)
		}
	}
	return &SnoozeError{Delay: parkDelay, Reason: "credential " + p.name + " paused after repeated authentication failures"}
}

// pauseScript pauses credential ARGV[1] with reason ARGV[2] since ARGV[3]
// (RFC3339; an earlier pause keeps its time), and returns 1 when every
// credential in use since unix second ARGV[4] is paused now, else 0:
// KEYS[1] keys.PausedCredentials, KEYS[2] keys.PausedCredentialsSince,
// KEYS[3] keys.CredentialsInUse. It writes all or nothing: a key of the
// wrong type is refused before any write.
var pauseScript = redis.NewScript(`
for i = 1, 2 do
  local t = redis.call('TYPE', KEYS[i])
  if type(t) == 'table' then t = t.ok end
  if t ~= 'hash' and t ~= 'none' then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. t .. ', not a hash')
  end
end
local inUse = redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[4], '+inf')
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[3])
for _, n in ipairs(inUse) do
  if redis.call('HEXISTS', KEYS[1], n) == 0 then return 0 end
end
return 1`)

// pause is the credential's authGuard pause: it records the credential as
// paused and reads whether every credential used in the last inUseWindow
// is paused now, in one script; then it emits a credential_paused event,
// and pauses the queue when they all are.
func (p *credentialPause) pause(ctx context.Context, reason string) error {
	reason = "credential " + p.name + ": " + reason
	now := p.now()
	all, err := pauseScript.Run(ctx, p.rdb, []string{keys.PausedCredentials, keys.PausedCredentialsSince, keys.CredentialsInUse},
		p.name, reason, now.UTC().Format(time.RFC3339), now.Add(-inUseWindow).Unix()).Bool()
	if err != nil {
		return fmt.Errorf("pause credential: %w", err)
	}
	p.mu.Lock()
	p.checked, p.paused = now, true
	p.mu.Unlock()
	if err := p.store.Emit(ctx, events.Event{Event: events.CredentialPaused, Credential: p.name,
		Error: &events.Error{Message: reason}, Time: now.UTC()}); err != nil {
		return err
	}
	if !all {
		return nil
	}
	p.metrics.QueuePauses.WithLabelValues("auth").Inc()
	return pauseQueue(p.rdb, p.insp, p.store, p.now)(ctx, "every credential in use is paused after repeated authentication failures (last: "+reason+")")
}

// PausedCredentials returns the paused credentials' names with the reason
// of each (DefaultCredentialName for the default one).
func PausedCredentials(ctx context.Context, rdb redis.UniversalClient) (map[string]string, error) {
	m, err := rdb.HGetAll(ctx, keys.PausedCredentials).Result()
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
	n, err := rdb.HDel(ctx, keys.PausedCredentials, name).Result()
	if err != nil {
		return false, fmt.Errorf("resume credential %s: %w", name, err)
	}
	plain := name
	if name == DefaultCredentialName {
		plain = ""
	}
	if err := rdb.Del(ctx, keys.AuthFailuresOf(plain)).Err(); err != nil {
		return false, fmt.Errorf("resume credential %s: %w", name, err)
	}
	if err := rdb.HDel(ctx, keys.PausedCredentialsSince, name).Err(); err != nil {
		return false, fmt.Errorf("resume credential %s: %w", name, err)
	}
	if n > 0 {
		if err := ledger.NewStore(rdb, ledger.Config{}).Emit(ctx, events.Event{Event: events.CredentialResumed, Credential: name, Time: time.Now().UTC()}); err != nil {
			return true, err
		}
	}
	parked, err := rdb.HGetAll(ctx, keys.ParkedPrefix+name).Result()
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
	if err := rdb.Del(ctx, keys.ParkedPrefix+name).Err(); err != nil {
		return n > 0, fmt.Errorf("resume credential %s: %w", name, err)
	}
	return n > 0, nil
}

// errUnknownCredential is wrapped by the failure of a row whose credential
// the worker does not have (the credentials file changed between enqueue
// and worker).
var errUnknownCredential = errors.New("unknown credential")

// tenantOf is the tenant of a row's credential name.
func (h *handlers) tenantOf(name string) (*tenant, error) {
	if name == "" {
		if h.def == nil {
			return nil, fmt.Errorf("%w: the row names no credential and the worker has no default credential (CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY)", errUnknownCredential)
		}
		return h.def, nil
	}
	if t, ok := h.named[name]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("%w %q: not in the worker's credentials file (known: %s)", errUnknownCredential, name, knownNames(h.named))
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
