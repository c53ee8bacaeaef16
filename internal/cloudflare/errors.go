package cloudflare

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/redact"
)

// ErrInvalidRequest is wrapped by the *APIError returned, without any call
// made, when a Target, destination_conf or ownership challenge cannot be
// sent: Cloudflare would refuse it, and the refusal would spend budget.
var ErrInvalidRequest = errors.New("invalid request")

// Kind tells a caller what to do about an APIError.
type Kind int

const (
	// Transient failures (5xx, 408, timeouts, connection errors, garbled
	// answers) are retried with backoff.
	Transient Kind = iota + 1
	// Permanent failures (bad input: 400, 404, a challenge Cloudflare says is
	// not valid, 1004 "not allowed" on the job routes, an unexpected
	// redirect) are not retried.
	Permanent
	// Auth failures (401, 403 other than 1004 on the job routes, malformed
	// auth headers) mean the credentials are wrong or lack Logs Edit; retrying
	// does not help.
	Auth
	// RateLimited is a 429: retry no sooner than RetryAfter, and pause the
	// budget shared with the other workers.
	RateLimited
	// StaleChallenge is validate's or create job's 400 with code 1002 (or
	// validate's 2xx saying valid=false): the token is wrong or stale;
	// request a new challenge.
	StaleChallenge
)

// String returns the kind's snake_case name, for logs.
func (k Kind) String() string {
	switch k {
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	case Auth:
		return "auth"
	case RateLimited:
		return "rate_limited"
	case StaleChallenge:
		return "stale_challenge"
	default:
		return fmt.Sprintf("kind(%d)", int(k))
	}
}

// Cloudflare error codes the client acts on.
const (
	// CodeIncorrectChallenge is validate's and create job's "incorrect
	// ownership challenge".
	CodeIncorrectChallenge = 1002
	// CodeNotAllowed is Cloudflare's "not allowed", answered with http 403:
	// a missing permission ("reading job for product ... is not allowed"), a
	// plan entitlement, or the job limit ("exceeded max jobs allowed"). On
	// job creation it is Permanent, not Auth: whichever it is, retrying or
	// pausing the queue does not help, and the credential works.
	CodeNotAllowed = 1004
	// CodeAuthentication is "Authentication error": the token or key is
	// wrong, expired or without access to the zone or account.
	CodeAuthentication = 10000
	// CodeUnknownKey is "Unknown X-Auth-Key or X-Auth-Email".
	CodeUnknownKey = 9103
	// CodeBadIdentifier is "Could not route to ..., perhaps your object
	// identifier is invalid?".
	CodeBadIdentifier = 7003
	// codeInvalidHeaders is "Invalid request headers"; its error_chain names
	// the header (6102 X-Auth-Email, 6103 X-Auth-Key, 6111 Authorization).
	codeInvalidHeaders = 6003
)

// APIError is the only error type the Client returns.
type APIError struct {
	// Endpoint is one of the Endpoint constants.
	Endpoint string
	// HTTPStatus is the answer's status, 0 when none arrived.
	HTTPStatus int
	// Codes are Cloudflare's error codes, error_chain codes included.
	Codes []int
	// Message joins Cloudflare's error messages, or describes what was wrong
	// with the answer; always redacted.
	Message string
	// Action says what the operator can do about Cloudflare's codes (see
	// Advice); "" when the codes call for nothing particular.
	Action string
	// RetryAfter is how long Cloudflare asked us to wait (Retry-After or
	// Ratelimit headers), 0 when it did not say.
	RetryAfter time.Duration
	// Kind tells the caller what to do.
	Kind Kind
	// Err is the underlying cause, if any: a timeout, a connection error,
	// ErrInvalidRequest.
	Err error
}

// Error reads like "cloudflare ownership: http 400: codes [1002]: incorrect
// ownership challenge". It never holds a credential, a challenge token or a
// destination_conf secret.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("cloudflare ")
	b.WriteString(e.Endpoint)
	if e.HTTPStatus > 0 {
		fmt.Fprintf(&b, ": http %d", e.HTTPStatus)
	}
	if len(e.Codes) > 0 {
		fmt.Fprintf(&b, ": codes %v", e.Codes)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Action != "" {
		b.WriteString(" (")
		b.WriteString(e.Action)
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(redact.String(e.Err.Error()))
	}
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *APIError) Unwrap() error { return e.Err }

// HasCode reports whether Cloudflare answered with the given error code.
func (e *APIError) HasCode(code int) bool { return slices.Contains(e.Codes, code) }

// statusKind classifies a non-2xx answer (see design.md, "Outcomes of a
// call").
func statusKind(endpoint string, status int, codes []int) Kind {
	has := func(code int) bool { return slices.Contains(codes, code) }
	switch {
	case status == 429:
		return RateLimited
	case status == 408 || status >= 500:
		return Transient
	case status == 403 && jobRoute(endpoint) && has(CodeNotAllowed):
		// "Not allowed" on the job routes (the job limit, a plan
		// entitlement, a permission missing for this zone's product): the
		// credential works, and pausing the queue for every zone would not
		// help this one. (Elsewhere a 403 stays Auth.)
		return Permanent
	case status == 401 || status == 403:
		return Auth
	case status == 400 && takesToken(endpoint) && has(CodeIncorrectChallenge):
		return StaleChallenge
	case status == 400 && has(codeInvalidHeaders):
		// Malformed auth headers: a credentials problem, not a bad
		// destination; Auth lets the worker pause the queue instead of
		// failing the whole batch one destination at a time.
		return Auth
	case status >= 300 && status < 500:
		return Permanent
	default:
		return Transient // 1xx and other statuses no API should send
	}
}

// takesToken reports whether endpoint's request carries an ownership
// challenge: Cloudflare answers a wrong or stale one with 400 code 1002.
func takesToken(endpoint string) bool {
	return endpoint == EndpointValidate || endpoint == EndpointCreateJob || endpoint == EndpointUpdateJob
}

// jobRoute reports whether endpoint is one of the job routes, where 403
// code 1004 is "not allowed" for this zone or job, not a broken credential.
func jobRoute(endpoint string) bool {
	return endpoint == EndpointCreateJob || endpoint == EndpointJobs || endpoint == EndpointJob || endpoint == EndpointUpdateJob
}

// codeKind is the Kind that Cloudflare's error codes decide on an endpoint,
// whatever the status (a 2xx with success=false included), or 0 when the
// codes decide nothing.
func codeKind(endpoint string, codes []int) Kind {
	has := func(code int) bool { return slices.Contains(codes, code) }
	switch {
	case takesToken(endpoint) && has(CodeIncorrectChallenge):
		return StaleChallenge
	case jobRoute(endpoint) && has(CodeNotAllowed):
		return Permanent
	}
	return 0
}

// Advice returns what an operator can do about Cloudflare's answer with
// codes and message (Cloudflare's text) on endpoint, or "". 1004 is told
// apart by its message: the job limit, a plan entitlement or a missing
// permission.
func Advice(endpoint string, codes []int, message string) string {
	has := func(code int) bool { return slices.Contains(codes, code) }
	msg := strings.ToLower(message)
	switch {
	case has(CodeIncorrectChallenge) && takesToken(endpoint):
		return "the ownership token is wrong or stale: a fresh challenge is requested, at most twice"
	case has(CodeNotAllowed) && (strings.Contains(msg, "max jobs") || strings.Contains(msg, "job limit")):
		return "the zone or account has as many Logpush jobs as allowed, 4 per zone by default: delete unused jobs or ask Cloudflare to raise the limit, then retry --batch"
	case has(CodeNotAllowed) && (strings.Contains(msg, "plan") || strings.Contains(msg, "entitle") || strings.Contains(msg, "field")):
		return "the zone's plan does not include this dataset, field or option: change the job columns or the plan"
	case has(CodeNotAllowed) && strings.Contains(msg, "product"):
		return "the credential lacks a permission: give the API token Logs Edit on this zone or account; Zero Trust datasets also need Zero Trust: PII Read"
	case has(CodeNotAllowed):
		return "not allowed: check the API token's Logs Edit permission, the plan's entitlements and the job limit"
	case has(CodeUnknownKey):
		return "Cloudflare does not know this X-Auth-Email and X-Auth-Key: check CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY, or use an API token"
	case has(CodeAuthentication):
		return "the API token or key is wrong, expired, or has no access to this zone or account: check it with preflight"
	case has(CodeBadIdentifier):
		return "Cloudflare knows no such zone or account: check the row's zone_id or account_id"
	}
	return ""
}

// maxMessage caps Message: an error ends up in events and logs.
const maxMessage = 1024

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
