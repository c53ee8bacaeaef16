package cloudflare_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
)

const (
	zoneID    = "023e105f4ecef8ad9ca31a8372d0c353"
	accountID = "01a7362d577a6c3019a474fd6f485823"
	testToken = "Zx9-tokenValue_0123456789abcdefghijkLMNOP"
	testEmail = "ops@example.com"
	testKey   = "c2547eb745079dac9320b638f5e225cf483cc5cfdda41"
	testConf  = "s3://mybucket/logs/zone?region=us-west-2"
)

// observation is one Config.Observe call.
type observation struct {
	endpoint string
	status   int
	d        time.Duration
}

// testBundle is a Client talking to an httptest server whose handler each
// test sets.
type testBundle struct {
	srv    *httptest.Server
	client *cloudflare.Client

	mu      sync.Mutex
	handler http.HandlerFunc
	obs     []observation
}

func (b *testBundle) handle(h http.HandlerFunc) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.handler = h
}

func (b *testBundle) observations() []observation {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]observation(nil), b.obs...)
}

// setup starts a server and a client with cfg (BaseURL, Credentials and
// Observe are filled when empty).
func setup(t *testing.T, cfg cloudflare.Config) *testBundle {
	t.Helper()
	b := &testBundle{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		h := b.handler
		b.mu.Unlock()
		if h == nil {
			http.Error(w, "no handler", http.StatusTeapot)
			return
		}
		h(w, r)
	}))
	t.Cleanup(b.srv.Close)
	if cfg.BaseURL == "" {
		cfg.BaseURL = b.srv.URL + "/client/v4"
	}
	if cfg.Credentials == (cloudflare.Credentials{}) {
		cfg.Credentials = cloudflare.Credentials{APIToken: testToken}
	}
	if cfg.Observe == nil {
		cfg.Observe = func(endpoint string, status int, d time.Duration) {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.obs = append(b.obs, observation{endpoint, status, d})
		}
	}
	c, err := cloudflare.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.client = c
	return b
}

// writeEnvelope answers a Cloudflare envelope.
func writeEnvelope(w http.ResponseWriter, status int, result any, errs ...map[string]any) {
	if errs == nil {
		errs = []map[string]any{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"success": status < 300 && len(errs) == 0, "errors": errs, "messages": []any{}, "result": result,
	})
}

func cfErr(code int, msg string) map[string]any { return map[string]any{"code": code, "message": msg} }

func TestChallengeScopesAndAuthModes(t *testing.T) {
	t.Parallel()
	// A conf with characters JSON encoders like to escape: it must reach
	// Cloudflare byte-identical.
	const conf = "s3://mybucket/logs/{DATE}?region=us-west-2&sse=AES256<x>"
	scopes := []struct {
		target cloudflare.Target
		path   string
	}{
		{cloudflare.Target{Scope: cloudflare.ScopeZone, ID: zoneID}, "/client/v4/zones/" + zoneID + "/logpush/ownership"},
		{cloudflare.Target{Scope: cloudflare.ScopeAccount, ID: accountID}, "/client/v4/accounts/" + accountID + "/logpush/ownership"},
	}
	auths := []struct {
		name  string
		creds cloudflare.Credentials
		check func(h http.Header) string
	}{
		{"token", cloudflare.Credentials{APIToken: testToken}, func(h http.Header) string {
			if got := h.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+testToken {
				return "Authorization = " + strings.Join(got, ",")
			}
			if h.Get("X-Auth-Email") != "" || h.Get("X-Auth-Key") != "" {
				return "X-Auth headers sent with a token"
			}
			return ""
		}},
		{"email_key", cloudflare.Credentials{Email: testEmail, APIKey: testKey}, func(h http.Header) string {
			if h.Get("X-Auth-Email") != testEmail || h.Get("X-Auth-Key") != testKey {
				return "X-Auth-Email/X-Auth-Key wrong"
			}
			if h.Get("Authorization") != "" {
				return "Authorization sent with email and key"
			}
			return ""
		}},
	}
	for _, sc := range scopes {
		for _, au := range auths {
			t.Run(sc.target.Scope+"/"+au.name, func(t *testing.T) {
				t.Parallel()
				b := setup(t, cloudflare.Config{Credentials: au.creds, UserAgent: "test-agent"})
				b.handle(func(w http.ResponseWriter, r *http.Request) {
					var problems []string
					if r.Method != http.MethodPost || r.URL.Path != sc.path {
						problems = append(problems, r.Method+" "+r.URL.Path)
					}
					if p := au.check(r.Header); p != "" {
						problems = append(problems, p)
					}
					if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("User-Agent") != "test-agent" {
						problems = append(problems, "content-type or user-agent")
					}
					var body map[string]string
					if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body) != 1 || body["destination_conf"] != conf {
						problems = append(problems, "body")
					}
					if len(problems) > 0 {
						writeEnvelope(w, 400, nil, cfErr(1001, strings.Join(problems, "; ")))
						return
					}
					writeEnvelope(w, 200, map[string]any{"filename": "logs/ownership-challenge-1.txt", "message": "", "valid": true})
				})
				got, err := b.client.Challenge(context.Background(), sc.target, conf)
				if err != nil {
					t.Fatal(err)
				}
				want := cloudflare.ChallengeResult{Filename: "logs/ownership-challenge-1.txt", Valid: true}
				if got != want {
					t.Fatalf("Challenge = %+v, want %+v", got, want)
				}
				obs := b.observations()
				if len(obs) != 1 || obs[0].endpoint != cloudflare.EndpointChallenge || obs[0].status != 200 || obs[0].d <= 0 {
					t.Fatalf("observations = %+v", obs)
				}
			})
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	const challenge = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
	b := setup(t, cloudflare.Config{})
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		if r.URL.Path != "/client/v4/accounts/"+accountID+"/logpush/ownership/validate" ||
			body["destination_conf"] != testConf || body["ownership_challenge"] != challenge || len(body) != 2 {
			writeEnvelope(w, 400, nil, cfErr(1001, "bad request"))
			return
		}
		writeEnvelope(w, 200, map[string]any{"valid": true})
	})
	ok, err := b.client.Validate(context.Background(), cloudflare.Target{Scope: "account", ID: accountID}, testConf, challenge)
	if err != nil || !ok {
		t.Fatalf("Validate = %v, %v", ok, err)
	}
	if obs := b.observations(); len(obs) != 1 || obs[0].endpoint != cloudflare.EndpointValidate {
		t.Fatalf("observations = %+v", obs)
	}
}

// TestVerifyCredential: the credential is checked by its kind, an
// account-owned token at the batch's accounts (the user endpoint answers
// 401 for it) or by listing a zone's jobs, and transient answers are
// retried, never sooner than Retry-After, until the attempts run out.
func TestVerifyCredential(t *testing.T) {
	t.Parallel()
	const (
		user    = "/client/v4/user/tokens/verify"
		account = "/client/v4/accounts/" + accountID + "/tokens/verify"
		other   = "/client/v4/accounts/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb/tokens/verify"
		jobs    = "/client/v4/zones/" + zoneID + "/logpush/jobs"
	)
	active := map[string]any{"id": strings.Repeat("a", 32), "status": "active"}
	type answer struct {
		status     int
		retryAfter string
	}
	cases := []struct {
		name    string
		creds   cloudflare.Credentials
		scopes  cloudflare.VerifyScopes
		answers map[string][]answer // by path, in turn; the last repeats
		want    cloudflare.Verification
		wantErr string // "" for success; else a substring
		calls   []string
	}{
		{name: "user token", answers: map[string][]answer{user: {{200, ""}}}, calls: []string{user}},
		{name: "email and key", creds: cloudflare.Credentials{Email: testEmail, APIKey: testKey},
			answers: map[string][]answer{"/client/v4/user": {{200, ""}}}, calls: []string{"/client/v4/user"}},
		{name: "account-owned token", scopes: cloudflare.VerifyScopes{Accounts: []string{strings.Repeat("b", 32), accountID, accountID}},
			answers: map[string][]answer{user: {{401, ""}}, other: {{401, ""}}, account: {{200, ""}}},
			want:    cloudflare.Verification{AccountID: accountID}, calls: []string{user, other, account}},
		{name: "account-owned token, zones only", scopes: cloudflare.VerifyScopes{Zones: []string{zoneID}},
			answers: map[string][]answer{user: {{401, ""}}, jobs: {{200, ""}}},
			want:    cloudflare.Verification{ZoneID: zoneID}, calls: []string{user, jobs}},
		{name: "wrong token", scopes: cloudflare.VerifyScopes{Accounts: []string{accountID}, Zones: []string{zoneID}},
			answers: map[string][]answer{user: {{401, ""}}, account: {{401, ""}}, jobs: {{403, ""}}},
			wantErr: "verifies at none of the batch's 1 account, and cannot list the Logpush jobs of zone", calls: []string{user, account, jobs}},
		{name: "no scope to check with", answers: map[string][]answer{user: {{401, ""}}}, wantErr: "no account or zone", calls: []string{user}},
		{name: "403 is a token without permission, not an account token", scopes: cloudflare.VerifyScopes{Accounts: []string{accountID}},
			answers: map[string][]answer{user: {{403, ""}}}, wantErr: "http 403", calls: []string{user}},
		{name: "429 then 200: retried after Retry-After", answers: map[string][]answer{user: {{429, "1"}, {200, ""}}}, calls: []string{user, user}},
		{name: "5xx until the attempts run out", answers: map[string][]answer{user: {{503, ""}}}, wantErr: "http 503", calls: []string{user, user, user}},
		{name: "Retry-After beyond the patience: no retry", answers: map[string][]answer{user: {{429, "300"}}}, wantErr: "http 429", calls: []string{user}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, cloudflare.Config{Credentials: tc.creds})
			var mu sync.Mutex
			var calls []string
			b.handle(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				calls = append(calls, r.URL.Path)
				as := tc.answers[r.URL.Path]
				n := 0
				for _, c := range calls {
					if c == r.URL.Path {
						n++
					}
				}
				mu.Unlock()
				if r.Method != http.MethodGet || len(as) == 0 {
					writeEnvelope(w, 404, nil, cfErr(7000, "No route for that URI"))
					return
				}
				a := as[min(n, len(as))-1]
				if a.retryAfter != "" {
					w.Header().Set("Retry-After", a.retryAfter)
				}
				switch {
				case a.status == 200 && strings.HasSuffix(r.URL.Path, "/jobs"):
					writeEnvelope(w, 200, []any{})
				case a.status == 200:
					writeEnvelope(w, 200, active)
				case a.status == 401:
					writeEnvelope(w, 401, nil, cfErr(1000, "Invalid API Token"))
				case a.status == 403:
					writeEnvelope(w, 403, nil, cfErr(10000, "Authentication error"))
				default:
					writeEnvelope(w, a.status, nil, cfErr(10013, "unavailable"))
				}
			})
			start := time.Now()
			v, err := b.client.VerifyCredential(context.Background(), tc.scopes,
				cloudflare.VerifyPolicy{Attempts: 3, Initial: time.Millisecond, MaxWait: 5 * time.Second})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if v != tc.want {
				t.Errorf("verification = %+v, want %+v", v, tc.want)
			}
			if fmt.Sprint(calls) != fmt.Sprint(tc.calls) {
				t.Errorf("calls = %v, want %v", calls, tc.calls)
			}
			if strings.Contains(tc.name, "Retry-After") && err == nil && time.Since(start) < time.Second {
				t.Errorf("retried after %s, sooner than Retry-After", time.Since(start))
			}
		})
	}
}

// TestVerifyTokenStatus: a token that is not active does not work.
func TestVerifyTokenStatus(t *testing.T) {
	t.Parallel()
	b := setup(t, cloudflare.Config{})
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		writeEnvelope(w, 200, map[string]any{"id": strings.Repeat("a", 32), "status": "disabled"})
	})
	_, err := b.client.VerifyCredential(context.Background(), cloudflare.VerifyScopes{}, cloudflare.VerifyPolicy{})
	if ae := asAPIError(t, err); ae.Kind != cloudflare.Auth || !strings.Contains(ae.Message, `"disabled", not active`) {
		t.Fatalf("disabled token: %v", err)
	}
	if obs := b.observations(); len(obs) != 1 || obs[0].endpoint != cloudflare.EndpointVerify || obs[0].status != 200 {
		t.Fatalf("observations = %+v", obs)
	}
}

func asAPIError(t *testing.T, err error) *cloudflare.APIError {
	t.Helper()
	var ae *cloudflare.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an *APIError", err, err)
	}
	return ae
}

func TestInvalidRequestsAreNotSent(t *testing.T) {
	t.Parallel()
	b := setup(t, cloudflare.Config{})
	b.handle(func(w http.ResponseWriter, r *http.Request) { t.Errorf("request sent: %s", r.URL.Path) })
	zone := cloudflare.Target{Scope: "zone", ID: zoneID}
	ctx := context.Background()
	cases := []struct {
		name string
		call func() error
	}{
		{"bad scope", func() error {
			_, err := b.client.Challenge(ctx, cloudflare.Target{Scope: "zones", ID: zoneID}, testConf)
			return err
		}},
		{"short id", func() error {
			_, err := b.client.Challenge(ctx, cloudflare.Target{Scope: "zone", ID: "abc"}, testConf)
			return err
		}},
		{"id with a slash", func() error {
			_, err := b.client.Challenge(ctx, cloudflare.Target{Scope: "zone", ID: "../../user/tokens/verify0000000000"}, testConf)
			return err
		}},
		{"empty conf", func() error { _, err := b.client.Challenge(ctx, zone, ""); return err }},
		{"conf too long", func() error { _, err := b.client.Challenge(ctx, zone, "s3://b/"+strings.Repeat("x", 4096)); return err }},
		{"empty challenge", func() error { _, err := b.client.Validate(ctx, zone, testConf, ""); return err }},
		{"challenge with a space", func() error { _, err := b.client.Validate(ctx, zone, testConf, "abc def"); return err }},
		{"challenge too long", func() error { _, err := b.client.Validate(ctx, zone, testConf, strings.Repeat("a", 4097)); return err }},
	}
	for _, tc := range cases {
		err := tc.call()
		ae := asAPIError(t, err)
		if ae.Kind != cloudflare.Permanent || !errors.Is(err, cloudflare.ErrInvalidRequest) || ae.HTTPStatus != 0 {
			t.Errorf("%s: %v (kind %v)", tc.name, err, ae.Kind)
		}
	}
	if obs := b.observations(); len(obs) != 0 {
		t.Fatalf("observations = %+v, want none", obs)
	}
}

func TestCallerCancellation(t *testing.T) {
	t.Parallel()
	b := setup(t, cloudflare.Config{})
	started := make(chan struct{})
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		drain(r) // net/http notices a closed connection only once the body is read
		close(started)
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	_, err := b.client.Challenge(ctx, cloudflare.Target{Scope: "zone", ID: zoneID}, testConf)
	ae := asAPIError(t, err)
	if ae.Kind != cloudflare.Transient || !errors.Is(err, context.Canceled) || !strings.Contains(ae.Message, "cancelled by caller") {
		t.Fatalf("err = %v (kind %v)", err, ae.Kind)
	}
	if obs := b.observations(); len(obs) != 1 || obs[0].status != 0 {
		t.Fatalf("observations = %+v", obs)
	}
}

func TestCustomHTTPClientDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	followed := false
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		followed = true
		writeEnvelope(w, 200, map[string]any{"filename": "x.txt", "message": "", "valid": true})
	}))
	t.Cleanup(target.Close)
	hc := &http.Client{Timeout: 5 * time.Second} // follows redirects by default
	b := setup(t, cloudflare.Config{HTTPClient: hc, Credentials: cloudflare.Credentials{Email: testEmail, APIKey: testKey}})
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/steal", http.StatusTemporaryRedirect)
	})
	_, err := b.client.Challenge(context.Background(), cloudflare.Target{Scope: "zone", ID: zoneID}, testConf)
	ae := asAPIError(t, err)
	if ae.Kind != cloudflare.Permanent || followed || !strings.Contains(ae.Message, "unexpected redirect to 127.0.0.1") {
		t.Fatalf("err = %v, followed = %v", err, followed)
	}
	if hc.CheckRedirect != nil {
		t.Fatal("the caller's http.Client was modified")
	}
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	token := cloudflare.Credentials{APIToken: testToken}
	cases := []struct {
		name string
		cfg  cloudflare.Config
	}{
		{"no credentials", cloudflare.Config{}},
		{"ftp base url", cloudflare.Config{Credentials: token, BaseURL: "ftp://api.cloudflare.com"}},
		{"no host", cloudflare.Config{Credentials: token, BaseURL: "https:///client/v4"}},
		{"query", cloudflare.Config{Credentials: token, BaseURL: "https://api.cloudflare.com/client/v4?x=1"}},
		{"negative timeout", cloudflare.Config{Credentials: token, RequestTimeout: -time.Second}},
		{"negative body cap", cloudflare.Config{Credentials: token, MaxBodyBytes: -1}},
		{"user agent with newline", cloudflare.Config{Credentials: token, UserAgent: "a\nb"}},
	}
	for _, tc := range cases {
		if _, err := cloudflare.New(tc.cfg); err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
	if _, err := cloudflare.New(cloudflare.Config{Credentials: token}); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	d := cloudflare.Config{}.WithDefaults()
	if d.BaseURL != cloudflare.DefaultBaseURL || d.RequestTimeout != 30*time.Second || d.MaxBodyBytes != 1<<20 || d.UserAgent == "" {
		t.Fatalf("WithDefaults = %+v", d)
	}
}

// drain is a handler helper for tests that do not care about the body.
func drain(r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }
