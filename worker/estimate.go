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
// window observations.
type appearance struct {
	mu  sync.Mutex
	obs ring
	// lows are the lower bounds of the precise observations: those whose
	// appearance was known within preciseHalf either way.
	lows ring
	// highs are the upper bounds of the observations measured on a
	// storage's clock: each file had appeared by then.
	highs ring
	// bys are the upper bounds of the observations on this host's clock:
	// each file had appeared by the end of the read that found it, or by
	// what its date says where that is sooner.
	bys ring
	// cache is firstPoll's answer for obs as it was after n additions.
	cache struct {
		n int
		d time.Duration
	}
}

// ring keeps the last window durations added.
type ring struct {
	vals         []time.Duration
	next, window int
	// added counts the durations ever added.
	added int
}

func (r *ring) add(d time.Duration) {
	r.added++
	if len(r.vals) < r.window {
		r.vals = append(r.vals, d)
		return
	}
	r.vals[r.next] = d
	r.next = (r.next + 1) % r.window
}

// preciseHalf is how far either way an observation's appearance may be
// unknown and still bound the fastest file from below (leastLow, in
// skipRead): a file dated to the second, found within a quarter second of
// the start of its second or of a look that missed it.
const preciseHalf = 250 * time.Millisecond

func newAppearance(window int) *appearance {
	return &appearance{obs: ring{window: window}, lows: ring{window: window}, highs: ring{window: window}, bys: ring{window: window}}
}

// observe records one file's appearance delay.
func (a *appearance) observe(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.obs.add(max(d, 0))
}

// observeLow records a precise observation's lower bound.
func (a *appearance) observeLow(d time.Duration) { a.addTo(&a.lows, d) }

// observeHigh records an observation's upper bound.
func (a *appearance) observeHigh(d time.Duration) { a.addTo(&a.highs, d) }

// observeBy records when, at the latest, an observed file had appeared.
func (a *appearance) observeBy(d time.Duration) { a.addTo(&a.bys, max(d, 0)) }

func (a *appearance) addTo(r *ring, d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r.add(d)
}

// leastHigh is the least upper bound of the recent observations measured
// on a storage's clock, once 8 were seen: the fastest of those files came
// no later. Where files come after 1-2 s, it is a second and a little,
// where the middle of what a file's date leaves open (least) less its half
// is half a second: a first challenge read first at most requests. n is
// how many it is the least of.
func (a *appearance) leastHigh() (least time.Duration, n int, ok bool) { return a.leastOf8(&a.highs) }

// leastLow is the least lower bound of the recent precise observations,
// once 8 were seen: no file of those came sooner.
func (a *appearance) leastLow() (time.Duration, bool) {
	least, _, ok := a.leastOf8(&a.lows)
	return least, ok
}

// leastOf8 is the least of r's durations, once 8 were added, and how many
// it is the least of.
func (a *appearance) leastOf8(r *ring) (least time.Duration, n int, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n = len(r.vals); n < 8 {
		return 0, n, false
	}
	return slices.Min(r.vals), n, true
}

// nextPoll is when, after its challenge, a poll that has waited and not
// found its file looks next, priced as the first poll is (cheapest) over
// the recent files that came later than waited: a look at what files this
// late took, not every PollInterval. Files after 5-10 s missed at 4 s
// were looked for at 5, 6.5, 8.75 and 12.1 s (about 4 reads each); now at
// 9 s or so, then 10. ok is false when no recent file came that late.
func (a *appearance) nextPoll(waited time.Duration, next func(n int) time.Duration) (at time.Duration, ok bool) {
	a.mu.Lock()
	var later []time.Duration
	for _, d := range a.obs.vals {
		if d > waited {
			later = append(later, d)
		}
	}
	a.mu.Unlock()
	if len(later) == 0 {
		return 0, false
	}
	slices.Sort(later)
	return cheapest(later, next), true
}

// longest is the longest of the recent appearance delays; 0 for none.
func (a *appearance) longest() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.obs.vals) == 0 {
		return 0
	}
	return slices.Max(a.obs.vals)
}

// leastFew is the shortest of the recent appearance delays, and how many
// there are: fewer than 8 too.
func (a *appearance) leastFew() (time.Duration, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.obs.vals) == 0 {
		return 0, 0
	}
	return slices.Min(a.obs.vals), len(a.obs.vals)
}

// firstPoll is the delay before the first poll: of the recent appearance
// delays from their 75th percentile on, the one a first poll costs least
// at (cheapest: latency and reads), at most hi, once 8 were seen (files
// after 1.00-1.10 s: the longest, not one in four a second late; after
// 1-2 s: the longest too, as many misses as it saves cost more than the
// half second's wait; after 1-5 s: the 75th percentile); before that the
// longest seen so far, at most def (a cold fleet's first files set the
// first poll of the destinations after them, rather than def for all: a
// small batch or a small tenant in a fresh fleet paid def on every row),
// or their median where that is later (files after 5-10 s: a look at def
// would miss every one); def while none was seen. While they are few, the
// longest is the latest any had appeared by (bys), not the middle of what
// the looks left open, and the median is a quarter of next(1) later (a
// scout's look, scoutLook; so is the longest where bys are unknown): where
// files came after 1.00-1.10 s, a scout's file found at 1.03 s, after a
// miss on another worker, was learnt at 0.59 s, woke the first polls
// before their files, and they found them a second later. next is the
// delay after the n-th miss. Below half a second (a negative def too) it
// is 0: asynq schedules in whole seconds, and a destination whose file is
// written with the challenge answer (p75 near 0) is best polled at once,
// through the pending list rather than the scheduled set.
func (a *appearance) firstPoll(def, hi time.Duration, next func(n int) time.Duration) time.Duration {
	return atOnce(a.firstLook(def, hi, next))
}

// atOnceBelow is the first poll's delay below which it is due at once.
const atOnceBelow = 500 * time.Millisecond

// atOnce is a first look's delay d as firstPoll gives it: 0 below
// atOnceBelow.
func atOnce(d time.Duration) time.Duration {
	if d < atOnceBelow {
		return 0
	}
	return d
}

// firstLook is firstPoll before it rounds a learnt delay below half a
// second to 0: when a look in the challenge task (lookFirst) is due. Where
// files come after 0-300 ms, a look at once missed most, and the poll
// after it too.
func (a *appearance) firstLook(def, hi time.Duration, next func(n int) time.Duration) time.Duration {
	a.mu.Lock()
	d := def
	switch {
	case len(a.obs.vals) == 0 && def < atOnceBelow:
		d = 0 // nothing learnt: at once
	case len(a.obs.vals) >= 8:
		if a.cache.n != a.obs.added {
			s := slices.Clone(a.obs.vals)
			slices.Sort(s)
			a.cache.n, a.cache.d = a.obs.added, cheapest(s, next)
		}
		d = min(a.cache.d, hi)
	case len(a.obs.vals) > 0:
		s := slices.Sorted(slices.Values(a.obs.vals))
		few := next(1) / 4
		longest := s[len(s)-1] + few
		if len(a.bys.vals) > 0 {
			longest = slices.Max(a.bys.vals)
		}
		d = min(longest, def)
		if mid := s[len(s)/2]; mid > d {
			d = min(mid+few, hi) // most files came later than def: a look at def would miss
		}
	}
	a.mu.Unlock()
	return max(d, 0)
}

// costedPolls bounds the polls cheapest counts for one file: a schedule
// that grows too slowly to reach it (--poll-interval 1ns does not grow)
// costs that many reads, however long the file took.
const costedPolls = 64

// cheapest is, of the sorted delays s from their 75th percentile on, the
// one a first poll costs least at, were the files those of s: the mean
// wait from each file's appearance to the poll that finds it, plus the
// mean count of polls, each a read, priced at the wait after a first miss
// (next(1), PollInterval). A read costs a storage request, counted against
// the destination, while the wait costs only latency, so where two cost
// about the same the later, with fewer reads, wins.
func cheapest(s []time.Duration, next func(n int) time.Duration) time.Duration {
	n := len(s)
	read := next(1)
	best, cost := s[n*3/4], time.Duration(math.MaxInt64)
	for k := n - 1; k >= n*3/4; k-- {
		if k < n-1 && s[k] == s[k+1] {
			continue
		}
		var c time.Duration
		for _, at := range s {
			poll, polls := s[k], 1
			for poll < at && polls < costedPolls {
				poll += next(polls)
				polls++
			}
			c += max(poll-at, 0) + read*time.Duration(polls)
		}
		if c < cost {
			best, cost = s[k], c
		}
	}
	return best
}
