package cloudflare_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
)

// canned answers every request with one response, without a network: the
// benchmarks measure the client's own work (request encoding, envelope
// decoding, classification).
type canned struct {
	status int
	header http.Header
	body   string
}

func (c canned) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	h := c.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/json")
	}
	return &http.Response{StatusCode: c.status, Header: h, Body: io.NopCloser(strings.NewReader(c.body)),
		ContentLength: int64(len(c.body)), Request: req}, nil
}

func benchClient(b *testing.B, c canned) *cloudflare.Client {
	b.Helper()
	cl, err := cloudflare.New(cloudflare.Config{BaseURL: "https://api.cloudflare.test/client/v4",
		Credentials: cloudflare.Credentials{APIToken: "bench-token"}, HTTPClient: &http.Client{Transport: c}})
	if err != nil {
		b.Fatal(err)
	}
	return cl
}

var (
	benchTarget = cloudflare.Target{Scope: cloudflare.ScopeZone, ID: "023e105f4ecef8ad9ca31a8372d0c353"}
	benchConf   = "s3://my-logs/http?region=us-east-1&access-key-id=AKIAIOSFODNN7EXAMPLE&secret-access-key=wJalrXUtnFEMI%2FK7MDENG"
	benchToken  = "eyJhbGciOiJIUzI1NiJ9.eyJpYXQiOjE3OTU0NjQwMDB9.c2lnbmF0dXJlLW9mLXRoZS1zaW11bGF0b3I"
)

// BenchmarkChallenge is one ownership challenge call answered with
// success: request encoding and envelope decoding.
func BenchmarkChallenge(b *testing.B) {
	cl := benchClient(b, canned{status: 200,
		body: `{"success":true,"errors":[],"messages":[],"result":{"filename":"http/ownership-challenge-6a1f0c2e.txt","message":"","valid":true}}`})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cl.Challenge(ctx, benchTarget, benchConf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClassify is one validate call per kind of answer: the envelope
// decoding and the classification of the error (stale token, rate limited
// with Retry-After, a proxy's HTML page, an authentication error).
func BenchmarkClassify(b *testing.B) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		want cloudflare.Kind
		ans  canned
	}{
		{"valid", 0, canned{status: 200, body: `{"success":true,"errors":[],"messages":[],"result":{"valid":true}}`}},
		{"stale_1002", cloudflare.StaleChallenge, canned{status: 400,
			body: `{"success":false,"errors":[{"code":1002,"message":"incorrect ownership challenge"}],"messages":[],"result":null}`}},
		{"rate_limited", cloudflare.RateLimited, canned{status: 429, header: http.Header{"Retry-After": {"10"}, "Ratelimit": {`"default";r=0;t=10`}},
			body: `{"success":false,"errors":[{"code":1015,"message":"More than 1200 requests per 5m0s reached."}],"messages":[],"result":null}`}},
		{"html_502", cloudflare.Transient, canned{status: 502, header: http.Header{"Content-Type": {"text/html"}},
			body: "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>"}},
		{"auth_403", cloudflare.Auth, canned{status: 403,
			body: `{"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"messages":[],"result":null}`}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cl := benchClient(b, tc.ans)
			b.ReportAllocs()
			for b.Loop() {
				_, err := cl.Validate(ctx, benchTarget, benchConf, benchToken)
				if tc.want == 0 {
					if err != nil {
						b.Fatal(err)
					}
					continue
				}
				var ae *cloudflare.APIError
				if !errors.As(err, &ae) || ae.Kind != tc.want {
					b.Fatalf("err = %v, want kind %v", err, tc.want)
				}
			}
		})
	}
}

// BenchmarkRetryAfter is reading the wait out of a 429's headers.
func BenchmarkRetryAfter(b *testing.B) {
	h := http.Header{"Retry-After": {"10"}, "Ratelimit": {`"default";r=0;t=10`}, "Ratelimit-Policy": {`"default";q=1200;w=300`}}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if cloudflare.RetryAfter(h, now) <= 0 {
			b.Fatal("no wait")
		}
	}
}
