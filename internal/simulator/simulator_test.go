package simulator_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

const (
	zoneID    = "023e105f4ecef8ad9ca31a8372d0c353"
	accountID = "01a7362d577a6c3019a474fd6f485823"
	token     = "sim-test-token-0123456789"
	conf      = "s3://mybucket/logs/x?region=us-west-2"
)

// write is one WriteFunc call.
type write struct {
	conf, filename, body string
	at                   time.Time
}

// fakeWriter records writes.
type fakeWriter struct {
	mu     sync.Mutex
	writes []write
	fail   error
}

func (f *fakeWriter) write(_ context.Context, conf, filename string, body []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes = append(f.writes, write{conf, filename, string(body), time.Now()})
	return f.fail
}

func (f *fakeWriter) all() []write {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]write(nil), f.writes...)
}

// clock is a settable Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testBundle is a simulator with a fake writer and a settable clock.
type testBundle struct {
	sim   *simulator.Simulator
	w     *fakeWriter
	clock *clock
}

// setup builds a simulator from cfg, filling Write, Now and the accepted
// token when unset.
func setup(t *testing.T, cfg simulator.Config) *testBundle {
	t.Helper()
	if cfg.APIToken == "" && cfg.Email == "" {
		cfg.APIToken = token
	}
	return build(t, cfg)
}

// setupOpen builds a simulator that accepts any credential.
func setupOpen(t *testing.T, cfg simulator.Config) *testBundle {
	t.Helper()
	return build(t, cfg)
}

func build(t *testing.T, cfg simulator.Config) *testBundle {
	t.Helper()
	b := &testBundle{w: &fakeWriter{}, clock: &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}}
	if cfg.Write == nil {
		cfg.Write = b.w.write
	}
	if cfg.Now == nil {
		cfg.Now = b.clock.Now
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	s, err := simulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	b.sim = s
	return b
}

// answer is a decoded response.
type answer struct {
	status int
	header http.Header
	env    struct {
		Success  bool              `json:"success"`
		Errors   []json.RawMessage `json:"errors"`
		Messages []json.RawMessage `json:"messages"`
		Result   json.RawMessage   `json:"result"`
	}
	body string
}

// codes returns the error codes, error_chain included.
func (a answer) codes() []int {
	var out []int
	var walk func(raw []json.RawMessage)
	walk = func(raw []json.RawMessage) {
		for _, r := range raw {
			var m struct {
				Code       int               `json:"code"`
				ErrorChain []json.RawMessage `json:"error_chain"`
			}
			_ = json.Unmarshal(r, &m)
			out = append(out, m.Code)
			walk(m.ErrorChain)
		}
	}
	walk(a.env.Errors)
	return out
}

// request builds a request; auth is "token", "key" (email and key) or a raw
// Authorization value.
func request(method, path, auth, body string) *http.Request {
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, path, nil)
	} else {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	switch auth {
	case "":
	case "token":
		r.Header.Set("Authorization", "Bearer "+token)
	default:
		r.Header.Set("Authorization", auth)
	}
	return r
}

func (b *testBundle) do(t *testing.T, r *http.Request) answer {
	t.Helper()
	rec := httptest.NewRecorder()
	b.sim.ServeHTTP(rec, r)
	a := answer{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
	if err := json.Unmarshal(rec.Body.Bytes(), &a.env); err != nil {
		t.Fatalf("%s %s: body is not JSON: %q", r.Method, r.URL.Path, a.body)
	}
	return a
}

func body(v map[string]string) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func challengePath(scope, id string) string {
	return "/client/v4/" + scope + "/" + id + "/logpush/ownership"
}

func TestRoutesAndErrorShapes(t *testing.T) {
	t.Parallel()
	chal := body(map[string]string{"destination_conf": conf})
	cases := []struct {
		name    string
		req     func() *http.Request
		status  int
		codes   []int
		message string // substring of the body
	}{
		{"zone challenge", func() *http.Request { return request("POST", challengePath("zones", zoneID), "token", chal) }, 200, nil, `"filename":"logs/x/ownership-challenge.txt"`},
		{"account challenge without /client/v4", func() *http.Request {
			return request("POST", "/accounts/"+accountID+"/logpush/ownership", "token", chal)
		}, 200, nil, `"valid":true`},
		{"zone validate unknown token", func() *http.Request {
			return request("POST", challengePath("zones", zoneID)+"/validate", "token",
				body(map[string]string{"destination_conf": conf, "ownership_challenge": "abc"}))
		}, 400, []int{1002}, "incorrect ownership challenge"},
		{"verify", func() *http.Request { return request("GET", "/client/v4/user/tokens/verify", "token", "") }, 200, nil, `"status":"active"`},
		{"user", func() *http.Request { return request("GET", "/client/v4/user", "token", "") }, 200, nil, `"id":"`},
		{"invalid zone id", func() *http.Request { return request("POST", challengePath("zones", "not-hex"), "token", chal) }, 400, []int{7003},
			"Could not route to /client/v4/zones/not-hex/logpush/ownership, perhaps your object identifier is invalid?"},
		{"short account id", func() *http.Request { return request("POST", challengePath("accounts", zoneID[:31]), "token", chal) }, 400, []int{7003}, "Could not route"},
		{"zone destination exists", func() *http.Request {
			return request("POST", "/client/v4/zones/"+zoneID+"/logpush/validate/destination/exists", "token", chal)
		}, 200, nil, `"result":{"exists":false}`},
		{"account jobs", func() *http.Request {
			return request("GET", "/client/v4/accounts/"+accountID+"/logpush/jobs", "token", "")
		}, 200, nil, `"result":[]`},
		{"zone create job without a challenge", func() *http.Request {
			return request("POST", "/zones/"+zoneID+"/logpush/jobs", "token", chal)
		}, 400, []int{1002}, "incorrect ownership challenge"},
		{"unknown route", func() *http.Request {
			return request("GET", "/client/v4/zones/"+zoneID+"/logpush/nothing", "token", "")
		}, 404, []int{7000}, "No route for that URI"},
		{"unknown logpush route", func() *http.Request {
			return request("POST", "/client/v4/zones/"+zoneID+"/logpush/validate/origin", "token", `{}`)
		}, 404, []int{7000}, "No route for that URI"},
		{"wrong method", func() *http.Request { return request("GET", challengePath("zones", zoneID), "token", "") }, 405, []int{7001}, "Method not allowed"},
		{"wrong method on jobs", func() *http.Request { return request("PUT", "/client/v4/zones/"+zoneID+"/logpush/jobs", "token", chal) }, 405, []int{7001}, "Method not allowed"},
		{"wrong method on destination exists", func() *http.Request {
			return request("GET", "/client/v4/zones/"+zoneID+"/logpush/validate/destination/exists", "token", "")
		}, 405, []int{7001}, "Method not allowed"},
		{"invalid zone id on jobs", func() *http.Request { return request("GET", "/client/v4/zones/not-hex/logpush/jobs", "token", "") }, 400, []int{7003}, "Could not route"},
		{"no auth", func() *http.Request { return request("POST", challengePath("zones", zoneID), "", chal) }, 400, []int{6003, 9106}, "Invalid request headers"},
		{"basic auth", func() *http.Request {
			return request("POST", challengePath("zones", zoneID), "Basic dXNlcjpwYXNz", chal)
		}, 400, []int{6003, 6111}, "Invalid format for Authorization header"},
		{"empty bearer", func() *http.Request { return request("POST", challengePath("zones", zoneID), "Bearer ", chal) }, 400, []int{6003, 6111}, "Authorization"},
		{"wrong token", func() *http.Request { return request("POST", challengePath("zones", zoneID), "Bearer wrong", chal) }, 403, []int{10000}, "Authentication error"},
		{"email without key", func() *http.Request {
			r := request("POST", challengePath("zones", zoneID), "", chal)
			r.Header.Set("X-Auth-Email", "a@example.com")
			return r
		}, 400, []int{6003, 6103}, "Invalid format for X-Auth-Key header"},
		{"key without email", func() *http.Request {
			r := request("POST", challengePath("zones", zoneID), "", chal)
			r.Header.Set("X-Auth-Key", "k")
			return r
		}, 400, []int{6003, 6102}, "X-Auth-Email"},
		{"email and key not accepted", func() *http.Request {
			r := request("POST", challengePath("zones", zoneID), "", chal)
			r.Header.Set("X-Auth-Email", "a@example.com")
			r.Header.Set("X-Auth-Key", "k")
			return r
		}, 403, []int{10000}, "Authentication error"},
		{"invalid JSON", func() *http.Request {
			return request("POST", challengePath("zones", zoneID), "token", `{"destination_conf":`)
		}, 400, []int{1001}, "Malformed JSON"},
		{"missing destination_conf", func() *http.Request { return request("POST", challengePath("zones", zoneID), "token", `{}`) }, 400, []int{1001}, "destination_conf is required"},
		{"destination_conf too long", func() *http.Request {
			return request("POST", challengePath("zones", zoneID), "token", body(map[string]string{"destination_conf": "s3://b/" + strings.Repeat("x", 4090)}))
		}, 400, []int{1001}, "at most 4096"},
		{"destination_conf without scheme", func() *http.Request {
			return request("POST", challengePath("zones", zoneID), "token", body(map[string]string{"destination_conf": "mybucket/logs"}))
		}, 400, []int{1001}, "destination_conf is invalid"},
		{"validate without challenge", func() *http.Request {
			return request("POST", challengePath("zones", zoneID)+"/validate", "token", chal)
		}, 400, []int{1001}, "ownership_challenge is required"},
		{"validate with a malformed challenge", func() *http.Request {
			return request("POST", challengePath("zones", zoneID)+"/validate", "token",
				body(map[string]string{"destination_conf": conf, "ownership_challenge": "a b"}))
		}, 400, []int{1001}, "ownership_challenge is invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, simulator.Config{})
			a := b.do(t, tc.req())
			if a.status != tc.status || fmt.Sprint(a.codes()) != fmt.Sprint(tc.codes) || !strings.Contains(a.body, tc.message) {
				t.Fatalf("got %d %v %s; want %d %v ~%q", a.status, a.codes(), a.body, tc.status, tc.codes, tc.message)
			}
			if a.header.Get("Content-Type") != "application/json" || a.env.Messages == nil {
				t.Fatalf("not an envelope: %s", a.body)
			}
			if tc.status == 200 {
				if !a.env.Success || a.env.Errors == nil || len(a.env.Errors) != 0 || string(a.env.Result) == "null" {
					t.Fatalf("success shape: %s", a.body)
				}
			} else if a.env.Success || len(a.env.Errors) == 0 || string(a.env.Result) != "null" {
				t.Fatalf("failure shape: %s", a.body)
			}
		})
	}
}

func TestCredentialModes(t *testing.T) {
	t.Parallel()
	chal := body(map[string]string{"destination_conf": conf})
	withKey := func(r *http.Request, email, key string) *http.Request {
		r.Header.Set("X-Auth-Email", email)
		r.Header.Set("X-Auth-Key", key)
		return r
	}
	// Email and key configured: they work, a token does not, and
	// /user/tokens/verify needs a token.
	b := setup(t, simulator.Config{Email: "ops@example.com", APIKey: "global-key-1"})
	if a := b.do(t, withKey(request("POST", challengePath("zones", zoneID), "", chal), "ops@example.com", "global-key-1")); a.status != 200 {
		t.Fatalf("email and key: %d %s", a.status, a.body)
	}
	if a := b.do(t, withKey(request("GET", "/client/v4/user", "", ""), "ops@example.com", "global-key-1")); a.status != 200 || !strings.Contains(a.body, "ops@example.com") {
		t.Fatalf("user: %d %s", a.status, a.body)
	}
	if a := b.do(t, request("POST", challengePath("zones", zoneID), "Bearer some-token", chal)); a.status != 403 {
		t.Fatalf("token against email/key config: %d %s", a.status, a.body)
	}
	if a := b.do(t, withKey(request("GET", "/client/v4/user/tokens/verify", "", ""), "ops@example.com", "global-key-1")); a.status != 400 || fmt.Sprint(a.codes()) != "[6003 6111]" {
		t.Fatalf("verify with a key: %d %s", a.status, a.body)
	}

	// Nothing configured: any well-formed credential.
	ob := setupOpen(t, simulator.Config{})
	if a := ob.do(t, request("POST", challengePath("zones", zoneID), "Bearer anything", chal)); a.status != 200 {
		t.Fatalf("open token: %d %s", a.status, a.body)
	}
	if a := ob.do(t, withKey(request("POST", challengePath("zones", zoneID), "", chal), "x@example.com", "k")); a.status != 200 {
		t.Fatalf("open email/key: %d %s", a.status, a.body)
	}
	if a := ob.do(t, request("POST", challengePath("zones", zoneID), "", chal)); a.status != 400 {
		t.Fatalf("open, no auth: %d %s", a.status, a.body)
	}
}

// challenge issues a challenge and returns its filename.
func (b *testBundle) challenge(t *testing.T, scope, id, conf string) string {
	t.Helper()
	a := b.do(t, request("POST", challengePath(scope, id), "token", body(map[string]string{"destination_conf": conf})))
	if a.status != 200 {
		t.Fatalf("challenge: %d %s", a.status, a.body)
	}
	var res struct {
		Filename string `json:"filename"`
		Message  string `json:"message"`
		Valid    bool   `json:"valid"`
	}
	if err := json.Unmarshal(a.env.Result, &res); err != nil || !res.Valid || res.Message != "" {
		t.Fatalf("challenge result: %s", a.env.Result)
	}
	return res.Filename
}

// validate returns the status of a validation.
func (b *testBundle) validate(t *testing.T, scope, id, conf, tok string) int {
	t.Helper()
	a := b.do(t, request("POST", challengePath(scope, id)+"/validate", "token",
		body(map[string]string{"destination_conf": conf, "ownership_challenge": tok})))
	switch a.status {
	case 200:
		if string(a.env.Result) != `{"valid":true}` {
			t.Fatalf("validate result: %s", a.body)
		}
	case 400:
		if fmt.Sprint(a.codes()) != "[1002]" {
			t.Fatalf("validate failure: %s", a.body)
		}
	}
	return a.status
}

func TestChallengeFilename(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{WriteDelay: time.Hour})
	day := b.clock.Now().UTC().Format("20060102")
	cases := []struct {
		scope, id, conf, want string
	}{
		{"zones", zoneID, "s3://bucket/logs/x?region=us-east-1", "logs/x/ownership-challenge.txt"},
		// Another zone, or an account, pushing to the same path shares the file.
		{"accounts", accountID, "s3://bucket/logs/x?region=us-east-1", "logs/x/ownership-challenge.txt"},
		{"zones", accountID, "s3://bucket/logs/x?region=us-east-1&sse=1", "logs/x/ownership-challenge.txt"},
		{"zones", zoneID, "s3://bucket/http/{DATE}?region=us-east-1", "http/" + day + "/ownership-challenge.txt"},
		{"zones", zoneID, "file:///tmp/d/x", "tmp/d/x/ownership-challenge.txt"},
		{"zones", zoneID, "s3://bucket?region=us-east-1", "ownership-challenge.txt"},
		{"zones", zoneID, "gs://bucket/a/b/", "a/b/ownership-challenge.txt"},
	}
	for _, tc := range cases {
		got := b.challenge(t, tc.scope, tc.id, tc.conf)
		if got != tc.want {
			t.Errorf("%s %s: filename %q, want %q", tc.scope, tc.conf, got, tc.want)
		}
		if again := b.challenge(t, tc.scope, tc.id, tc.conf); again != got {
			t.Errorf("%s: a later challenge moved the file: %q then %q", tc.conf, got, again)
		}
	}
}

// TestSharedPathOverwrites: two zones pushing to one path get one file;
// the second challenge overwrites the first zone's token, and neither
// zone's token validates for the other.
func TestSharedPathOverwrites(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{})
	const other = "c3f2a9c1d0e4b5a6978877665544332b"
	fa := b.challenge(t, "zones", zoneID, conf)
	waitFor(t, func() bool { return len(b.w.all()) == 1 })
	fb := b.challenge(t, "zones", other, conf)
	waitFor(t, func() bool { return len(b.w.all()) == 2 })
	if fa != fb {
		t.Fatalf("two zones on one path got files %q and %q", fa, fb)
	}
	w := b.w.all()
	if w[0].filename != w[1].filename {
		t.Fatalf("writes went to %q and %q", w[0].filename, w[1].filename)
	}
	tokA, tokB := w[0].body, w[1].body
	if got := b.validate(t, "zones", zoneID, conf, tokB); got != 400 {
		t.Errorf("zone B's token for zone A: status %d, want 400", got)
	}
	if got := b.validate(t, "zones", other, conf, tokA); got != 400 {
		t.Errorf("zone A's token for zone B: status %d, want 400", got)
	}
	if got := b.validate(t, "zones", zoneID, conf, tokA); got != 200 {
		t.Errorf("zone A's own token: status %d, want 200", got)
	}
	if st := b.sim.Stats(); st.ForeignTokens != 2 || st.ValidationsOK != 1 {
		t.Errorf("stats = %+v, want 2 foreign tokens and 1 ok", st)
	}
}

func TestDelayedWriteHappensOnce(t *testing.T) {
	t.Parallel()
	const delay = 100 * time.Millisecond
	b := setup(t, simulator.Config{WriteDelay: delay, WriteJitter: 20 * time.Millisecond})
	start := time.Now()
	filename := b.challenge(t, "zones", zoneID, conf)
	if w := b.w.all(); len(w) != 0 {
		t.Fatalf("written before the delay: %+v", w)
	}
	waitFor(t, func() bool { return len(b.w.all()) > 0 })
	time.Sleep(3 * delay)
	w := b.w.all()
	if len(w) != 1 || w[0].conf != conf || w[0].filename != filename || w[0].at.Sub(start) < delay {
		t.Fatalf("writes = %+v", w)
	}
	checkToken(t, w[0].body, conf, b.clock.Now(), simulator.DefaultTokenTTL)
	if st := b.sim.Stats(); st.FilesWritten != 1 || st.ChallengesIssued != 1 || st.Destinations != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestWriteErrorsCounted(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{})
	b.w.fail = errors.New("access denied")
	b.challenge(t, "zones", zoneID, conf)
	waitFor(t, func() bool { return b.sim.Stats().WriteErrors == 1 })
}

// TestWriteErrorLogIsRedacted checks the write failure's log line: the
// filename and the error derive from the conf's path, which holds a Sumo
// Logic source's secret.
func TestWriteErrorLogIsRedacted(t *testing.T) {
	t.Parallel()
	const secret = "ZaVnC4dhaV3secretCode"
	sumo := "sumo://endpoint1.collection.sumologic.com/receiver/v1/http/" + secret
	var logs testutil.Buffer
	b := setup(t, simulator.Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	b.w.fail = errors.New("write receiver/v1/http/" + secret + "/ownership-challenge-1.txt: access denied")
	b.challenge(t, "zones", zoneID, sumo)
	waitFor(t, func() bool { return b.sim.Stats().WriteErrors == 1 })
	waitFor(t, func() bool { return strings.Contains(logs.String(), "writing challenge file failed") })
	if out := logs.String(); strings.Contains(out, secret) || !strings.Contains(out, "ownership-challenge-") {
		t.Fatalf("log line: %s", out)
	}
}

func TestCloseStopsPendingWrites(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{WriteDelay: 100 * time.Millisecond})
	b.challenge(t, "zones", zoneID, conf)
	b.sim.Close()
	b.challenge(t, "zones", zoneID, conf+"&after=close") // answered, never written
	time.Sleep(300 * time.Millisecond)
	if w := b.w.all(); len(w) != 0 {
		t.Fatalf("written after Close: %+v", w)
	}
	b.sim.Close() // idempotent
}

func TestCloseCancelsRunningWrite(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	b := setup(t, simulator.Config{Write: func(ctx context.Context, _, _ string, _ []byte) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}})
	b.challenge(t, "zones", zoneID, conf)
	<-started
	done := make(chan struct{})
	go func() { b.sim.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not cancel the running write")
	}
}

// TestAnyUnexpiredTokenValidates: every unexpired token issued for the
// exact (scope, id, conf) validates, not only the latest; nothing else does.
func TestAnyUnexpiredTokenValidates(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{TokenTTL: time.Hour})
	b.challenge(t, "zones", zoneID, conf)
	waitFor(t, func() bool { return len(b.w.all()) == 1 })
	b.clock.Advance(time.Second)
	b.challenge(t, "zones", zoneID, conf)
	waitFor(t, func() bool { return len(b.w.all()) == 2 })
	w := b.w.all()
	first, latest := w[0].body, w[1].body
	if first == latest {
		t.Fatal("two challenges gave the same token")
	}
	forged := latest[:strings.LastIndexByte(latest, '.')+1] + "AAAA"
	checks := []struct {
		name      string
		scope, id string
		conf, tok string
		want      int
	}{
		{"earlier token", "zones", zoneID, conf, first, 200},
		{"conf not byte-identical", "zones", zoneID, conf + " ", latest, 400},
		{"other zone", "zones", accountID, conf, latest, 400},
		{"other scope", "accounts", zoneID, conf, latest, 400},
		{"bad signature", "zones", zoneID, conf, forged, 400},
		{"latest token", "zones", zoneID, conf, latest, 200},
		{"latest token again", "zones", zoneID, conf, latest, 200},
	}
	for _, c := range checks {
		if got := b.validate(t, c.scope, c.id, c.conf, c.tok); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
	b.clock.Advance(time.Hour)
	if got := b.validate(t, "zones", zoneID, conf, latest); got != 400 {
		t.Errorf("expired token: status %d, want 400", got)
	}
	if st := b.sim.Stats(); st.ValidationsOK != 3 || st.ValidationsFailed != 5 || st.ForeignTokens != 3 {
		t.Errorf("stats = %+v", st)
	}
}

func TestSupersededWriteIsDropped(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{WriteDelay: 100 * time.Millisecond})
	b.challenge(t, "zones", zoneID, conf)
	b.clock.Advance(time.Second)
	b.challenge(t, "zones", zoneID, conf)
	waitFor(t, func() bool { return len(b.w.all()) == 1 })
	time.Sleep(300 * time.Millisecond)
	w := b.w.all()
	if len(w) != 1 {
		t.Fatalf("writes = %d, want only the latest", len(w))
	}
	if got := b.validate(t, "zones", zoneID, conf, w[0].body); got != 200 {
		t.Fatalf("the written token does not validate: %d", got)
	}
}

// tokenPattern is the schema's ownership_challenge pattern.
var tokenPattern = regexp.MustCompile(`^[a-zA-Z0-9/\+\.\-_]*$`)

// checkToken decodes a token's claims.
func checkToken(t *testing.T, tok, conf string, now time.Time, ttl time.Duration) {
	t.Helper()
	if !tokenPattern.MatchString(tok) || len(tok) > 4096 {
		t.Fatalf("token %q does not match the schema", tok)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	var header map[string]string
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(raw, &header) != nil || header["alg"] != "HS256" {
		t.Fatalf("header %q", raw)
	}
	var claims map[string]any
	raw, err = base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(raw, &claims) != nil {
		t.Fatalf("claims %q", raw)
	}
	sum := sha256.Sum256([]byte(conf))
	want := map[string]any{"object_type": "zone", "object_id": zoneID, "destination": hex.EncodeToString(sum[:]),
		"exp": float64(now.Add(ttl).Unix())}
	for k, v := range want {
		if claims[k] != v {
			t.Errorf("claim %s = %v, want %v", k, claims[k], v)
		}
	}
	if _, ok := claims["iat"]; ok {
		t.Errorf("claims have iat, which Cloudflare does not document: %v", claims)
	}
	if claims["jti"] == "" || claims["jti"] == nil {
		t.Errorf("claims have no jti: %v", claims)
	}
	if sig, err := base64.RawURLEncoding.DecodeString(parts[2]); err != nil || len(sig) != sha256.Size {
		t.Fatalf("signature %q", parts[2])
	}
}

func TestRateLimitAndPenalty(t *testing.T) {
	t.Parallel()
	b := setupOpen(t, simulator.Config{RateLimit: 3, RateWindow: 10 * time.Second, Penalty: 20 * time.Second})
	verify := func(tok string) answer {
		return b.do(t, request("GET", "/client/v4/user/tokens/verify", "Bearer "+tok, ""))
	}
	for i := range 3 {
		a := verify(token)
		if a.status != 200 {
			t.Fatalf("request %d: %d", i+1, a.status)
		}
		if want := fmt.Sprintf(`"default";r=%d;t=10`, 2-i); a.header.Get("Ratelimit") != want {
			t.Fatalf("request %d: Ratelimit %q, want %q", i+1, a.header.Get("Ratelimit"), want)
		}
	}
	a := verify(token)
	if a.status != 429 || a.header.Get("Retry-After") != "20" || a.header.Get("Ratelimit") != `"default";r=0;t=20` ||
		fmt.Sprint(a.codes()) != "[1015]" || string(a.env.Result) != "null" {
		t.Fatalf("over the limit: %d %v %s", a.status, a.header, a.body)
	}
	b.clock.Advance(5 * time.Second)
	if a := verify(token); a.status != 429 || a.header.Get("Retry-After") != "15" {
		t.Fatalf("during the penalty: %d Retry-After %q", a.status, a.header.Get("Retry-After"))
	}
	if a := verify("another-credential"); a.status != 200 {
		t.Fatalf("another credential is limited too: %d", a.status)
	}
	b.clock.Advance(16 * time.Second) // penalty over, window (10s) empty
	if a := verify(token); a.status != 200 {
		t.Fatalf("after the penalty: %d %s", a.status, a.body)
	}
	st := b.sim.Stats()
	if st.RateLimitedLimit != 2 || st.RateLimitedInjected != 0 || st.MaxInWindow != 5 {
		t.Fatalf("stats = %+v", st)
	}
	if st.Count(simulator.EndpointVerify, 429) != 2 || st.Count(simulator.EndpointVerify, 200) != 5 {
		t.Fatalf("requests = %v", st.Requests)
	}
}

func TestMaxInWindowSlides(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{RateWindow: 10 * time.Second}) // tracked, not enforced
	for range 20 {
		if a := b.do(t, request("GET", "/client/v4/user", "token", "")); a.status != 200 {
			t.Fatalf("status %d", a.status)
		}
		b.clock.Advance(time.Second) // one per second: at most 10 in any 10s
	}
	if st := b.sim.Stats(); st.MaxInWindow != 10 {
		t.Fatalf("MaxInWindow = %d, want 10", st.MaxInWindow)
	}
}

func TestInjectedRates(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{ErrorRate: 0.2, RateLimitRate: 0.1, Hostile: 0.1,
		HostileKinds: []string{simulator.HostileHTML, simulator.HostileNoResult, simulator.HostileNotJSON, simulator.HostileRedirect}})
	const n = 4000
	statuses := map[int]int{}
	for range n {
		rec := httptest.NewRecorder()
		b.sim.ServeHTTP(rec, request("GET", "/client/v4/user", "token", ""))
		statuses[rec.Code]++
		switch rec.Code {
		case 429:
			if rec.Header().Get("Retry-After") != "1" {
				t.Fatalf("injected 429 without Retry-After: 1")
			}
		case 503:
			if rec.Header().Get("Retry-After") == "" {
				t.Fatalf("503 without Retry-After")
			}
		}
	}
	st := b.sim.Stats()
	near := func(name string, got int, want float64) {
		if f := float64(got) / n; f < want-0.03 || f > want+0.03 {
			t.Errorf("%s: %.3f of calls, want %.2f±0.03", name, f, want)
		}
	}
	near("5xx", statuses[500]+statuses[502]+statuses[503], 0.2)
	near("429", statuses[429], 0.1)
	hostile := 0
	for _, v := range st.HostileInjected {
		hostile += v
	}
	near("hostile", hostile, 0.1)
	for _, code := range []int{500, 502, 503} {
		if statuses[code] == 0 {
			t.Errorf("no %d injected", code)
		}
	}
	if st.ServerErrorsInjected != statuses[500]+statuses[502]+statuses[503] || st.RateLimitedInjected != statuses[429] {
		t.Errorf("stats %+v disagree with statuses %v", st, statuses)
	}
	if len(st.HostileInjected) != 4 {
		t.Errorf("hostile kinds used: %v", st.HostileInjected)
	}

	// The same seed gives the same sequence.
	again := setup(t, simulator.Config{ErrorRate: 0.2, RateLimitRate: 0.1, Hostile: 0.1,
		HostileKinds: []string{simulator.HostileHTML, simulator.HostileNoResult, simulator.HostileNotJSON, simulator.HostileRedirect}})
	for range n {
		again.sim.ServeHTTP(httptest.NewRecorder(), request("GET", "/client/v4/user", "token", ""))
	}
	if fmt.Sprint(again.sim.Stats().Requests) != fmt.Sprint(st.Requests) {
		t.Errorf("seeded runs differ: %v vs %v", again.sim.Stats().Requests, st.Requests)
	}
}

func TestHostileKinds(t *testing.T) {
	t.Parallel()
	chal := body(map[string]string{"destination_conf": conf})
	cases := []struct {
		kind  string
		check func(t *testing.T, resp *http.Response, body []byte, readErr error)
	}{
		{simulator.HostileHTML, func(t *testing.T, resp *http.Response, body []byte, _ error) {
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !bytes.Contains(body, []byte("<html")) {
				t.Errorf("html: %d %q", resp.StatusCode, body)
			}
		}},
		{simulator.HostileTruncated, func(t *testing.T, resp *http.Response, body []byte, readErr error) {
			if resp.StatusCode != 200 || !errors.Is(readErr, io.ErrUnexpectedEOF) {
				t.Errorf("truncated: %d %q %v", resp.StatusCode, body, readErr)
			}
		}},
		{simulator.HostileHuge, func(t *testing.T, resp *http.Response, body []byte, _ error) {
			if resp.StatusCode != 200 || len(body) < 5<<20 || !json.Valid(body) {
				t.Errorf("huge: %d, %d bytes", resp.StatusCode, len(body))
			}
		}},
		{simulator.HostileNoResult, func(t *testing.T, resp *http.Response, body []byte, _ error) {
			if resp.StatusCode != 200 || string(body) != `{"success":true,"errors":[],"messages":[],"result":null}` {
				t.Errorf("no_result: %d %q", resp.StatusCode, body)
			}
		}},
		{simulator.HostileRedirect, func(t *testing.T, resp *http.Response, _ []byte, _ error) {
			if resp.StatusCode != 302 || !strings.HasPrefix(resp.Header.Get("Location"), "https://login.simulator.invalid/") {
				t.Errorf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
			}
		}},
		{simulator.HostileNotJSON, func(t *testing.T, resp *http.Response, body []byte, _ error) {
			if resp.StatusCode != 200 || json.Valid(body) {
				t.Errorf("not_json: %d %q", resp.StatusCode, body)
			}
		}},
		{simulator.HostileSlow, func(t *testing.T, resp *http.Response, body []byte, _ error) {
			if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"filename"`)) {
				t.Errorf("slow: %d %q", resp.StatusCode, body)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			b := setup(t, simulator.Config{Hostile: 1, HostileKinds: []string{tc.kind}, SlowDelay: 50 * time.Millisecond})
			srv := httptest.NewServer(b.sim)
			t.Cleanup(srv.Close)
			req, _ := http.NewRequest("POST", srv.URL+challengePath("zones", zoneID), strings.NewReader(chal))
			req.Header.Set("Authorization", "Bearer "+token)
			hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			start := time.Now()
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			data, readErr := io.ReadAll(resp.Body)
			resp.Body.Close()
			tc.check(t, resp, data, readErr)
			if tc.kind == simulator.HostileSlow && time.Since(start) < 50*time.Millisecond {
				t.Errorf("slow answered in %s", time.Since(start))
			}
			if st := b.sim.Stats(); st.HostileInjected[tc.kind] != 1 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	w := (&fakeWriter{}).write
	bad := []simulator.Config{
		{},
		{Write: w, ErrorRate: 1.5},
		{Write: w, ErrorRate: 0.6, RateLimitRate: 0.5},
		{Write: w, Hostile: -0.1},
		{Write: w, HostileKinds: []string{"gzip_bomb"}},
		{Write: w, WriteDelay: -time.Second},
		{Write: w, RateLimit: -1},
		{Write: w, Email: "a@example.com"},
		{Write: w, MaxJobsPerScope: -1},
	}
	for i, cfg := range bad {
		if _, err := simulator.New(cfg); err == nil {
			t.Errorf("config %d accepted", i)
		}
	}
	d := simulator.Config{RateLimit: 1200}.WithDefaults()
	if d.RateWindow != 5*time.Minute || d.Penalty != 5*time.Minute || d.TokenTTL != 7*24*time.Hour || len(d.HostileKinds) != 7 || d.Now == nil || d.Logger == nil ||
		d.MaxJobsPerScope != 4 {
		t.Errorf("defaults = %+v", d)
	}
}

// TestConcurrentDestinations runs many destinations at once (with -race)
// and checks every latest token validates.
func TestConcurrentDestinations(t *testing.T) {
	t.Parallel()
	b := setup(t, simulator.Config{WriteJitter: 10 * time.Millisecond})
	const workers, per = 16, 50
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range per {
				b.challenge(t, "zones", zoneID, fmt.Sprintf("s3://bucket/w%d/d%d?region=us-east-1", i, j))
			}
		}()
	}
	wg.Wait()
	waitFor(t, func() bool { return len(b.w.all()) == workers*per })
	for _, w := range b.w.all() {
		if got := b.validate(t, "zones", zoneID, w.conf, w.body); got != 200 {
			t.Fatalf("%s: %d", w.conf, got)
		}
	}
	if st := b.sim.Stats(); st.Destinations != workers*per || st.ValidationsOK != workers*per {
		t.Fatalf("stats = %+v", st)
	}
}

// TestManyDestinations holds 100k destinations with pending writes.
func TestManyDestinations(t *testing.T) {
	if testing.Short() {
		t.Skip("100k destinations")
	}
	t.Parallel()
	b := setup(t, simulator.Config{WriteDelay: time.Hour})
	const n = 100_000
	for i := range n {
		rec := httptest.NewRecorder()
		b.sim.ServeHTTP(rec, request("POST", challengePath("zones", zoneID), "token",
			`{"destination_conf":"s3://bucket/d`+fmt.Sprint(i)+`?region=us-east-1"}`))
		if rec.Code != 200 {
			t.Fatalf("destination %d: %d", i, rec.Code)
		}
	}
	if st := b.sim.Stats(); st.Destinations != n {
		t.Fatalf("destinations = %d", st.Destinations)
	}
	b.sim.Close()
	if w := b.w.all(); len(w) != 0 {
		t.Fatalf("%d writes after Close", len(w))
	}
}

func BenchmarkChallenge(b *testing.B) {
	sim, err := simulator.New(simulator.Config{Write: (&fakeWriter{}).write, WriteDelay: time.Hour, APIToken: token})
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	i := 0
	for b.Loop() {
		i++
		sim.ServeHTTP(httptest.NewRecorder(), request("POST", challengePath("zones", zoneID), "token",
			`{"destination_conf":"s3://bucket/d`+fmt.Sprint(i)+`?region=us-east-1"}`))
	}
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAccountOwnedToken: like Cloudflare, the user endpoint answers 401 for
// an account-owned token, which verifies at its own account's endpoint
// only, and works on the Logpush routes; a user token verifies at the user
// endpoint only; a wrong token verifies nowhere.
func TestAccountOwnedToken(t *testing.T) {
	t.Parallel()
	chal := body(map[string]string{"destination_conf": conf})
	other := strings.Repeat("b", 32)
	verify := func(b *testBundle, path, tok string) answer {
		return b.do(t, request("GET", path, "Bearer "+tok, ""))
	}
	ab := setup(t, simulator.Config{TokenAccountID: accountID})
	for _, c := range []struct {
		path, tok string
		status    int
	}{
		{"/client/v4/user/tokens/verify", token, 401},
		{"/client/v4/accounts/" + accountID + "/tokens/verify", token, 200},
		{"/client/v4/accounts/" + other + "/tokens/verify", token, 401},
		{"/client/v4/accounts/" + accountID + "/tokens/verify", "wrong-token", 401},
		{"/client/v4/user/tokens/verify", "wrong-token", 401},
	} {
		a := verify(ab, c.path, c.tok)
		if a.status != c.status || (c.status == 401 && fmt.Sprint(a.codes()) != "[1000]") || (c.status == 200 && !strings.Contains(a.body, `"status":"active"`)) {
			t.Errorf("account-owned token, %s with %s: %d %s", c.path, c.tok, a.status, a.body)
		}
	}
	if a := ab.do(t, request("POST", challengePath("accounts", accountID), "token", chal)); a.status != 200 {
		t.Fatalf("challenge with an account-owned token: %d %s", a.status, a.body)
	}
	ub := setup(t, simulator.Config{})
	if a := verify(ub, "/client/v4/user/tokens/verify", token); a.status != 200 {
		t.Errorf("user token at the user endpoint: %d %s", a.status, a.body)
	}
	if a := verify(ub, "/client/v4/accounts/"+accountID+"/tokens/verify", token); a.status != 401 {
		t.Errorf("user token at an account endpoint: %d %s", a.status, a.body)
	}
	if st := ab.sim.Stats(); st.Count(simulator.EndpointAccountVerify, 200) != 1 || st.Count(simulator.EndpointVerify, 401) != 2 {
		t.Errorf("stats = %s", st)
	}
	if _, err := simulator.New(simulator.Config{Write: func(context.Context, string, string, []byte) error { return nil }, APIToken: "t", TokenAccountID: "x"}); err == nil {
		t.Error("a token account id that is not an id was accepted")
	}
}
