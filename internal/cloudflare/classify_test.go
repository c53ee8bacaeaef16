package cloudflare_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
)

// raw answers a fixed status, content type and body.
func raw(status int, contentType, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		drain(r)
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

const (
	okChallenge = `{"success":true,"errors":[],"messages":[],"result":{"filename":"logs/c.txt","message":"","valid":true}}`
	htmlPage    = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>"
)

func failure(codes ...int) string {
	var errs []string
	for _, c := range codes {
		errs = append(errs, fmt.Sprintf(`{"code":%d,"message":"error %d"}`, c, c))
	}
	return `{"success":false,"errors":[` + strings.Join(errs, ",") + `],"messages":[],"result":null}`
}

// classification is one row of TestClassification.
type classification struct {
	name       string
	validate   bool // call Validate instead of Challenge
	handler    http.HandlerFunc
	kind       cloudflare.Kind
	status     int // HTTPStatus and the status observed
	codes      []int
	message    string // substring of Message
	retryAfter time.Duration
	cause      error // errors.Is target, if any
	// timeout is the client's RequestTimeout; default 10s. Only the rows
	// about timeouts set a short one: under -race on a busy machine,
	// reading a large body can take longer than 200ms.
	timeout time.Duration
}

// classifications covers design.md's "Outcomes of a call" and the hostile
// answers a proxy or a broken API can give.
func classifications() []classification {
	return []classification{
		{name: "429 with Retry-After", handler: raw(429, "application/json", failure(1015), "Retry-After", "7"),
			kind: cloudflare.RateLimited, status: 429, codes: []int{1015}, retryAfter: 7 * time.Second},
		{name: "429 with Ratelimit header", handler: raw(429, "application/json", failure(1015), "Ratelimit", `"default";r=0;t=30`),
			kind: cloudflare.RateLimited, status: 429, codes: []int{1015}, retryAfter: 30 * time.Second},
		{name: "429 HTML", handler: raw(429, "text/html", htmlPage),
			kind: cloudflare.RateLimited, status: 429, message: "HTML response"},
		{name: "500 envelope", handler: raw(500, "application/json", failure(10002)),
			kind: cloudflare.Transient, status: 500, codes: []int{10002}},
		{name: "502 HTML", handler: raw(502, "text/html", htmlPage),
			kind: cloudflare.Transient, status: 502, message: "HTML response instead of JSON"},
		{name: "503 with Retry-After", handler: raw(503, "application/json", failure(10002), "Retry-After", "3"),
			kind: cloudflare.Transient, status: 503, codes: []int{10002}, retryAfter: 3 * time.Second},
		{name: "504 empty", handler: raw(504, "", ""),
			kind: cloudflare.Transient, status: 504, message: "empty response body"},
		{name: "408", handler: raw(408, "text/plain", "request timeout"),
			kind: cloudflare.Transient, status: 408, message: "non-JSON response"},
		{name: "400 1002 on validate", validate: true, handler: raw(400, "application/json", failure(1002)),
			kind: cloudflare.StaleChallenge, status: 400, codes: []int{1002}},
		{name: "400 1002 on challenge", handler: raw(400, "application/json", failure(1002)),
			kind: cloudflare.Permanent, status: 400, codes: []int{1002}},
		{name: "400 7003", handler: raw(400, "application/json", failure(7003)),
			kind: cloudflare.Permanent, status: 400, codes: []int{7003}, message: "error 7003"},
		{name: "404 7000", handler: raw(404, "application/json", failure(7000)),
			kind: cloudflare.Permanent, status: 404, codes: []int{7000}},
		{name: "400 HTML", handler: raw(400, "text/html", htmlPage),
			kind: cloudflare.Permanent, status: 400, message: "HTML response"},
		{name: "400 6003 with error_chain", handler: raw(400, "application/json",
			`{"success":false,"errors":[{"code":6003,"message":"Invalid request headers","error_chain":[{"code":6111,"message":"Invalid format for Authorization header"}]}],"messages":[],"result":null}`),
			kind: cloudflare.Auth, status: 400, codes: []int{6003, 6111}, message: "Invalid request headers: Invalid format for Authorization header"},
		{name: "401", handler: raw(401, "application/json", failure(10000)),
			kind: cloudflare.Auth, status: 401, codes: []int{10000}},
		{name: "403 10000", handler: raw(403, "application/json", failure(10000)),
			kind: cloudflare.Auth, status: 403, codes: []int{10000}},
		{name: "403 HTML from a WAF", handler: raw(403, "text/html", htmlPage),
			kind: cloudflare.Auth, status: 403},
		{name: "200 HTML", handler: raw(200, "text/html", htmlPage),
			kind: cloudflare.Transient, status: 200, message: "HTML response instead of JSON"},
		{name: "200 not JSON", handler: raw(200, "text/plain", "upstream connect error or disconnect/reset before headers"),
			kind: cloudflare.Transient, status: 200, message: `non-JSON response (content-type "text/plain")`},
		{name: "200 truncated JSON", handler: raw(200, "application/json", okChallenge[:40]),
			kind: cloudflare.Transient, status: 200, message: "truncated JSON response"},
		{name: "200 body shorter than Content-Length", handler: func(w http.ResponseWriter, r *http.Request) {
			drain(r)
			w.Header().Set("Content-Length", strconv.Itoa(len(okChallenge)))
			w.WriteHeader(200)
			_, _ = w.Write([]byte(okChallenge[:30]))
		}, kind: cloudflare.Transient, status: 200, message: "reading response body: truncated response body"},
		{name: "200 5 MB body", handler: raw(200, "application/json",
			`{"success":true,"errors":[],"messages":[],"result":{"filename":"`+strings.Repeat("x", 5<<20)+`"}}`),
			kind: cloudflare.Transient, status: 200, message: "response body exceeds 1048576 bytes"},
		{name: "200 success with null result", handler: raw(200, "application/json", `{"success":true,"errors":[],"messages":[],"result":null}`),
			kind: cloudflare.Transient, status: 200, message: "success without a result object"},
		{name: "200 success without result", handler: raw(200, "application/json", `{"success":true,"errors":[],"messages":[]}`),
			kind: cloudflare.Transient, status: 200, message: "success without a result object"},
		{name: "200 success false", handler: raw(200, "application/json", failure(1001)),
			kind: cloudflare.Transient, status: 200, codes: []int{1001}},
		{name: "200 success false 1002 on validate", validate: true, handler: raw(200, "application/json", failure(1002)),
			kind: cloudflare.StaleChallenge, status: 200, codes: []int{1002}},
		{name: "200 not an envelope", handler: raw(200, "application/json", `[1,2,3]`),
			kind: cloudflare.Transient, status: 200, message: "not a Cloudflare envelope"},
		{name: "200 challenge valid false", handler: raw(200, "application/json",
			`{"success":true,"errors":[],"messages":[],"result":{"filename":"","message":"error writing object: AccessDenied","valid":false}}`),
			kind: cloudflare.Permanent, status: 200, message: "error writing object: AccessDenied"},
		{name: "200 challenge filename escaping the bucket", handler: raw(200, "application/json",
			`{"success":true,"errors":[],"messages":[],"result":{"filename":"logs/../../etc/passwd","message":"","valid":true}}`),
			kind: cloudflare.Permanent, status: 200, message: `".." segment`},
		{name: "200 validate valid false", validate: true, handler: raw(200, "application/json",
			`{"success":true,"errors":[],"messages":[],"result":{"valid":false}}`),
			kind: cloudflare.StaleChallenge, status: 200, message: "not valid"},
		{name: "200 validate result not an object", validate: true, handler: raw(200, "application/json",
			`{"success":true,"errors":[],"messages":[],"result":"ok"}`),
			kind: cloudflare.Transient, status: 200, message: "result object"},
		{name: "slow answer", handler: func(w http.ResponseWriter, r *http.Request) {
			drain(r)
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, kind: cloudflare.Transient, status: 0, message: "timed out after 200ms", cause: context.DeadlineExceeded, timeout: 200 * time.Millisecond},
		{name: "slow body", handler: func(w http.ResponseWriter, r *http.Request) {
			drain(r)
			w.Header().Set("Content-Length", strconv.Itoa(len(okChallenge)))
			w.WriteHeader(200)
			_, _ = w.Write([]byte(okChallenge[:10]))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, kind: cloudflare.Transient, status: 200, message: "reading response body: timed out", cause: context.DeadlineExceeded,
			timeout: 200 * time.Millisecond},
		{name: "redirect", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://login.example.com/sso?next=x", http.StatusFound)
		}, kind: cloudflare.Permanent, status: 302, message: "unexpected redirect to login.example.com"},
		{name: "3xx without location", handler: raw(304, "", ""),
			kind: cloudflare.Permanent, status: 304, message: "unexpected redirect (http 304)"},
		{name: "connection dropped", handler: func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		}, kind: cloudflare.Transient, status: 0, message: "connection error"},
	}
}

func TestClassification(t *testing.T) {
	t.Parallel()
	var golden bytes.Buffer
	for _, tc := range classifications() {
		b := setup(t, cloudflare.Config{RequestTimeout: cmp.Or(tc.timeout, 10*time.Second)})
		b.handle(tc.handler)
		var err error
		endpoint := cloudflare.EndpointChallenge
		zone := cloudflare.Target{Scope: cloudflare.ScopeZone, ID: zoneID}
		if tc.validate {
			endpoint = cloudflare.EndpointValidate
			var ok bool
			ok, err = b.client.Validate(context.Background(), zone, testConf, "token.value.sig")
			if ok {
				t.Errorf("%s: Validate returned true", tc.name)
			}
		} else {
			_, err = b.client.Challenge(context.Background(), zone, testConf)
		}
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		ae := asAPIError(t, err)
		if ae.Kind != tc.kind || ae.HTTPStatus != tc.status || ae.Endpoint != endpoint ||
			fmt.Sprint(ae.Codes) != fmt.Sprint(tc.codes) || !strings.Contains(ae.Message, tc.message) ||
			ae.RetryAfter != tc.retryAfter {
			t.Errorf("%s: got kind %v status %d codes %v retry %v message %q; want kind %v status %d codes %v retry %v message ~%q",
				tc.name, ae.Kind, ae.HTTPStatus, ae.Codes, ae.RetryAfter, ae.Message, tc.kind, tc.status, tc.codes, tc.retryAfter, tc.message)
		}
		if tc.cause != nil && !errors.Is(err, tc.cause) {
			t.Errorf("%s: %v is not %v", tc.name, err, tc.cause)
		}
		obs := b.observations()
		if len(obs) != 1 || obs[0].endpoint != endpoint || obs[0].status != tc.status {
			t.Errorf("%s: observations %+v, want one with status %d", tc.name, obs, tc.status)
		}
		if tc.name != "connection dropped" { // the cause names a local port
			fmt.Fprintf(&golden, "%s\n\t%s\n", tc.name, err)
		}
	}
	checkGolden(t, "errors.golden", golden.Bytes())
}

func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	var status = -1
	c, err := cloudflare.New(cloudflare.Config{BaseURL: "http://" + addr, Credentials: cloudflare.Credentials{APIToken: testToken},
		Observe: func(_ string, s int, _ time.Duration) { status = s }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Challenge(context.Background(), cloudflare.Target{Scope: "zone", ID: zoneID}, testConf)
	ae := asAPIError(t, err)
	if ae.Kind != cloudflare.Transient || ae.HTTPStatus != 0 || ae.Message != "connection error" || status != 0 {
		t.Fatalf("err = %v (kind %v), observed status %d", err, ae.Kind, status)
	}
}

// checkGolden compares got with testdata/name; UPDATE_GOLDEN=1 rewrites it.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with UPDATE_GOLDEN=1 to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (UPDATE_GOLDEN=1 to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestAdvice: each code Cloudflare answers has the operator's action, 1004
// by its message.
func TestAdvice(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		codes []int
		msg   string
		want  string // substring; "" for no advice
	}{
		{[]int{1002}, "incorrect ownership challenge", "a fresh challenge is requested"},
		{[]int{1004}, "Creating a new job is not allowed: exceeded max jobs allowed", "delete unused jobs"},
		{[]int{1004}, "reading job for product 'gateway_dns' is not allowed", "Logs Edit"},
		{[]int{1004}, "field ClientIP is not allowed on your plan", "plan does not include"},
		{[]int{1004}, "not allowed", "check the API token's Logs Edit permission, the plan's entitlements and the job limit"},
		{[]int{10000}, "Authentication error", "wrong, expired, or has no access"},
		{[]int{6003, 9103}, "Unknown X-Auth-Key or X-Auth-Email", "CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY"},
		{[]int{7003}, "Could not route", "check the row's zone_id or account_id"},
		{[]int{1001}, "bad request", ""},
	} {
		got := cloudflare.Advice(cloudflare.EndpointCreateJob, c.codes, c.msg)
		if c.want == "" && got != "" || !strings.Contains(got, c.want) {
			t.Errorf("Advice(%v, %q) = %q, want ~%q", c.codes, c.msg, got, c.want)
		}
	}
}

// TestOptionalResultFields: result.filename, valid and message are optional
// in Cloudflare's schema; a success without them is a success (the caller
// names the file, Cloudflare's fixed name).
func TestOptionalResultFields(t *testing.T) {
	t.Parallel()
	b := setup(t, cloudflare.Config{})
	b.handle(raw(200, "application/json", `{"success":true,"errors":[],"messages":[],"result":{}}`))
	zone := cloudflare.Target{Scope: cloudflare.ScopeZone, ID: zoneID}
	res, err := b.client.Challenge(context.Background(), zone, testConf)
	if err != nil || !res.Valid || res.Filename != "" {
		t.Fatalf("Challenge = %+v, %v", res, err)
	}
	if ok, err := b.client.Validate(context.Background(), zone, testConf, "token.value.sig"); err != nil || !ok {
		t.Fatalf("Validate = %v, %v", ok, err)
	}
}
