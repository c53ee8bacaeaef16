package worker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/location"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// Where the file's date cannot tell a new file from one already there
// (files within a second of their challenge, or a cold worker's first
// challenges), each challenge reads its path first: a storage request per
// destination. Where the challenges of one bucket come close together (a
// batch's first burst, or paths onboarded a few a second), the read before
// a challenge lists the prefix their paths share (listFlow), and that
// listing stands for the reads of every challenge that goes within
// ClockSkew of it: the trust a path's record has (trustRecord),
// for the same reason. A file written before the request less ClockSkew is
// refused by its date; one written between the listing and the request, by
// someone else, could pass for the challenge's, as it could within a
// record's second.
//
// A listing stands only for a path that no destination of this fleet used
// lately (no record: the path's last holder, if any, let go over RecordTTL
// ago) and nobody waits for, and for a first challenge with no earlier run's
// challenge there: for those, a challenge after the listing may have written
// the file since. An object listed counts as absent when the poll would
// refuse it by its date anyway; a recent one is read. A bucket whose listing
// fails (no s3:ListBucket: reads do not need it) or fills its page before
// the key is not listed again for listOff: its paths are read, as without
// listings.
//
// Polls use listings too (pollListed): where files take seconds, the polls
// of a bucket's challenges miss a few times each, a read per look, and one
// listing stands for the looks of every poll there while it is recent
// enough, and wakes those whose files it shows.

// listFlow is how recent the bucket's last read before a challenge, of
// another path, makes a read before a challenge a listing: challenges are
// flowing there (paced by the API budget, with pauses of a few seconds, and
// the reads of those whose files' dates tell skipped), and the next that
// comes within ClockSkew stands on that listing, as on none of a read. A
// listing that none uses costs a request, as the read would.
const listFlow = 10 * time.Second

// listOff is how long a bucket is not listed after a listing failed or did
// not reach the key it was for.
const listOff = 5 * time.Minute

// A listing pays for itself when it stands for the looks of two polls or
// more (one is a read for a read): where files come within a second or
// two, most polls that use it find their files in it, and read them
// anyway. So a poll asks for a listing only where the last one polls asked
// for stood for listYield looks, or was asked over listRetry ago.
const (
	listYield = 2
	listRetry = 5 * time.Second
)

// listBurst is how close together polls of a bucket come in one burst (a
// warm-up, a listing's wake-ups): a poll that another's read began within
// it lists, as after another's miss.
const listBurst = 100 * time.Millisecond

// listKept is the oldest listing a poll stands on: one that waited 16 s
// or more.
const listKept = 4 * time.Second

// listGroupsKept bounds the buckets remembered.
const listGroupsKept = 4096

// listings are a worker's recent listings and reads before challenges,
// per bucket and identity.
type listings struct {
	mu     sync.Mutex
	groups map[string]*listGroup
	flight singleflight.Group
}

type listGroup struct {
	// last is the key of the last read before a challenge, at lastAt.
	last   string
	lastAt time.Time
	// missed is the key of the last poll that missed its file, at
	// missedAt (see pollListed).
	missed   string
	missedAt time.Time
	// reading is the key of the last poll that read, from readingAt.
	reading   string
	readingAt time.Time
	// waiting are the polls that missed their files, by key: a listing
	// that shows a new file there wakes its poll.
	waiting map[string]waitingPoll
	// polled is when the last listing a poll asked for was asked, stood
	// how many looks stood on it.
	polled time.Time
	stood  int
	// have are the listings of the last listKept, by when they were asked.
	have []listed
	// offUntil: no listing before then.
	offUntil time.Time
}

type listed struct {
	at time.Time
	l  destination.Listing
}

// waitingPoll is a poll that missed its file: d's, for a file dated from
// notBefore on, other than the one dated seen it found (zero: none), until
// its deadline.
type waitingPoll struct {
	d               tasks.Dest
	notBefore, seen time.Time
	until           time.Time
}

// waitingKept bounds the polls a bucket keeps to wake.
const waitingKept = 4096

// listGroupKey names loc's bucket as read by its identity.
func listGroupKey(loc destination.Location) string {
	return storeKey(loc) + "|" + fmt.Sprint(loc.As)
}

// sharedDir is the prefix, to its last "/", that keys a and b share: "" for
// the whole bucket.
func sharedDir(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return a[:strings.LastIndexByte(a[:n], '/')+1]
}

// note records a read before a challenge of key in group g at now, and
// returns a fresh listing that covers key, or, where it may ask, the
// prefix to list when the group's last read was of another key within
// listFlow; both zero: read. One that may not ask records the read only
// where a listing stands for it.
func (ls *listings) note(g, key string, now time.Time, fresh time.Duration, ask bool) (l destination.Listing, found bool, prefix string, list bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	st := ls.group(g)
	st.prune(now)
	for _, h := range st.have {
		if now.Sub(h.at) < fresh && h.l.Covers(key) {
			l, found = h.l, true
		}
	}
	if !found && !ask {
		return l, false, "", false
	}
	last, lastAt := st.last, st.lastAt
	st.last, st.lastAt = key, now
	if found || now.Before(st.offUntil) || last == "" || last == key || now.Sub(lastAt) > listFlow {
		return l, found, "", false
	}
	return l, false, sharedDir(last, key), true
}

// prune drops the listings older than listKept.
func (st *listGroup) prune(now time.Time) {
	kept := st.have[:0]
	for _, h := range st.have {
		if now.Sub(h.at) < listKept {
			kept = append(kept, h)
		}
	}
	st.have = kept
}

// group returns group g, new if need be. ls.mu is held.
func (ls *listings) group(g string) *listGroup {
	if ls.groups == nil || len(ls.groups) >= listGroupsKept {
		ls.groups = make(map[string]*listGroup)
	}
	st := ls.groups[g]
	if st == nil {
		st = &listGroup{}
		ls.groups[g] = st
	}
	return st
}

// keep adds a listing asked at at to group g; a failed one (err), or one
// whose page ends before key, turns the group's listings off for listOff.
func (ls *listings) keep(g, key string, at time.Time, l destination.Listing, err error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	st := ls.groups[g]
	if st == nil {
		return
	}
	if err != nil || !l.Covers(key) {
		st.offUntil = at.Add(listOff)
	}
	if err == nil {
		st.have = append(st.have, listed{at: at, l: l})
	}
}

// shown takes from group g's waiting polls those that listing l, asked at
// at, shows a new file for, and drops those past their deadline.
func (ls *listings) shown(g string, at time.Time, l destination.Listing) (wake []tasks.Dest) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	st := ls.groups[g]
	if st == nil {
		return nil
	}
	for key, w := range st.waiting {
		if !w.until.After(at) {
			delete(st.waiting, key)
			continue
		}
		if mod, there := l.ModTimes[key]; there && !mod.Before(w.notBefore) && !mod.Equal(w.seen) {
			delete(st.waiting, key)
			wake = append(wake, w.d)
		}
	}
	return wake
}

// found forgets the poll of key in group g, which found its file.
func (ls *listings) found(g, key string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if st := ls.groups[g]; st != nil {
		delete(st.waiting, key)
	}
}

// missedPoll records that the poll of key in group g missed its file at
// at, and waits for a listing to show it (w).
func (ls *listings) missedPoll(g, key string, at time.Time, w waitingPoll) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	st := ls.group(g)
	st.missed, st.missedAt = key, at
	if st.waiting == nil {
		st.waiting = make(map[string]waitingPoll)
	}
	if _, ok := st.waiting[key]; ok || len(st.waiting) < waitingKept {
		st.waiting[key] = w
	}
}

// forPoll returns a listing of group g asked since the challenge of key
// (after) and within age of now that covers key (found), or the prefix to
// list (list) when the group's last poll to read began within listBurst,
// or, where afterMiss, its last poll to miss was of another key within
// fresh; both zero: read.
func (ls *listings) forPoll(g, key string, after, now time.Time, age, fresh time.Duration, afterMiss bool) (l destination.Listing, at time.Time, found bool, prefix string, list bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	st := ls.group(g)
	st.prune(now)
	for _, h := range st.have {
		if !h.at.Before(after) && now.Sub(h.at) < age && h.l.Covers(key) && h.at.After(at) {
			l, at, found = h.l, h.at, true
		}
	}
	if found {
		return l, at, true, "", false
	}
	other := ""
	switch {
	case now.Before(st.offUntil), st.stood < listYield && now.Sub(st.polled) < listRetry:
	case afterMiss && st.missed != "" && st.missed != key && now.Sub(st.missedAt) <= fresh:
		other = st.missed
	case st.reading != "" && st.reading != key && now.Sub(st.readingAt) <= listBurst:
		other = st.reading
	}
	if other == "" {
		st.reading, st.readingAt = key, now
		return l, at, false, "", false
	}
	return l, at, false, sharedDir(other, key), true
}

// pollUsed records that a poll of group g used the listing asked at at
// (asked: the poll asked for it), and whether its look stood on it.
func (ls *listings) pollUsed(g string, at time.Time, asked, stood bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	st := ls.groups[g]
	if st == nil {
		return
	}
	if asked && at.After(st.polled) {
		st.polled, st.stood = at, 0
	}
	if stood && at.Equal(st.polled) {
		st.stood++
	}
}

// fromListing returns what loc holds before r's challenge from a listing
// (ok), where one may stand for the read (see listings): one of the last
// ClockSkew that covers it, or, where it may ask, one asked now of the
// prefix it shares with the bucket's last read, when that was of another
// path within listFlow.
func (h *handlers) fromListing(ctx context.Context, r *run, record string, loc destination.Location, ask bool) (before string, ok bool) {
	if !destination.Lists(h.reader, loc.Scheme) {
		return "", false
	}
	g := listGroupKey(loc)
	now := h.now()
	fresh := h.cfg.ClockSkew - skipMargin
	l, found, prefix, list := h.lists.note(g, loc.Key, now, fresh, ask)
	if !found && !list {
		return "", false
	}
	if r.d.Gen > 0 || record != "" || r.contended || h.priorHere(r) {
		return "", false
	}
	if list {
		got, err := h.list(ctx, r, g, loc, prefix)
		if err != nil {
			return "", false
		}
		if l = got.l; !l.Covers(loc.Key) || h.now().Sub(got.at) >= fresh {
			return "", false
		}
	}
	mod, there := l.ModTimes[loc.Key]
	if there && !mod.Before(h.notBefore(loc, now)) {
		return "", false // recent: its digest tells it from the challenge's
	}
	return location.Absent, true
}

// list lists prefix in loc's bucket, group g, for r, one listing at a
// time per prefix, and wakes the polls it shows files for.
func (h *handlers) list(ctx context.Context, r *run, g string, loc destination.Location, prefix string) (listed, error) {
	lister := h.reader.(destination.Lister) // Lists said so
	ploc := loc
	ploc.Key = prefix
	v, err, _ := h.lists.flight.Do(g+"\x00"+prefix, func() (any, error) {
		at := h.now()
		l, err := lister.List(h.clocked(ctx, loc), ploc)
		h.storage(r.conf.Type, destination.OpList, err)
		if err != nil {
			r.log.Info("bucket not listed: its paths are read one by one", "prefix", r.clean(ploc.String()), "err", r.clean(err.Error()))
		}
		h.lists.keep(g, loc.Key, at, l, err)
		if err == nil && h.leases.waker != nil {
			for _, d := range h.lists.shown(g, at, l) {
				h.runPollAfter(d, 0, nil)
			}
		}
		return listed{at: at, l: l}, err
	})
	if err != nil {
		return listed{}, err
	}
	return v.(listed), nil
}

// pollListed says whether a listing stands for the look of r's poll at
// loc for a file dated from notBefore on, of the challenge requested at
// requestedAt, which has waited since: a miss (at, when listed) where the
// listing shows no such file. Where files take seconds, the polls of a
// bucket's challenges miss a few times each, a read per look: once a poll
// of another path missed within ClockSkew (or began to read within
// listBurst), one listing of the prefix the two share stands for the looks
// of every poll there while it is no older than a quarter of their wait
// (a look that much earlier; at most listKept), and wakes the polls that
// missed before for the new files it shows. A listing is a read of every
// path at once: no file it shows absent or too old could have been taken
// then; a new one is read. Where the last listing polls asked for stood
// for fewer than listYield looks, polls read for listRetry. A poll that
// waited less than ClockSkew asks for one after another's miss only: a
// listing that young stands for the looks of scoutLook, few, and where
// files come that fast most polls that miss find their files at their
// next look. Polls that come together (a batch's first burst, whose first
// polls all come about a second after their challenges) share one listing
// however young: it stands for every look of the burst that misses, and
// those that find their files read them, as they would. g is loc's group
// (pollGroup).
func (h *handlers) pollListed(ctx context.Context, r *run, g string, loc destination.Location, requestedAt, notBefore time.Time, waited time.Duration) (at time.Time, absent, ok bool) {
	fresh := h.cfg.ClockSkew - skipMargin
	age := min(max(h.scoutLook(), waited/4), listKept)
	if waited < h.holdFrom() && h.scouting(r) {
		// The scout learns when files appear, for every first poll it
		// wakes: while files may come after a second or so, a listing
		// stands for its look only while no older than a quarter of the
		// time to its next. One a quarter second old that did not show
		// its file made it find the file half a second late, and every
		// first poll woken by it look late. Past that, the scout's
		// reads cost more than its precision gains: where files come
		// after 5-10 s, 0.05-0.1 storage requests per destination.
		age = h.scoutGap(waited) / 4
	}
	l, at, found, prefix, list := h.lists.forPoll(g, loc.Key, requestedAt, h.now(), age, fresh, waited >= h.cfg.ClockSkew)
	if !found && !list {
		return at, false, false
	}
	if list {
		got, err := h.list(ctx, r, g, loc, prefix)
		if err != nil || !got.l.Covers(loc.Key) || got.at.Before(requestedAt) {
			return at, false, false
		}
		l, at = got.l, got.at
	}
	mod, there := l.ModTimes[loc.Key]
	stood := !there || mod.Before(notBefore) // else a new file: read it
	h.lists.pollUsed(g, at, list, stood)
	return at, !there, stood
}

// pollGroup is the listing group of r's poll at loc (listGroupKey), where
// listings may stand for its looks (ok; see pollListed): not on a
// contended path, whose polls wait for a previous holder's file to be
// replaced, nor where the bucket does not list.
func (h *handlers) pollGroup(r *run, loc destination.Location) (g string, ok bool) {
	if r.contended || !destination.Lists(h.reader, loc.Scheme) {
		return "", false
	}
	return listGroupKey(loc), true
}

// priorHere says whether an earlier run challenged at r's path: its write
// may have come after a listing.
func (h *handlers) priorHere(r *run) bool {
	if h.challenges == nil {
		return false
	}
	if _, ok := h.challenges.Prior(r.key.Hash, r.lease); ok {
		return true
	}
	_, ok := h.challenges.Pending(r.lease)
	return ok
}
