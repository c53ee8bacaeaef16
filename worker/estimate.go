package worker

import (
	"math"
	"slices"
	"sync"
	"time"
)

// appearance learns how long after the challenge request the challenge file
// appears (its modification time less the request time), so the first poll
// can be scheduled when the file is most likely there: each miss costs a
// storage request and each late poll costs latency. It keeps the last
// window observations and answers their 75th percentile.
type appearance struct {
	mu  sync.Mutex
	obs ring
	// lows are the lower bounds of the precise observations: those whose
	// appearance was known within preciseHalf either way.
	lows ring
}

// ring keeps the last window durations added.
type ring struct {
	vals         []time.Duration
	next, window int
}

func (r *ring) add(d time.Duration) {
	if len(r.vals) < r.window {
		r.vals = append(r.vals, d)
		return
	}
	r.vals[r.next] = d
	r.next = (r.next + 1) % r.window
}

// preciseHalf is how far either way an observation's appearance may be
// unknown and still bound the fastest file from below (least, in
// skipRead): a file dated to the second, found within a quarter second of
// the start of its second or of a look that missed it.
const preciseHalf = 250 * time.Millisecond

func newAppearance(window int) *appearance {
	return &appearance{obs: ring{window: window}, lows: ring{window: window}}
}

// observe records one file's appearance delay.
func (a *appearance) observe(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.obs.add(max(d, 0))
}

// observeLow records a precise observation's lower bound.
func (a *appearance) observeLow(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lows.add(d)
}

// leastLow is the least lower bound of the recent precise observations,
// once 8 were seen: no file of those came sooner.
func (a *appearance) leastLow() (time.Duration, bool) { return a.leastOf(&a.lows) }

// least is the shortest of the recent appearance delays, once 8 were seen.
func (a *appearance) least() (time.Duration, bool) { return a.leastOf(&a.obs) }

func (a *appearance) leastOf(r *ring) (time.Duration, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(r.vals) < 8 {
		return 0, false
	}
	return slices.Min(r.vals), true
}

// firstPoll is the delay before the first poll: the 75th percentile of the
// recent appearance delays, or a later one where waiting for it costs less
// than the misses it saves, each a miss (PollInterval) late, at most hi,
// once 8 were seen (files after 1.00-1.10 s: the longest, not one in four
// a second late; after 1-5 s: the 75th percentile); before that the
// longest seen so far, at most def (a cold fleet's first files set the
// first poll of the destinations after them, rather than def for all: a
// small batch or a small tenant in a fresh fleet paid def on every row);
// def while none was seen. Below half a second (a negative def too) it is
// 0: asynq schedules in whole seconds, and a destination whose file is
// written with the challenge answer (p75 near 0) is best polled at once,
// through the pending list rather than the scheduled set.
func (a *appearance) firstPoll(def, hi, miss time.Duration) time.Duration {
	a.mu.Lock()
	d := def
	switch {
	case len(a.obs.vals) >= 8:
		s := slices.Clone(a.obs.vals)
		slices.Sort(s)
		d = min(cheapest(s, miss), hi)
	case len(a.obs.vals) > 0:
		d = min(slices.Max(a.obs.vals), def)
	}
	a.mu.Unlock()
	if d < 500*time.Millisecond {
		return 0
	}
	return d
}

// cheapest is, of the sorted delays s from their 75th percentile on, the
// one that minimizes itself plus miss times the share of s longer than it:
// the expected wait of a first poll there, a miss costing miss more.
func cheapest(s []time.Duration, miss time.Duration) time.Duration {
	n := len(s)
	best, cost := s[n*3/4], time.Duration(math.MaxInt64)
	longer := 0 // how many of s are longer than s[k]
	for k := n - 1; k >= n*3/4; k-- {
		if k < n-1 && s[k] < s[k+1] {
			longer = n - 1 - k
		}
		if c := s[k] + miss*time.Duration(longer)/time.Duration(n); c <= cost {
			best, cost = s[k], c
		}
	}
	return best
}
