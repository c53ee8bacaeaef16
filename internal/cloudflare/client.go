package cloudflare

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/redact"
)

// Endpoint names, used in APIError.Endpoint and as the bounded metrics label
// passed to Config.Observe.
const (
	// EndpointChallenge is POST .../logpush/ownership.
	EndpointChallenge = "ownership"
	// EndpointValidate is POST .../logpush/ownership/validate.
	EndpointValidate = "ownership_validate"
	// EndpointVerify is the credential check: GET /user/tokens/verify or
	// GET /accounts/{account_id}/tokens/verify for a token, GET /user for an
	// email and key.
	EndpointVerify = "verify"
	// EndpointJobs is GET .../logpush/jobs, the list of jobs.
	EndpointJobs = "jobs"
	// EndpointCreateJob is POST .../logpush/jobs.
	EndpointCreateJob = "create_job"
	// EndpointJob is GET .../logpush/jobs/{job_id}, one job with its
	// health (last_complete, last_error, error_message).
	EndpointJob = "job"
)

// Scopes of a Target.
const (
	// ScopeZone addresses /zones/{zone_id}.
	ScopeZone = "zone"
	// ScopeAccount addresses /accounts/{account_id}.
	ScopeAccount = "account"
)

// Limits of Cloudflare's schema for the request fields.
const (
	// MaxDestinationConf is destination_conf's maxLength.
	MaxDestinationConf = 4096
	// MaxOwnershipChallenge is ownership_challenge's maxLength.
	MaxOwnershipChallenge = 4096
)

// Target is the zone or account a Logpush call is made for.
type Target struct {
	// Scope is ScopeZone or ScopeAccount.
	Scope string
	// ID is the zone or account id: 32 hex characters.
	ID string
}

// String returns "zone/<id>" or "account/<id>".
func (t Target) String() string { return t.Scope + "/" + t.ID }

// path returns the URL path of the target: /zones/{id} or /accounts/{id}.
func (t Target) path() (string, error) {
	var prefix string
	switch t.Scope {
	case ScopeZone:
		prefix = "/zones/"
	case ScopeAccount:
		prefix = "/accounts/"
	default:
		return "", fmt.Errorf("scope must be %q or %q, got %q", ScopeZone, ScopeAccount, truncate(t.Scope, 32))
	}
	if !IsIdentifier(t.ID) {
		return "", fmt.Errorf("%s id must be 32 hex characters", t.Scope)
	}
	return prefix + t.ID, nil
}

// ChallengeResult is Cloudflare's answer to an ownership challenge request.
type ChallengeResult struct {
	// Filename is where Cloudflare writes the token, relative to the
	// destination's bucket (sometimes prefixed with the bucket name); ""
	// when Cloudflare did not say (the schema makes it optional): then
	// ChallengeFile names it.
	Filename string
	// Message is Cloudflare's message, usually empty; redacted.
	Message string
	// Valid is true: a result with valid=false is returned as an error.
	Valid bool
}

// Client calls Cloudflare's Logpush ownership API. It is safe for concurrent
// use.
type Client struct {
	base    string
	creds   Credentials
	hc      *http.Client
	timeout time.Duration
	maxBody int64
	ua      string
	observe ObserveFunc
}

// New returns a Client for cfg, with defaults applied.
func New(cfg Config) (*Client, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("cloudflare client: %w", err)
	}
	var hc http.Client
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	} else {
		hc = http.Client{Timeout: cfg.RequestTimeout, Transport: NewTransport()}
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{
		base:    strings.TrimRight(cfg.BaseURL, "/"),
		creds:   cfg.Credentials,
		hc:      &hc,
		timeout: cfg.RequestTimeout,
		maxBody: cfg.MaxBodyBytes,
		ua:      cfg.UserAgent,
		observe: cfg.Observe,
	}, nil
}

// NewTransport clones the standard transport (proxy from the environment,
// HTTP/2), keeping more idle connections per host: every call goes to the
// same host, from many workers at once. Clients of several credentials may
// share one.
func NewTransport() http.RoundTripper {
	t, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 32}
	}
	t = t.Clone()
	t.MaxIdleConnsPerHost = 32
	return t
}

// Challenge asks Cloudflare to write an ownership challenge token into the
// destination and returns where: POST {base}/{zones|accounts}/{id}/logpush/ownership.
// A result with valid=false (Cloudflare could not use the destination) is a
// Permanent error carrying Cloudflare's message.
func (c *Client) Challenge(ctx context.Context, t Target, destinationConf string) (ChallengeResult, error) {
	path, err := t.path()
	if err == nil {
		err = checkConf(destinationConf)
	}
	if err != nil {
		return ChallengeResult{}, invalidRequest(EndpointChallenge, err)
	}
	body := struct {
		DestinationConf string `json:"destination_conf"`
	}{destinationConf}
	cl := call{endpoint: EndpointChallenge, method: http.MethodPost, path: path + "/logpush/ownership", body: body, conf: destinationConf}
	status, raw, err := c.do(ctx, cl)
	if err != nil {
		return ChallengeResult{}, err
	}
	var r struct {
		Filename *string `json:"filename"`
		Message  string  `json:"message"`
		Valid    *bool   `json:"valid"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return ChallengeResult{}, garbage(cl.endpoint, status, "result is not a challenge result", nil)
	}
	// filename, valid and message are optional in the schema: a success
	// without valid is valid, and one without filename leaves it to the
	// caller (Cloudflare's fixed name, ChallengeFile).
	res := ChallengeResult{Message: c.clean(r.Message, cl), Valid: r.Valid == nil || *r.Valid}
	if !res.Valid {
		return res, &APIError{Endpoint: cl.endpoint, HTTPStatus: status, Kind: Permanent,
			Message: cmp.Or(res.Message, "destination rejected: challenge not valid")}
	}
	if r.Filename == nil || *r.Filename == "" {
		return res, nil
	}
	if err := checkFilename(*r.Filename); err != nil {
		return ChallengeResult{}, &APIError{Endpoint: cl.endpoint, HTTPStatus: status, Kind: Permanent, Message: err.Error()}
	}
	res.Filename = *r.Filename
	return res, nil
}

// Validate checks an ownership challenge token for the destination:
// POST .../logpush/ownership/validate. It returns true, or an error: a wrong
// or stale token is a StaleChallenge error, whether Cloudflare answers 400
// with code 1002 or 200 with valid=false.
func (c *Client) Validate(ctx context.Context, t Target, destinationConf, ownershipChallenge string) (bool, error) {
	path, err := t.path()
	if err == nil {
		err = checkConf(destinationConf)
	}
	if err == nil {
		err = checkChallenge(ownershipChallenge)
	}
	if err != nil {
		return false, invalidRequest(EndpointValidate, err)
	}
	body := struct {
		DestinationConf    string `json:"destination_conf"`
		OwnershipChallenge string `json:"ownership_challenge"`
	}{destinationConf, ownershipChallenge}
	cl := call{endpoint: EndpointValidate, method: http.MethodPost, path: path + "/logpush/ownership/validate",
		body: body, conf: destinationConf, challenge: ownershipChallenge}
	status, raw, err := c.do(ctx, cl)
	if err != nil {
		return false, err
	}
	var r struct {
		Valid *bool `json:"valid"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return false, garbage(cl.endpoint, status, "result is not a validation result", nil)
	}
	// valid is optional in the schema: a success without it is valid.
	if r.Valid != nil && !*r.Valid {
		return false, &APIError{Endpoint: cl.endpoint, HTTPStatus: status, Kind: StaleChallenge,
			Message: "ownership challenge not valid"}
	}
	return true, nil
}

// call is one API request.
type call struct {
	endpoint string
	method   string
	path     string // below the base URL
	body     any    // nil for GET
	// list is set when the result is an array rather than an object.
	list bool
	// conf and challenge are masked in anything Cloudflare echoes back.
	conf      string
	challenge string
}

// envelope is Cloudflare's response wrapper.
type envelope struct {
	Success  *bool           `json:"success"`
	Errors   []apiMessage    `json:"errors"`
	Messages []apiMessage    `json:"messages"`
	Result   json.RawMessage `json:"result"`
}

// apiMessage is an entry of errors or messages; error_chain nests the
// details of a code such as 6003.
type apiMessage struct {
	Code       int          `json:"code"`
	Message    string       `json:"message"`
	ErrorChain []apiMessage `json:"error_chain"`
}

// flatten collects the codes and messages of ms, chains included.
func flatten(ms []apiMessage) (codes []int, msgs []string) {
	for _, m := range ms {
		if m.Code != 0 {
			codes = append(codes, m.Code)
		}
		msg := m.Message
		cc, cm := flatten(m.ErrorChain)
		codes = append(codes, cc...)
		if len(cm) > 0 {
			msg = strings.TrimSpace(msg + ": " + strings.Join(cm, ": "))
		}
		if msg != "" {
			msgs = append(msgs, msg)
		}
	}
	return codes, msgs
}

// do sends cl and returns the status and the result of a successful
// envelope, or an *APIError.
func (c *Client) do(ctx context.Context, cl call) (int, json.RawMessage, error) {
	var body io.Reader
	if cl.body != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(cl.body); err != nil {
			return 0, nil, invalidRequest(cl.endpoint, err)
		}
		body = &buf
	}
	reqCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, cl.method, c.base+cl.path, body)
	if err != nil {
		return 0, nil, invalidRequest(cl.endpoint, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	applyCredentials(c.creds, req.Header)

	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.record(cl.endpoint, 0, time.Since(start))
		return 0, nil, c.transportError(ctx, cl.endpoint, 0, err)
	}
	data, tooLarge, readErr := readBody(resp.Body, c.maxBody)
	_ = resp.Body.Close()
	c.record(cl.endpoint, resp.StatusCode, time.Since(start))
	return c.interpret(ctx, cl, resp, data, tooLarge, readErr)
}

// record calls the observer, if any.
func (c *Client) record(endpoint string, status int, d time.Duration) {
	if c.observe != nil {
		c.observe(endpoint, status, d)
	}
}

// readBody reads at most limit bytes; tooLarge reports that there was more.
func readBody(r io.Reader, limit int64) (data []byte, tooLarge bool, err error) {
	data, err = io.ReadAll(io.LimitReader(r, limit+1))
	if int64(len(data)) > limit {
		return data[:limit], true, nil
	}
	return data, false, err
}

// interpret classifies an answer (see design.md, "Outcomes of a call").
// ctx is the caller's context.
func (c *Client) interpret(ctx context.Context, cl call, resp *http.Response, data []byte, tooLarge bool, readErr error) (int, json.RawMessage, error) {
	status := resp.StatusCode
	if status >= 300 && status < 400 {
		msg := fmt.Sprintf("unexpected redirect (http %d): check the base url", status)
		if loc, err := resp.Location(); err == nil && loc.Host != "" {
			msg = "unexpected redirect to " + loc.Host + ": check the base url"
		}
		return status, nil, &APIError{Endpoint: cl.endpoint, HTTPStatus: status, Kind: Permanent, Message: msg}
	}
	var env envelope
	var problem string // what is wrong with the body, if anything
	var cause error
	switch {
	case readErr != nil:
		t := c.transportError(ctx, cl.endpoint, status, readErr)
		problem, cause = "reading response body: "+t.Message, t.Err
	case tooLarge:
		problem = fmt.Sprintf("response body exceeds %d bytes", c.maxBody)
	default:
		problem = decodeEnvelope(data, resp.Header.Get("Content-Type"), &env)
	}
	var codes []int
	var msg string
	if problem == "" {
		var msgs []string
		codes, msgs = flatten(env.Errors)
		msg = c.clean(strings.Join(msgs, "; "), cl)
	}
	retryAfter := RetryAfter(resp.Header, time.Now())

	if status < 200 || status > 299 {
		e := &APIError{Endpoint: cl.endpoint, HTTPStatus: status, Codes: codes, Message: msg, Action: Advice(cl.endpoint, codes, msg),
			RetryAfter: retryAfter, Kind: statusKind(cl.endpoint, status, codes)}
		if problem != "" {
			e.Message, e.Err = problem, cause
		}
		return status, nil, e
	}

	// A 2xx that is not a well-formed success is almost never Cloudflare's
	// API itself: it is a proxy, captive portal or load balancer answering in
	// its place, or a body cut short. Such answers are Transient: the next
	// attempt usually reaches the API.
	if problem != "" {
		e := garbage(cl.endpoint, status, problem, nil)
		e.Err = cause
		return status, nil, e
	}
	if env.Success == nil || !*env.Success {
		e := garbage(cl.endpoint, status, cmp.Or(msg, "success is not true"), codes)
		e.RetryAfter, e.Action = retryAfter, Advice(cl.endpoint, codes, msg)
		if k := codeKind(cl.endpoint, codes); k != 0 {
			e.Kind = k // the API's own verdict, whatever the status
		}
		return status, nil, e
	}
	shape, open := "object", byte('{')
	if cl.list {
		shape, open = "list", '['
	}
	if r := bytes.TrimSpace(env.Result); len(r) == 0 || bytes.Equal(r, []byte("null")) || r[0] != open {
		return status, nil, garbage(cl.endpoint, status, "success without a result "+shape, nil)
	}
	return status, env.Result, nil
}

// decodeEnvelope parses data into env and returns "" or what is wrong.
func decodeEnvelope(data []byte, contentType string, env *envelope) string {
	mediaType, _, _ := mime.ParseMediaType(contentType)
	if len(bytes.TrimSpace(data)) == 0 {
		return "empty response body"
	}
	err := json.Unmarshal(data, env)
	if err == nil {
		return ""
	}
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn) && syn.Offset >= int64(len(data)) && bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")):
		return "truncated JSON response"
	case mediaType == "text/html" || looksHTML(data):
		return "HTML response instead of JSON"
	case errors.As(err, &syn):
		return fmt.Sprintf("non-JSON response (content-type %q)", truncate(mediaType, 64))
	default:
		return "response is not a Cloudflare envelope"
	}
}

// looksHTML reports whether a body starts like an HTML page.
func looksHTML(data []byte) bool {
	head := bytes.ToLower(bytes.TrimSpace(data[:min(len(data), 64)]))
	return bytes.HasPrefix(head, []byte("<!doctype html")) || bytes.HasPrefix(head, []byte("<html"))
}

// transportError describes a call that got no (complete) answer. parent is
// the caller's context, to tell its cancellation from our own timeout.
func (c *Client) transportError(parent context.Context, endpoint string, status int, err error) *APIError {
	e := &APIError{Endpoint: endpoint, HTTPStatus: status, Kind: Transient, Err: err}
	var ne net.Error
	switch {
	case parent.Err() != nil:
		e.Message = "cancelled by caller"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		e.Message = fmt.Sprintf("timed out after %s", c.timeout)
	case errors.Is(err, io.ErrUnexpectedEOF):
		e.Message = "truncated response body"
	default:
		e.Message = "connection error"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// The URL is ours and known; keep the cause only.
		e.Err = ue.Err
	}
	return e
}

// garbage is a Transient error about a malformed 2xx answer.
func garbage(endpoint string, status int, msg string, codes []int) *APIError {
	return &APIError{Endpoint: endpoint, HTTPStatus: status, Codes: codes, Kind: Transient, Message: msg}
}

// invalidRequest is the Permanent error of a request that was not sent.
func invalidRequest(endpoint string, err error) *APIError {
	return &APIError{Endpoint: endpoint, Kind: Permanent, Err: fmt.Errorf("%w: %w", ErrInvalidRequest, err)}
}

// clean redacts text from Cloudflare: the conf is shown only redacted, the
// conf's secrets, the credentials and the challenge token not at all, even
// quoted alone (as in "InvalidAccessKeyId: AKIA...").
func (c *Client) clean(s string, cl call) string {
	if s == "" {
		return s
	}
	if cl.conf != "" {
		s = strings.ReplaceAll(s, cl.conf, redact.String(cl.conf))
	}
	s = redact.Values(s, redact.Secrets(cl.conf)...)
	s = redact.Values(s, cl.challenge, c.creds.APIToken, c.creds.APIKey)
	return truncate(redact.String(s), maxMessage)
}

// checkConf checks destination_conf against the schema.
func checkConf(conf string) error {
	switch {
	case conf == "":
		return errors.New("destination_conf is empty")
	case len(conf) > MaxDestinationConf:
		return fmt.Errorf("destination_conf is %d bytes, over the %d limit", len(conf), MaxDestinationConf)
	}
	return nil
}

// checkChallenge checks ownership_challenge against the schema. The value is
// never quoted: it is a secret.
func checkChallenge(tok string) error {
	switch {
	case tok == "":
		return errors.New("ownership challenge is empty")
	case len(tok) > MaxOwnershipChallenge:
		return fmt.Errorf("ownership challenge is %d bytes, over the %d limit", len(tok), MaxOwnershipChallenge)
	case !IsChallengeText(tok):
		return errors.New("ownership challenge has characters outside [a-zA-Z0-9/+.-_]")
	}
	return nil
}

// checkFilename refuses a challenge filename that a destination reader
// could not safely use: control characters or ".." segments (a path escape
// on file destinations).
func checkFilename(name string) error {
	if len(name) > 4096 || hasControl(name, true) {
		return errors.New("unusable challenge filename in result")
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == ".." {
			return errors.New("challenge filename has a \"..\" segment")
		}
	}
	return nil
}

// IsIdentifier reports whether id is a zone or account id: 32 hex
// characters.
func IsIdentifier(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// IsChallengeText reports whether s matches ownership_challenge's schema
// pattern ^[a-zA-Z0-9/+.\-_]*$.
func IsChallengeText(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || strings.IndexByte("/+.-_", c) >= 0) {
			return false
		}
	}
	return true
}
