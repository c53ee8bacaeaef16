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
	// not valid, the job limit reached, an unexpected redirect) are not
	// retried.
	Permanent
	// Auth failures (401, 403 other than the job limit, malformed auth
	// headers) mean the credentials are wrong or lack Logs Edit; retrying
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
	// CodeJobLimit is create job's "exceeded the job limit", answered with
	// http 403: the zone or account has as many jobs as its plan allows. It
	// is Permanent, not Auth: the credentials are fine, and pausing the
	// queue would not free a job slot.
	CodeJobLimit = 1004
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
	case status == 403 && endpoint == EndpointCreateJob && has(CodeJobLimit):
		// Cloudflare answers the job limit with 403; it says nothing about
		// the credentials. (Elsewhere 1004 has no documented meaning, and a
		// 403 stays Auth.)
		return Permanent
	case status == 401 || status == 403:
		return Auth
	case status == 400 && (endpoint == EndpointValidate || endpoint == EndpointCreateJob) && has(CodeIncorrectChallenge):
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

// codeKind is the Kind that Cloudflare's error codes decide on an endpoint,
// whatever the status (a 2xx with success=false included), or 0 when the
// codes decide nothing.
func codeKind(endpoint string, codes []int) Kind {
	has := func(code int) bool { return slices.Contains(codes, code) }
	switch {
	case (endpoint == EndpointValidate || endpoint == EndpointCreateJob) && has(CodeIncorrectChallenge):
		return StaleChallenge
	case endpoint == EndpointCreateJob && has(CodeJobLimit):
		return Permanent
	}
	return 0
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
