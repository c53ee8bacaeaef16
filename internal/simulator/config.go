package simulator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
)

// WriteFunc writes the challenge file named filename (relative to the
// destination's bucket, as Cloudflare answers it) into the destination that
// destinationConf names. The caller wires it to S3 or file writers.
type WriteFunc func(ctx context.Context, destinationConf, filename string, body []byte) error

// Hostile answer kinds, for Config.HostileKinds.
const (
	// HostileHTML answers 200 with an HTML page.
	HostileHTML = "html"
	// HostileTruncated answers 200 with a Content-Length longer than the
	// body, then cuts the connection.
	HostileTruncated = "truncated"
	// HostileHuge answers 200 with a valid but 5 MiB JSON body.
	HostileHuge = "huge"
	// HostileNoResult answers 200 with success=true and result=null.
	HostileNoResult = "no_result"
	// HostileSlow waits SlowDelay, then answers normally (the call takes
	// effect: a challenge file is still written).
	HostileSlow = "slow"
	// HostileRedirect answers 302 to another host.
	HostileRedirect = "redirect"
	// HostileNotJSON answers 200 with a proxy's plain-text error.
	HostileNotJSON = "not_json"
)

// HostileKinds lists every hostile kind.
func HostileKinds() []string {
	return []string{HostileHTML, HostileTruncated, HostileHuge, HostileNoResult, HostileSlow, HostileRedirect, HostileNotJSON}
}

// Defaults of Config.
const (
	// DefaultTokenTTL is how long a challenge token validates, as on
	// Cloudflare.
	DefaultTokenTTL = 7 * 24 * time.Hour
	// DefaultRateWindow is Cloudflare's window: 1200 requests per 5 minutes.
	DefaultRateWindow = 5 * time.Minute
	// DefaultPenalty is how long every call gets 429 once the limit is
	// exceeded.
	DefaultPenalty = 5 * time.Minute
	// DefaultSlowDelay is longer than the client's default request timeout.
	DefaultSlowDelay = 35 * time.Second
	// DefaultWriteTimeout bounds one WriteFunc call.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultMaxJobsPerScope is Cloudflare's documented default job limit
	// of a zone.
	DefaultMaxJobsPerScope = 4
	// DefaultJobPushDelay is how long after its creation an enabled job
	// first pushes.
	DefaultJobPushDelay = 5 * time.Second
)

// Config configures a Simulator. Every field but Write is optional.
type Config struct {
	// Write puts the challenge file into the destination. Required.
	Write WriteFunc
	// WriteDelay is how long after the challenge the file appears. Default 0.
	WriteDelay time.Duration
	// WriteJitter adds a random delay in [0, WriteJitter). Default 0.
	WriteJitter time.Duration
	// WriteTimeout bounds one Write call. Default DefaultWriteTimeout.
	WriteTimeout time.Duration

	// APIToken is the accepted bearer token.
	APIToken string
	// TokenAccountID, when set, makes APIToken an account-owned token of
	// that account, as Cloudflare recommends for automation: GET
	// /user/tokens/verify answers it 401 and GET
	// /accounts/{TokenAccountID}/tokens/verify verifies it. Default "": a
	// user token.
	TokenAccountID string
	// Email and APIKey are the accepted X-Auth-Email and X-Auth-Key.
	// When APIToken, Email and APIKey are all empty, any well-formed
	// non-empty bearer token, or email and key, is accepted.
	Email, APIKey string
	// RevokedTokens are bearer tokens answered as Cloudflare answers a
	// revoked token (403 code 10000), even when any token is accepted:
	// one tenant's broken credential among good ones.
	RevokedTokens []string
	// TokenRateLimits sets RateLimit per bearer token: the limit of the
	// tokens it names, over RateWindow (DefaultRateWindow when unset).
	// Tokens it does not name take RateLimit.
	TokenRateLimits map[string]int

	// ErrorRate is the fraction of calls answered 500, 502 or 503 (a 502 is
	// sometimes an HTML page; a 503 carries Retry-After: 1). Default 0.
	ErrorRate float64
	// RateLimitRate is the fraction of calls answered 429 with
	// Retry-After: 1. Default 0.
	RateLimitRate float64
	// RateLimit is Cloudflare's limit of requests per credential in any
	// RateWindow; the request past it, and every request during the
	// following Penalty, get 429 with Retry-After set to the penalty left.
	// Default 0: off.
	RateLimit int
	// RateWindow is the sliding window of RateLimit, and of
	// Stats.MaxInWindow. Default DefaultRateWindow when RateLimit is set;
	// otherwise 0, and MaxInWindow is not tracked.
	RateWindow time.Duration
	// Penalty is how long every call gets 429 once the limit is exceeded.
	// Default DefaultPenalty when RateLimit is set.
	Penalty time.Duration

	// Hostile is the fraction of calls answered with one of HostileKinds
	// (picked uniformly). Default 0.
	Hostile float64
	// HostileKinds are the hostile answers to use. Default: all.
	HostileKinds []string
	// SlowDelay is how long a HostileSlow answer waits. Default
	// DefaultSlowDelay.
	SlowDelay time.Duration

	// TokenTTL is how long a challenge token validates. Default
	// DefaultTokenTTL.
	TokenTTL time.Duration

	// MaxJobsPerScope is how many Logpush jobs one zone or account can
	// hold; creating one more is answered 403 code 1004. Default
	// DefaultMaxJobsPerScope.
	MaxJobsPerScope int
	// AllowDuplicateJobs lets a zone or account hold several jobs of the
	// same dataset with the same destination_conf, as Cloudflare does.
	// Default false: such a second job is answered 400 code 1003, which
	// makes a repeated create visible. Jobs of different datasets to one
	// destination_conf are always accepted, as by Cloudflare (several jobs
	// per destination since May 2022).
	AllowDuplicateJobs bool
	// JobPushDelay is how long after its creation an enabled job first
	// pushes (Cloudflare: a job starts pushing some seconds after it is
	// enabled); until then GET .../jobs/{id} answers last_complete,
	// last_error and error_message null. Default DefaultJobPushDelay;
	// negative: at once.
	JobPushDelay time.Duration
	// JobPushError, when set, returns the error message of a job pushing
	// to destinationConf ("" pushes fine): from its first push on, such a
	// job answers last_error and error_message, as a job Cloudflare cannot
	// write for (a bucket that refuses its writes). Default nil: every
	// destination accepts the pushes.
	JobPushError func(destinationConf string) string
	// NoTraffic, when set, says which zone or account ("zone" or
	// "account", and its id) has no logs: its jobs never push, and answer
	// neither last_complete nor last_error. Default nil: every zone has
	// traffic.
	NoTraffic func(scope, id string) bool
	// Now is the clock of token expiry and rate windows. Default time.Now.
	// (Write delays run on real timers.)
	Now func() time.Time
	// Seed seeds the simulator's randomness (faults, jitter, token ids);
	// 0 picks a random seed.
	Seed uint64
	// Logger receives write failures (Warn) and one line per request
	// (Debug). Default: discard.
	Logger *slog.Logger
}

// WithDefaults returns c with every unset field given its default.
func (c Config) WithDefaults() Config {
	c.WriteTimeout = cmp.Or(c.WriteTimeout, DefaultWriteTimeout)
	if c.RateLimit > 0 || len(c.TokenRateLimits) > 0 {
		c.RateWindow = cmp.Or(c.RateWindow, DefaultRateWindow)
		c.Penalty = cmp.Or(c.Penalty, DefaultPenalty)
	}
	if len(c.HostileKinds) == 0 {
		c.HostileKinds = HostileKinds()
	}
	c.SlowDelay = cmp.Or(c.SlowDelay, DefaultSlowDelay)
	c.TokenTTL = cmp.Or(c.TokenTTL, DefaultTokenTTL)
	c.MaxJobsPerScope = cmp.Or(c.MaxJobsPerScope, DefaultMaxJobsPerScope)
	switch {
	case c.JobPushDelay == 0:
		c.JobPushDelay = DefaultJobPushDelay
	case c.JobPushDelay < 0:
		c.JobPushDelay = 0
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// validate checks a Config that WithDefaults has filled.
func (c Config) validate() error {
	if c.Write == nil {
		return errors.New("write func is required")
	}
	for name, d := range map[string]time.Duration{
		"write delay": c.WriteDelay, "write jitter": c.WriteJitter, "write timeout": c.WriteTimeout,
		"rate window": c.RateWindow, "penalty": c.Penalty, "slow delay": c.SlowDelay, "token ttl": c.TokenTTL,
	} {
		if d < 0 {
			return fmt.Errorf("%s must not be negative, got %s", name, d)
		}
	}
	for name, r := range map[string]float64{"error rate": c.ErrorRate, "rate limit rate": c.RateLimitRate, "hostile": c.Hostile} {
		if !(r >= 0 && r <= 1) {
			return fmt.Errorf("%s must be in [0, 1], got %v", name, r)
		}
	}
	if sum := c.ErrorRate + c.RateLimitRate + c.Hostile; sum > 1 {
		return fmt.Errorf("error rate + rate limit rate + hostile must not exceed 1, got %v", sum)
	}
	if c.RateLimit < 0 {
		return fmt.Errorf("rate limit must not be negative, got %d", c.RateLimit)
	}
	if c.MaxJobsPerScope < 0 {
		return fmt.Errorf("max jobs per scope must not be negative, got %d", c.MaxJobsPerScope)
	}
	all := HostileKinds()
	for _, k := range c.HostileKinds {
		if !slices.Contains(all, k) {
			return fmt.Errorf("unknown hostile kind %q (known: %v)", k, all)
		}
	}
	if c.TokenAccountID != "" && (c.APIToken == "" || !cloudflare.IsIdentifier(c.TokenAccountID)) {
		return errors.New("token account id needs an api token and must be 32 hex characters")
	}
	if (c.Email == "") != (c.APIKey == "") {
		return errors.New("email and api key must be set together")
	}
	return nil
}
