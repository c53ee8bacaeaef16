package cloudflare_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
)

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		headers []string
		want    time.Duration
	}{
		{"none", nil, 0},
		{"seconds", []string{"Retry-After", "120"}, 2 * time.Minute},
		{"zero", []string{"Retry-After", "0"}, 0},
		{"HTTP-date", []string{"Retry-After", "Sun, 01 Mar 2026 12:00:45 GMT"}, 45 * time.Second},
		{"HTTP-date in the past", []string{"Retry-After", "Sun, 01 Mar 2026 11:00:00 GMT"}, 0},
		{"garbage", []string{"Retry-After", "soon"}, 0},
		{"negative", []string{"Retry-After", "-5"}, 0},
		{"capped", []string{"Retry-After", "999999999"}, cloudflare.MaxRetryAfter},
		{"Ratelimit exhausted", []string{"Ratelimit", `"default";r=0;t=30`}, 30 * time.Second},
		{"Ratelimit with spaces", []string{"Ratelimit", `"default"; r=0; t=12`}, 12 * time.Second},
		{"Ratelimit quota left", []string{"Ratelimit", `"default";r=50;t=30`}, 0},
		{"Ratelimit without r", []string{"Ratelimit", `"default";t=9`}, 9 * time.Second},
		{"Ratelimit several policies", []string{"Ratelimit", `"burst";r=3;t=5, "daily";r=0;t=40`}, 40 * time.Second},
		{"Ratelimit dictionary form", []string{"Ratelimit", "limit=1200, remaining=0, reset=25"}, 25 * time.Second},
		{"Ratelimit dictionary quota left", []string{"Ratelimit", "limit=1200, remaining=10, reset=25"}, 0},
		{"Ratelimit-Reset", []string{"Ratelimit-Remaining", "0", "Ratelimit-Reset", "17"}, 17 * time.Second},
		{"Ratelimit-Reset alone", []string{"Ratelimit-Reset", "17"}, 17 * time.Second},
		{"Ratelimit-Reset quota left", []string{"Ratelimit-Remaining", "3", "Ratelimit-Reset", "17"}, 0},
		{"X-Ratelimit-Reset epoch", []string{"X-Ratelimit-Remaining", "0", "X-Ratelimit-Reset", "1772366460"}, time.Minute},
		{"largest wins", []string{"Retry-After", "5", "Ratelimit", `"default";r=0;t=30`, "Ratelimit-Reset", "10"}, 30 * time.Second},
		{"largest wins, date", []string{"Retry-After", "Sun, 01 Mar 2026 12:02:00 GMT", "Ratelimit", `"default";r=0;t=30`}, 2 * time.Minute},
	}
	for _, tc := range cases {
		h := http.Header{}
		for i := 0; i+1 < len(tc.headers); i += 2 {
			h.Add(tc.headers[i], tc.headers[i+1])
		}
		if got := cloudflare.RetryAfter(h, now); got != tc.want {
			t.Errorf("%s: RetryAfter = %v, want %v", tc.name, got, tc.want)
		}
	}
}
