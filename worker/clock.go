package worker

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/destination"
)

// A storage dates its files on its own clock. Each of its responses
// bounds that clock's lead over this host's (destination.ClockSample):
// its Date, to the second, fell between the request's send and the
// response's receipt. The bounds of a store's recent responses, together,
// measure the lead to a round trip, where ClockSkew only assumes it. With
// them a file's date tells when it was written on this host's clock, and
// the read before a challenge can be skipped for files that come only a
// fraction of a second after their request (skipRead).

const (
	// clockSamples is how many recent responses a store's bounds come from.
	clockSamples = 32
	// clockAge is how old a response may be and still bound the clock:
	// clocks drift apart, by a few milliseconds a minute at worst.
	clockAge = 5 * time.Minute
	// clockDrift widens the measured bounds for that drift.
	clockDrift = 20 * time.Millisecond
)

// storeClock holds a store's recent clock samples.
type storeClock struct {
	samples [clockSamples]destination.ClockSample
	n, next int
}

// clocks measures each store's clock, by storeKey.
type clocks struct {
	mu     sync.Mutex
	stores map[string]*storeClock
	now    func() time.Time
}

func newClocks(now func() time.Time) *clocks {
	return &clocks{stores: make(map[string]*storeClock), now: now}
}

// storeKey names the store (and so the clock) of a location: the bucket or
// container, with its account, region or endpoint. A file's key is not
// part of it.
func storeKey(loc destination.Location) string {
	return loc.Scheme + "|" + loc.Account + "|" + loc.Region + "|" + loc.Bucket
}

func (c *clocks) add(key string, s destination.ClockSample) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sc := c.stores[key]
	if sc == nil {
		sc = &storeClock{}
		c.stores[key] = sc
	}
	sc.samples[sc.next] = s
	sc.next = (sc.next + 1) % clockSamples
	sc.n = min(sc.n+1, clockSamples)
}

// clockBounds is what a store's clock is known to be: ahead of this host's
// by at least lo and at most hi, dating files to res.
type clockBounds struct {
	lo, hi, res time.Duration
}

// bounds returns the store's clock bounds from its recent responses; ok is
// false while there are none, or when they disagree (the clock was set
// meanwhile): then ClockSkew is all there is.
func (c *clocks) bounds(key string) (b clockBounds, ok bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	sc := c.stores[key]
	if sc == nil {
		return clockBounds{}, false
	}
	for i := 0; i < sc.n; i++ {
		s := sc.samples[i]
		if now.Sub(s.Received) > clockAge {
			continue
		}
		lo, hi := s.Offset()
		if !ok {
			b, ok = clockBounds{lo: lo, hi: hi, res: s.Resolution}, true
			continue
		}
		b.lo, b.hi, b.res = max(b.lo, lo), min(b.hi, hi), max(b.res, s.Resolution)
	}
	if !ok || b.lo > b.hi {
		return clockBounds{}, false
	}
	b.lo, b.hi = b.lo-clockDrift, b.hi+clockDrift
	return b, true
}

// clockOf returns loc's store clock bounds: measured, or else (measured
// false) what ClockSkew assumes, with dates to the second.
func (h *handlers) clockOf(loc destination.Location) (b clockBounds, measured bool) {
	if b, ok := h.clocks.bounds(storeKey(loc)); ok {
		return b, true
	}
	return clockBounds{lo: -h.cfg.ClockSkew, hi: h.cfg.ClockSkew, res: time.Second}, false
}

// read reads loc, measuring its store's clock on the way.
func (h *handlers) read(ctx context.Context, loc destination.Location, notBefore time.Time) (destination.Object, error) {
	return h.reader.Read(h.clocked(ctx, loc), loc, notBefore)
}

// clocked returns ctx with what the storage of loc answers measuring its
// clock (clocks): a read's responses, or a listing's.
func (h *handlers) clocked(ctx context.Context, loc destination.Location) context.Context {
	key := storeKey(loc)
	return destination.WithClock(ctx, func(s destination.ClockSample) { h.clocks.add(key, s) })
}

// misses remembers, per challenge, when this worker last looked for its
// file in vain (read start): the file was written after that. A look that
// then finds it learns its appearance within a poll interval, where its
// date alone (to the second) leaves a second open: learnt that way, files
// after 0.9-1.1 s were learnt as after 0.55 s at the least, and first
// polls came early and missed. Polls of one challenge that run on other
// workers learn from the date alone.
type misses struct {
	mu sync.Mutex
	at map[string]time.Time
}

// missesKept bounds the map: challenges whose poll moved to another worker
// leave their entry behind.
const missesKept = 4096

func (m *misses) note(key string, t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.at == nil || len(m.at) >= missesKept {
		m.at = make(map[string]time.Time)
	}
	m.at[key] = t
}

// has says whether this worker missed key's file.
func (m *misses) has(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.at[key]
	return ok
}

// take returns and forgets the last miss of key; zero for none.
func (m *misses) take(key string) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.at[key]
	delete(m.at, key)
	return t
}

// challengeKey names one challenge of r's destination, requested at
// requestedAt.
func challengeKey(r *run, requestedAt time.Time) string {
	return r.key.Hash + "/" + strconv.Itoa(r.d.Gen) + "/" + strconv.FormatInt(requestedAt.UnixNano(), 36)
}
