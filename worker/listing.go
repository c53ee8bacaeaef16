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
)

// Where the file's date cannot tell a new file from one already there
// (files within a second of their challenge, or a cold worker's first
// challenges), each challenge reads its path first: a storage request per
// destination. Where the challenges of one bucket come close together (a
// batch's first burst, or paths onboarded a few a second), one listing of
// the prefix their paths share stands for the reads of every challenge that
// goes within ClockSkew of it: the trust a path's record has (trustRecord),
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

// listOff is how long a bucket is not listed after a listing failed or did
// not reach the key it was for.
const listOff = 5 * time.Minute

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
	// have are the listings of the last ClockSkew, by when they were asked.
	have []listed
	// offUntil: no listing before then.
	offUntil time.Time
}

type listed struct {
	at time.Time
	l  destination.Listing
}

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
// returns a fresh listing that covers key, or the prefix to list when the
// group's last read was of another key within fresh; both zero: read.
func (ls *listings) note(g, key string, now time.Time, fresh time.Duration) (l destination.Listing, found bool, prefix string, list bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.groups == nil || len(ls.groups) >= listGroupsKept {
		ls.groups = make(map[string]*listGroup)
	}
	st := ls.groups[g]
	if st == nil {
		st = &listGroup{}
		ls.groups[g] = st
	}
	last, lastAt := st.last, st.lastAt
	st.last, st.lastAt = key, now
	kept := st.have[:0]
	for _, h := range st.have {
		if now.Sub(h.at) < fresh {
			kept = append(kept, h)
			if h.l.Covers(key) {
				l, found = h.l, true
			}
		}
	}
	st.have = kept
	if found || now.Before(st.offUntil) || last == "" || last == key || now.Sub(lastAt) > fresh {
		return l, found, "", false
	}
	return l, false, sharedDir(last, key), true
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

// fromListing returns what loc holds before r's challenge from a listing
// (ok), where one may stand for the read (see listings): one of the last
// ClockSkew that covers it, or one asked now of the prefix it shares with
// the bucket's last read, when that was of another path within ClockSkew.
func (h *handlers) fromListing(ctx context.Context, r *run, record string, loc destination.Location) (before string, ok bool) {
	if !destination.Lists(h.reader, loc.Scheme) {
		return "", false
	}
	g := listGroupKey(loc)
	now := h.now()
	fresh := h.cfg.ClockSkew - skipMargin
	l, found, prefix, list := h.lists.note(g, loc.Key, now, fresh)
	if !found && !list {
		return "", false
	}
	if r.d.Gen > 0 || record != "" || r.contended || h.priorHere(r) {
		return "", false
	}
	if list {
		lister := h.reader.(destination.Lister) // Lists said so
		ploc := loc
		ploc.Key = prefix
		v, err, _ := h.lists.flight.Do(g+"\x00"+prefix, func() (any, error) {
			at := h.now()
			l, err := lister.List(h.clocked(ctx, loc), ploc)
			h.storage(r.conf.Type, err)
			if err != nil {
				r.log.Info("bucket not listed: its paths are read before their challenges", "prefix", r.clean(ploc.String()), "err", r.clean(err.Error()))
			}
			h.lists.keep(g, loc.Key, at, l, err)
			return listed{at: at, l: l}, err
		})
		if err != nil {
			return "", false
		}
		got := v.(listed)
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
