package cloudflare

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter caps what RetryAfter returns: a garbled header must not
// pause a whole fleet for days.
const MaxRetryAfter = time.Hour

// RetryAfter returns how long the answer with headers h asks the client to
// wait, as of now: the largest of
//
//   - Retry-After, in seconds or as an HTTP-date;
//   - the t parameter of each item of a Ratelimit header
//     (`"default";r=0;t=30`, draft-ietf-httpapi-ratelimit-headers), when its
//     remaining quota r is 0 or absent, and the older dictionary form
//     `limit=1200, remaining=0, reset=30`;
//   - Ratelimit-Reset or X-Ratelimit-Reset when the matching -Remaining
//     header is 0 or absent.
//
// A number of seconds above 1e9 is taken for a Unix time (some APIs send
// X-Ratelimit-Reset so).
// A reset time whose quota is not exhausted is not a request to wait, and is
// ignored. The result is 0 when nothing applies and at most MaxRetryAfter.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	var d time.Duration
	for _, v := range h.Values("Retry-After") {
		d = max(d, retryAfterValue(v, now))
	}
	for _, v := range h.Values("Ratelimit") {
		d = max(d, rateLimitField(v, now))
	}
	for _, prefix := range []string{"Ratelimit-", "X-Ratelimit-"} {
		reset := h.Get(prefix + "Reset")
		if reset != "" && exhausted(h.Get(prefix+"Remaining")) {
			d = max(d, seconds(reset, now))
		}
	}
	return min(d, MaxRetryAfter)
}

// retryAfterValue parses Retry-After: delay-seconds or an HTTP-date.
func retryAfterValue(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if v[0] >= '0' && v[0] <= '9' {
		return seconds(v, now)
	}
	t, err := http.ParseTime(v)
	if err != nil || !t.After(now) {
		return 0
	}
	return t.Sub(now)
}

// rateLimitField parses one Ratelimit header value.
func rateLimitField(v string, now time.Time) time.Duration {
	var d time.Duration
	dict := map[string]string{}
	for _, member := range strings.Split(v, ",") {
		params := map[string]string{}
		for _, p := range strings.Split(member, ";") {
			k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
			if !ok {
				continue // the item itself, e.g. "default"
			}
			k = strings.ToLower(strings.TrimSpace(k))
			val = strings.Trim(strings.TrimSpace(val), `"`)
			params[k] = val
			dict[k] = val
		}
		if t, ok := params["t"]; ok && exhausted(params["r"]) {
			d = max(d, seconds(t, now))
		}
	}
	if reset, ok := dict["reset"]; ok && exhausted(dict["remaining"]) {
		d = max(d, seconds(reset, now))
	}
	return d
}

// exhausted reports whether a remaining-quota value is 0 or absent.
func exhausted(remaining string) bool {
	remaining = strings.TrimSpace(remaining)
	if remaining == "" {
		return true
	}
	n, err := strconv.ParseFloat(remaining, 64)
	return err == nil && n <= 0
}

// epochThreshold separates a delay in seconds from a Unix time.
const epochThreshold = 1e9

// seconds parses a non-negative delay in seconds, or a Unix time (see
// epochThreshold); garbage gives 0. The result is not capped here.
func seconds(v string, now time.Time) time.Duration {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f <= 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	if f >= 100*epochThreshold {
		return MaxRetryAfter // past any plausible Unix time: garbage, capped
	}
	if f >= epochThreshold {
		d := time.Unix(int64(f), 0).Sub(now)
		return max(d, 0)
	}
	return time.Duration(f * float64(time.Second))
}
