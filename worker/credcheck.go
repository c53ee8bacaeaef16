package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/keys"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// A worker's own view of each credential it holds. Every worker of a fleet
// holds its own copy of a credential (its environment, its credentials
// file): one started with a wrong token must not fail the rows that the
// others can do. So a 401/403 answer makes the worker verify its copy of
// the credential (with the row's account or zone): when Cloudflare refuses
// it, the worker stops taking that credential's rows (it hands each back to
// the queue, spending no retry, for a worker whose copy works), reports
// unready on /readyz and logs one line naming its host. Only when no live
// worker of the fleet holds a working copy does the credential's pause
// (authGuard) hold the rows for an operator. A copy that verifies makes the
// answer the destination's own, judged as before.

// Timing of the fleet view of a credential.
const (
	// fleetBeat is how often a worker refreshes its marks; fleetAlive is
	// how old a mark may be and still count.
	fleetBeat  = 10 * time.Second
	fleetAlive = 3 * fleetBeat
	// handBackDelay is how long a row handed back by a worker whose copy
	// of its credential is refused sleeps before it is taken again.
	handBackDelay = 2 * time.Second
	// recheckEvery is how often a worker whose copy was refused verifies
	// it again (with a row's scope), should Cloudflare have refused it by
	// mistake.
	recheckEvery = time.Minute
)

// Self names this worker process in events, reports and logs: host:pid.
func Self() string {
	host, _ := os.Hostname()
	return host + ":" + strconv.Itoa(os.Getpid())
}

// verifyFunc checks a credential as cloudflare.Client.VerifyCredential does.
type verifyFunc func(ctx context.Context, sc cloudflare.VerifyScopes, p cloudflare.VerifyPolicy) (cloudflare.Verification, error)

// credState is what a worker knows of its copy of a credential.
type credState int

const (
	credUnknown credState = iota // not verified yet (an account-owned token without a scope to check it at)
	credOK
	credRefused
)

// credCheck is one worker's copy of one credential.
type credCheck struct {
	name   string // redisName
	rdb    redis.UniversalClient
	verify verifyFunc
	now    func() time.Time
	// id is this worker in the fleet's hash (Self plus a per-Worker
	// suffix: tests run several workers in one process); self is Self.
	id, self string
	log      *slog.Logger

	mu       sync.Mutex
	state    credState
	since    time.Time // of the state
	cause    string    // why refused, redacted (Cloudflare's message)
	checkAt  time.Time // when the last verify started
	checkErr error     // its answer (nil: verified)
	beatAt   time.Time
	elseAt   time.Time // when worksElsewhere last read Redis
	elseOK   bool
}

// CredentialRefusedError is CheckCredentials' error when Cloudflare refuses
// a credential the worker holds. It names the credential, never its value.
type CredentialRefusedError struct {
	// Credential is the credential's name (DefaultCredentialName for the
	// environment's).
	Credential string
	Err        error
}

func (e *CredentialRefusedError) Error() string {
	return fmt.Sprintf("credential %s: refused by Cloudflare: %v", e.Credential, e.Err)
}

func (e *CredentialRefusedError) Unwrap() error { return e.Err }

// refused says whether the credential is refused to this worker, since when.
func (c *credCheck) refused() (bool, time.Time, string) {
	if c == nil {
		return false, time.Time{}, ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == credRefused, c.since, c.cause
}

// set moves the credential to st, writes the worker's mark, and logs a
// refusal or a recovery once.
func (c *credCheck) set(ctx context.Context, st credState, cause string) {
	c.mu.Lock()
	prev := c.state
	c.state, c.cause = st, cause
	if prev != st {
		c.since = c.now()
	}
	c.beatAt = c.now()
	c.mu.Unlock()
	c.mark(ctx, st)
	host, pid, _ := strings.Cut(c.self, ":")
	switch {
	case st == credRefused && prev != credRefused:
		c.log.Error("credential refused by Cloudflare: this worker takes none of its rows; they go to workers whose copy works (fix this worker's credential and restart it)",
			"credential", c.name, "host", host, "pid", pid, "err", cause)
	case st == credOK && prev == credRefused:
		c.log.Info("credential verified again: this worker takes its rows again", "credential", c.name, "host", host, "pid", pid)
	}
}

// mark writes this worker's mark of st into the fleet's hash.
func (c *credCheck) mark(ctx context.Context, st credState) {
	v := "held" // not verified yet: it may work
	switch st {
	case credOK:
		v = "ok"
	case credRefused:
		v = "refused"
	}
	key := keys.CredentialWorkersPrefix + c.name
	pipe := c.rdb.TxPipeline()
	pipe.HSet(ctx, key, c.id, v+" "+strconv.FormatInt(c.now().Unix(), 10))
	pipe.Expire(ctx, key, keys.CredentialWorkersTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		c.log.Debug("credential mark not written", "credential", c.name, "err", err)
	}
}

// succeeded notes a call the credential made: it works here.
func (c *credCheck) succeeded(ctx context.Context) {
	if c == nil {
		return
	}
	c.mu.Lock()
	fresh := c.state == credOK && c.now().Sub(c.beatAt) < fleetBeat
	c.mu.Unlock()
	if !fresh {
		c.set(ctx, credOK, "")
	}
}

// beat refreshes the worker's mark.
func (c *credCheck) beat(ctx context.Context) {
	c.mu.Lock()
	st := c.state
	c.beatAt = c.now()
	c.mu.Unlock()
	c.mark(ctx, st)
}

// leave removes the worker's mark (at shutdown).
func (c *credCheck) leave(ctx context.Context) {
	c.rdb.HDel(ctx, keys.CredentialWorkersPrefix+c.name, c.id)
}

// scopes are the verify scopes of a row: its account, or its zone.
func scopes(d tasks.Dest) cloudflare.VerifyScopes {
	if d.Scope == cloudflare.ScopeAccount {
		return cloudflare.VerifyScopes{Accounts: []string{d.ScopeID}}
	}
	return cloudflare.VerifyScopes{Zones: []string{d.ScopeID}}
}

// runtimePolicy bounds a verify made while handling a task.
var runtimePolicy = cloudflare.VerifyPolicy{Attempts: 2, Initial: 500 * time.Millisecond, MaxWait: 5 * time.Second}

// check verifies the credential with d's scope, unless a verify started
// after failedAt answered already (the concurrent failures of one refused
// credential cost one verify). It reports whether Cloudflare refused it; an
// unavailable API (transient answers) is no verdict: false.
func (c *credCheck) check(ctx context.Context, failedAt time.Time, d tasks.Dest) bool {
	c.mu.Lock()
	if c.checkAt.IsZero() || c.checkAt.Before(failedAt) {
		c.checkAt = c.now()
		_, c.checkErr = c.verify(ctx, scopes(d), runtimePolicy)
	}
	err := c.checkErr
	c.mu.Unlock()
	var ae *cloudflare.APIError
	switch {
	case errors.As(err, &ae) && ae.Kind == cloudflare.Auth:
		c.set(ctx, credRefused, ae.Error())
		return true
	case err == nil:
		c.set(ctx, credOK, "")
	}
	return false
}

// recheck verifies a refused credential again with d's scope at most every
// recheckEvery, and reports whether it is still refused.
func (c *credCheck) recheck(ctx context.Context, d tasks.Dest) bool {
	c.mu.Lock()
	due := c.now().Sub(c.checkAt) >= recheckEvery
	c.mu.Unlock()
	if !due {
		return true
	}
	return c.check(ctx, c.now(), d)
}

// worksElsewhere reports whether another live worker holds a copy of the
// credential that Cloudflare did not refuse (verified, or not tried yet),
// from Redis at most once a second.
func (c *credCheck) worksElsewhere(ctx context.Context) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now().Sub(c.elseAt) < time.Second {
		return c.elseOK, nil
	}
	marks, err := c.rdb.HGetAll(ctx, keys.CredentialWorkersPrefix+c.name).Result()
	if err != nil {
		return false, fmt.Errorf("read the fleet's credential marks: %w", err)
	}
	ok := false
	for id, v := range marks {
		st, at, _ := strings.Cut(v, " ")
		sec, _ := strconv.ParseInt(at, 10, 64)
		if id != c.id && st != "refused" && c.now().Sub(time.Unix(sec, 0)) < fleetAlive {
			ok = true
			break
		}
	}
	c.elseAt, c.elseOK = c.now(), ok
	return ok, nil
}

// startCheck verifies the credential at worker start with scopes (the
// accounts and zones of the rows waiting in the queue, and
// CLOUDFLARE_ACCOUNT_ID): a refusal is a *CredentialRefusedError; an API
// token that is not a user token with nothing to check it at, or an
// unavailable API, leaves it unchecked (logged) for its first call to tell.
func (c *credCheck) startCheck(ctx context.Context, sc cloudflare.VerifyScopes) error {
	_, err := c.verify(ctx, sc, cloudflare.VerifyPolicy{})
	var ae *cloudflare.APIError
	switch {
	case err == nil:
		c.set(ctx, credOK, "")
		return nil
	case errors.Is(err, cloudflare.ErrNoAccountToCheck):
		c.log.Warn("credential not checked at start: the API token is not a user token and no row in the queue names an account or zone to check it at (set CLOUDFLARE_ACCOUNT_ID); a refused first call takes this worker off its rows",
			"credential", c.name)
		return nil
	case errors.As(err, &ae) && ae.Kind == cloudflare.Auth:
		return &CredentialRefusedError{Credential: c.name, Err: err}
	}
	c.log.Warn("credential not checked at start: Cloudflare did not answer; its first call tells", "credential", c.name, "err", err)
	return nil
}

// queuedScopes are the accounts and zones of up to 100 rows waiting in
// each logpush queue, by credential name ("" the default), to check the
// credentials of a worker that starts during a batch.
func queuedScopes(insp *asynq.Inspector) map[string]cloudflare.VerifyScopes {
	out := map[string]cloudflare.VerifyScopes{}
	for _, q := range tasks.Queues() {
		list := func(q string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error) {
			return insp.ListPendingTasks(q, opts...)
		}
		for _, l := range []func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){list, insp.ListScheduledTasks} {
			infos, err := l(q, asynq.PageSize(100))
			if err != nil {
				continue // no such queue yet
			}
			for _, ti := range infos {
				var d tasks.Dest
				if json.Unmarshal(ti.Payload, &d) != nil || d.ScopeID == "" {
					continue
				}
				sc := out[d.Credential]
				row := scopes(d)
				sc.Accounts = appendNew(sc.Accounts, row.Accounts...)
				sc.Zones = appendNew(sc.Zones, row.Zones...)
				out[d.Credential] = sc
			}
		}
	}
	return out
}

func appendNew(s []string, vs ...string) []string {
	for _, v := range vs {
		found := false
		for _, x := range s {
			found = found || x == v
		}
		if !found && len(s) < 10 {
			s = append(s, v)
		}
	}
	return s
}
