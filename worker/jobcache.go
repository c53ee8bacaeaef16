package worker

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
)

// jobCache keeps the Logpush jobs of each zone or account of a batch round,
// so that a batch lists the jobs of a zone once rather than once per row:
// the job stage looks there before it creates (creating is not idempotent),
// and adds what it creates. A listing is trusted for ttl; a task that runs
// again after an error lists afresh, since a create that failed transiently
// may have made its job.
//
// Rows of one batch are distinct jobs (scope, id, dataset, conf), so the
// jobs another worker process creates meanwhile are never the one a row
// looks for; a re-run is another batch or round, and lists again.
type jobCache struct {
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	m  map[jobScope]*jobEntry
}

// jobScope is one zone or account of one batch round.
type jobScope struct {
	batch  string
	round  int
	target cloudflare.Target
}

// jobEntry is the listing of one jobScope. mu is held while listing, so
// that concurrent rows of one zone wait for one listing.
type jobEntry struct {
	mu   sync.Mutex
	jobs []cloudflare.Job
	at   time.Time
	ok   bool
}

// maxJobScopes bounds the cache: past it, expired listings are dropped.
const maxJobScopes = 4096

func newJobCache(ttl time.Duration, now func() time.Time) *jobCache {
	return &jobCache{ttl: ttl, now: now, m: make(map[jobScope]*jobEntry)}
}

func (c *jobCache) entry(k jobScope) *jobEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[k]
	if e == nil {
		if len(c.m) >= maxJobScopes {
			c.sweep()
		}
		e = &jobEntry{}
		c.m[k] = e
	}
	return e
}

// sweep drops expired listings; c.mu is held. An entry being listed is
// locked and kept.
func (c *jobCache) sweep() {
	for k, e := range c.m {
		if e.mu.TryLock() {
			if !e.ok || c.now().Sub(e.at) >= c.ttl {
				delete(c.m, k)
			}
			e.mu.Unlock()
		}
	}
}

// find returns the job of k with dataset and the byte-identical conf, if
// the cached (or, when fresh or expired, a new) listing has one. list is
// called only when the cache cannot answer.
func (c *jobCache) find(ctx context.Context, k jobScope, dataset, conf string, fresh bool,
	list func(context.Context) ([]cloudflare.Job, error)) (cloudflare.Job, bool, error) {
	e := c.entry(k)
	e.mu.Lock()
	defer e.mu.Unlock()
	if fresh || !e.ok || c.now().Sub(e.at) >= c.ttl {
		jobs, err := list(ctx)
		if err != nil {
			e.ok = false
			return cloudflare.Job{}, false, err
		}
		e.jobs, e.at, e.ok = jobs, c.now(), true
	}
	i := slices.IndexFunc(e.jobs, func(j cloudflare.Job) bool { return j.Dataset == dataset && j.DestinationConf == conf })
	if i < 0 {
		return cloudflare.Job{}, false, nil
	}
	return e.jobs[i], true, nil
}

// add records a job just created in k's listing.
func (c *jobCache) add(k jobScope, j cloudflare.Job) {
	e := c.entry(k)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ok {
		e.jobs = append(e.jobs, j)
	}
}

// forget drops k's listing: a create may have made a job the listing lacks.
func (c *jobCache) forget(k jobScope) {
	e := c.entry(k)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ok = false
}
