package cloudflare

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Defaults of Config.
const (
	// DefaultBaseURL is Cloudflare's API v4 root.
	DefaultBaseURL = "https://api.cloudflare.com/client/v4"
	// DefaultRequestTimeout bounds one HTTP call, body included.
	DefaultRequestTimeout = 30 * time.Second
	// DefaultMaxBodyBytes caps how much of a response body is read.
	DefaultMaxBodyBytes int64 = 1 << 20
	// DefaultUserAgent is sent when Config.UserAgent is empty.
	DefaultUserAgent = "logpush-onboard"
)

// ObserveFunc receives one call per HTTP attempt: the endpoint name (one of
// the Endpoint constants), the status code (0 when no answer arrived) and
// the duration including the body read.
type ObserveFunc func(endpoint string, status int, d time.Duration)

// Config configures a Client. The zero value of every field but Credentials
// takes its default.
type Config struct {
	// BaseURL is the API root, without a trailing slash. Default
	// DefaultBaseURL; a simulator serves it under http://host/client/v4.
	BaseURL string
	// Credentials authenticate every call. Required.
	Credentials Credentials
	// HTTPClient sends the requests. Default: a client of its own with
	// Timeout = RequestTimeout. Redirects are never followed, whoever
	// supplied the client: a copy is made with CheckRedirect replaced,
	// because a redirect means the base URL is wrong, and following it
	// would resend X-Auth-Key (which net/http does not strip) elsewhere.
	HTTPClient *http.Client
	// RequestTimeout bounds each HTTP call, reading the body included.
	// Default DefaultRequestTimeout.
	RequestTimeout time.Duration
	// MaxBodyBytes caps the response body read; a longer body is an error.
	// Default DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// UserAgent is sent with every request. Default DefaultUserAgent.
	UserAgent string
	// Observe, when set, is called once per HTTP attempt, for metrics. It
	// must be safe for concurrent use and must not block. Default: none.
	Observe ObserveFunc
}

// WithDefaults returns c with every unset field given its default. The
// default HTTPClient is made by New.
func (c Config) WithDefaults() Config {
	c.BaseURL = cmp.Or(c.BaseURL, DefaultBaseURL)
	c.RequestTimeout = cmp.Or(c.RequestTimeout, DefaultRequestTimeout)
	c.MaxBodyBytes = cmp.Or(c.MaxBodyBytes, DefaultMaxBodyBytes)
	c.UserAgent = cmp.Or(c.UserAgent, DefaultUserAgent)
	return c
}

// validate checks a Config that WithDefaults has filled.
func (c Config) validate() error {
	if err := c.Credentials.Validate(); err != nil {
		return err
	}
	u, err := url.Parse(c.BaseURL)
	if err != nil {
		return fmt.Errorf("base url: %w", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("base url: scheme must be https or http, got %q", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("base url: missing host")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("base url: must not carry a query, fragment or user info")
	}
	if c.RequestTimeout < 0 {
		return fmt.Errorf("request timeout must be positive, got %s", c.RequestTimeout)
	}
	if c.MaxBodyBytes < 0 {
		return fmt.Errorf("max body bytes must be positive, got %d", c.MaxBodyBytes)
	}
	if hasControl(c.UserAgent, true) {
		return errors.New("user agent contains control characters")
	}
	return nil
}
