package cloudflare

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/logpush-onboard/logpush-onboard/internal/words"
)

// ErrNoAccountToCheck is wrapped by VerifyCredential's error when the API
// token is not a user token (GET /user/tokens/verify answered 401) and no
// account or zone was given to check it with: the credential was not
// checked, which is not to say it does not work.
var ErrNoAccountToCheck = errors.New("the api token is not a user token, and no account or zone was given to check it as an account-owned token")

// VerifyScopes are the accounts and zones of a batch, to check an API token
// that is not a user token with.
type VerifyScopes struct {
	// Accounts are checked in turn at GET /accounts/{id}/tokens/verify.
	Accounts []string
	// Zones: the first one's Logpush jobs are listed (GET
	// /zones/{id}/logpush/jobs) when no account verified the token: an
	// account-owned token of an account the batch names only by its zones.
	Zones []string
}

// Verification says how VerifyCredential found the credential good.
type Verification struct {
	// AccountID is the account whose account-owned API token it is.
	AccountID string
	// ZoneID is the zone whose Logpush jobs the token could list, when it
	// verified neither as a user token nor at an account.
	ZoneID string
}

// VerifyPolicy bounds the retries of VerifyCredential's transient answers
// (429, 5xx, timeouts). The zero value takes the defaults.
type VerifyPolicy struct {
	// Attempts is how many times one check is tried. Default 4.
	Attempts int
	// Initial is the first delay; it doubles, with jitter. Default 1s.
	Initial time.Duration
	// MaxWait is the longest single wait: a Retry-After longer than this
	// ends the retries (Cloudflare's rate limit can ask for 5 minutes).
	// Default 30s.
	MaxWait time.Duration
}

// WithDefaults fills unset fields.
func (p VerifyPolicy) WithDefaults() VerifyPolicy {
	p.Attempts = cmp.Or(p.Attempts, 4)
	p.Initial = cmp.Or(p.Initial, time.Second)
	p.MaxWait = cmp.Or(p.MaxWait, 30*time.Second)
	return p
}

// VerifyCredential checks the credential the way Cloudflare tells its kind:
// an email and global key at GET /user; an API token at GET
// /user/tokens/verify (user-owned tokens) and, when that answers 401 (as it
// does for account-owned tokens, which Cloudflare recommends for
// automation), at GET /accounts/{account_id}/tokens/verify for each of the
// scopes' accounts until one verifies, then by listing the Logpush jobs of
// the first zone. Transient answers are retried with
// exponential backoff, never sooner than Retry-After; when the retries run
// out the last *APIError is returned with its Transient or RateLimited Kind:
// the credential was not checked. It does not check the Logs Edit
// permission.
func (c *Client) VerifyCredential(ctx context.Context, sc VerifyScopes, p VerifyPolicy) (Verification, error) {
	p = p.WithDefaults()
	if c.creds.APIToken == "" {
		return Verification{}, retryTransient(ctx, p, func() error { return c.verify(ctx, "/user", false) })
	}
	err := retryTransient(ctx, p, func() error { return c.verify(ctx, "/user/tokens/verify", true) })
	var ae *APIError
	if err == nil || !errors.As(err, &ae) || ae.HTTPStatus != http.StatusUnauthorized {
		return Verification{}, err
	}
	if len(sc.Accounts) == 0 && len(sc.Zones) == 0 {
		return Verification{}, fmt.Errorf("%w: %w", ErrNoAccountToCheck, err)
	}
	seen := map[string]bool{}
	for _, id := range sc.Accounts {
		if seen[id] || !IsIdentifier(id) {
			continue
		}
		seen[id] = true
		aerr := retryTransient(ctx, p, func() error { return c.verify(ctx, "/accounts/"+id+"/tokens/verify", true) })
		if aerr == nil {
			return Verification{AccountID: id}, nil
		}
		if errors.As(aerr, &ae) && (ae.Kind == Transient || ae.Kind == RateLimited) {
			return Verification{}, aerr // not checked: the API is unavailable
		}
		err = aerr
	}
	if len(sc.Zones) > 0 {
		zone := sc.Zones[0]
		zerr := retryTransient(ctx, p, func() error {
			_, err := c.ListJobs(ctx, Target{Scope: ScopeZone, ID: zone})
			return err
		})
		if zerr == nil {
			return Verification{ZoneID: zone}, nil
		}
		accounts := "the batch names no account to verify it at"
		if len(seen) > 0 {
			accounts = fmt.Sprintf("verifies at none of the batch's %s", words.Plural(len(seen), "account"))
		}
		return Verification{}, fmt.Errorf("the api token is not a user token (GET /user/tokens/verify: 401), %s, and cannot list the Logpush jobs of zone %s: %w",
			accounts, zone, zerr)
	}
	return Verification{}, fmt.Errorf("the api token verifies neither as a user token nor as an account-owned token of the batch's %s: %w", words.Plural(len(seen), "account"), err)
}

// verify makes one credential check at path; token says a token check,
// whose status must be active.
func (c *Client) verify(ctx context.Context, path string, token bool) error {
	cl := call{endpoint: EndpointVerify, method: http.MethodGet, path: path}
	status, raw, err := c.do(ctx, cl)
	if err != nil {
		return err
	}
	var r struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return garbage(cl.endpoint, status, "result is not an object", nil)
	}
	if token && r.Status != "active" {
		return &APIError{Endpoint: cl.endpoint, HTTPStatus: status, Kind: Auth,
			Message: fmt.Sprintf("api token status is %q, not active", truncate(r.Status, 32))}
	}
	return nil
}

// retryTransient runs fn until it succeeds, fails other than transiently,
// or p's attempts or patience run out.
func retryTransient(ctx context.Context, p VerifyPolicy, fn func() error) error {
	eb := backoff.NewExponentialBackOff()
	eb.InitialInterval = p.Initial
	eb.MaxInterval = p.MaxWait
	eb.MaxElapsedTime = 0
	eb.Reset()
	for attempt := 1; ; attempt++ {
		err := fn()
		var ae *APIError
		if err == nil || !errors.As(err, &ae) || (ae.Kind != Transient && ae.Kind != RateLimited) || attempt >= p.Attempts {
			return err
		}
		d := max(eb.NextBackOff(), ae.RetryAfter)
		if d > p.MaxWait {
			return err
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}
