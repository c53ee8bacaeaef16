package simulator

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// hugeBodyBytes is the size of a HostileHuge answer.
const hugeBodyBytes = 5 << 20

// codeRateLimited is the simulator's 429 code (see doc.go).
const codeRateLimited = 1015

// codeServerError is the simulator's 5xx code.
const codeServerError = 10002

// window is one credential's sliding window of request times, a deque in a
// slice: times[head:] are the requests of the last RateWindow.
type window struct {
	times        []int64 // Unix nanoseconds, ascending
	head         int
	penaltyUntil time.Time
}

// add records a request at now and returns the requests in (now-span, now].
func (w *window) add(now time.Time, span time.Duration) int {
	cutoff := now.Add(-span).UnixNano()
	for w.head < len(w.times) && w.times[w.head] <= cutoff {
		w.head++
	}
	if w.head > 64 && w.head*2 > len(w.times) {
		n := copy(w.times, w.times[w.head:])
		w.times, w.head = w.times[:n], 0
	}
	w.times = append(w.times, now.UnixNano())
	return len(w.times) - w.head
}

// reset is how long until the oldest request in the window leaves it.
func (w *window) reset(now time.Time, span time.Duration) time.Duration {
	if w.head >= len(w.times) {
		return 0
	}
	return max(time.Unix(0, w.times[w.head]).Add(span).Sub(now), 0)
}

// ceilSeconds rounds d up to whole seconds, at least 1.
func ceilSeconds(d time.Duration) int {
	return max(int((d+time.Second-1)/time.Second), 1)
}

// rateLimited records the request in its credential's window and answers
// 429 when Cloudflare's limit is exceeded or its penalty is running. With
// RateLimit set, every answer carries Ratelimit and Ratelimit-Policy headers.
func (s *Simulator) rateLimited(w http.ResponseWriter, cred credential) bool {
	if s.cfg.RateWindow <= 0 {
		return false
	}
	now := s.cfg.Now()
	s.mu.Lock()
	win := s.windows[cred.key]
	if win == nil {
		win = &window{}
		s.windows[cred.key] = win
	}
	n := win.add(now, s.cfg.RateWindow)
	s.stats.MaxInWindow = max(s.stats.MaxInWindow, n)
	limit := cred.limit
	var wait time.Duration
	limited := false
	if limit > 0 {
		switch {
		case now.Before(win.penaltyUntil):
			limited, wait = true, win.penaltyUntil.Sub(now)
		case n > limit:
			win.penaltyUntil = now.Add(s.cfg.Penalty)
			limited, wait = true, s.cfg.Penalty
		}
		remaining, reset := max(limit-n, 0), win.reset(now, s.cfg.RateWindow)
		if limited {
			remaining, reset = 0, wait
		}
		w.Header().Set("Ratelimit", fmt.Sprintf(`"default";r=%d;t=%d`, remaining, ceilSeconds(reset)))
		w.Header().Set("Ratelimit-Policy", fmt.Sprintf(`"default";q=%d;w=%d`, limit, ceilSeconds(s.cfg.RateWindow)))
	}
	if limited {
		s.stats.RateLimitedLimit++
	}
	s.mu.Unlock()
	if limited {
		f := fail(http.StatusTooManyRequests, message{Code: codeRateLimited, Message: fmt.Sprintf(
			"More than %d requests per %s reached. Please wait and consider throttling your request speed", limit, s.cfg.RateWindow)})
		f.headers = map[string]string{"Retry-After": strconv.Itoa(ceilSeconds(wait))}
		writeFailure(w, f)
	}
	return limited
}

// fault is an injected misbehaviour.
type fault struct {
	status int    // 5xx or 429, or 0 for a hostile kind
	html   bool   // a 502 as an HTML page
	kind   string // hostile kind
}

// draw picks the fault of one call, if any.
func (s *Simulator) draw() (fault, bool) {
	c := s.cfg
	if c.ErrorRate == 0 && c.RateLimitRate == 0 && c.Hostile == 0 {
		return fault{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.rnd.Float64()
	switch {
	case u < c.ErrorRate:
		f := fault{status: []int{500, 502, 503}[s.rnd.IntN(3)]}
		f.html = f.status == 502 && s.rnd.IntN(2) == 0
		s.stats.ServerErrorsInjected++
		return f, true
	case u < c.ErrorRate+c.RateLimitRate:
		s.stats.RateLimitedInjected++
		return fault{status: http.StatusTooManyRequests}, true
	case u < c.ErrorRate+c.RateLimitRate+c.Hostile:
		f := fault{kind: c.HostileKinds[s.rnd.IntN(len(c.HostileKinds))]}
		s.stats.HostileInjected[f.kind]++
		return f, true
	}
	return fault{}, false
}

// inject answers the call with an injected fault and reports whether it did.
// A slow fault only delays: the call then proceeds, unless the client or
// Close gives up first.
func (s *Simulator) inject(w http.ResponseWriter, r *http.Request) bool {
	f, ok := s.draw()
	if !ok {
		return false
	}
	switch {
	case f.status == http.StatusTooManyRequests:
		e := fail(f.status, message{Code: codeRateLimited, Message: "Rate limited. Please wait and consider throttling your request speed"})
		e.headers = map[string]string{"Retry-After": "1"}
		writeFailure(w, e)
	case f.html:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(f.status)
		_, _ = w.Write([]byte(badGatewayHTML))
	case f.status > 0:
		e := fail(f.status, message{Code: codeServerError, Message: http.StatusText(f.status)})
		if f.status == http.StatusServiceUnavailable {
			e.headers = map[string]string{"Retry-After": "1"}
		}
		writeFailure(w, e)
	default:
		return s.hostile(w, r, f.kind)
	}
	return true
}

// okChallenge is a well-formed answer, cut short by HostileTruncated.
const okChallenge = `{"success":true,"errors":[],"messages":[],"result":{"filename":"logs/ownership-challenge-00000000.txt","message":"","valid":true}}`

const badGatewayHTML = `<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>cloudflare</center>
</body>
</html>
`

const captivePortalHTML = `<!DOCTYPE html>
<html><head><title>Network login required</title></head>
<body><p>Please sign in to continue.</p></body></html>
`

// hostile answers one hostile kind and reports whether the call is answered.
func (s *Simulator) hostile(w http.ResponseWriter, r *http.Request, kind string) bool {
	switch kind {
	case HostileHTML:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(captivePortalHTML))
	case HostileTruncated:
		// The declared length is never reached: net/http closes the
		// connection and the client reads an unexpected EOF.
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(okChallenge)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(okChallenge[:len(okChallenge)/2]))
	case HostileHuge:
		head := []byte(`{"success":true,"errors":[],"messages":[],"result":{"filename":"`)
		tail := []byte(`","message":"","valid":true}}`)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(head)+hugeBodyBytes+len(tail)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(head)
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for n := 0; n < hugeBodyBytes; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return true // the client stopped reading
			}
		}
		_, _ = w.Write(tail)
	case HostileNoResult:
		writeJSON(w, http.StatusOK, success(nil))
	case HostileRedirect:
		http.Redirect(w, r, "https://login.simulator.invalid/client/v4"+r.URL.Path, http.StatusFound)
	case HostileNotJSON:
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("upstream connect error or disconnect/reset before headers. reset reason: connection termination"))
	case HostileSlow:
		t := time.NewTimer(s.cfg.SlowDelay)
		defer t.Stop()
		select {
		case <-t.C:
			return false // answer normally, late
		case <-r.Context().Done():
		case <-s.ctx.Done():
		}
	}
	return true
}
