package worker

import (
	"math"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/destination"
)

// The read before a challenge (readBefore) tells a file already on the path
// from the one the challenge writes, however recent it looks: S3 and Azure
// date files to the second. It costs a storage read per destination. Where
// files are known to appear late enough after their challenge, a file's date
// tells alone: one dated no earlier than the request, on the storage's clock
// at its fastest (clockOf: measured, or ClockSkew ahead), was written
// after it. So a first challenge skips the read when even the fastest
// recent file, written that long after this request, would be so dated
// (skipRead); its poll then takes only a file so dated (undated). A file
// dated earlier is never taken, however new: it may be another tool's
// challenge written just before this one. The destination asks for a fresh
// challenge instead, which reads first.
//
// With dates to the second, whether the fastest file is so dated depends
// on where in its second the request falls: a request late in a second has
// its file dated the next one. Where the request falls wrong, the challenge
// waits for the next second, when that is within phaseWait (with an API
// budget, none: it takes a later grant instead, see the accept of
// waitTurn); else it reads.

// unread is PollPayload.Before, and the challenge record's, of a challenge
// whose path was not read before it.
const unread = "unread"

// skipMargin covers the time from skipRead's look at the clock to the
// request.
const skipMargin = 50 * time.Millisecond

// highMargin is how much sooner than the least upper bound of the recent
// files (leastHigh) skipRead takes the next file to come, at least: what
// the least of many upper bounds overstates the fastest file by, mostly.
const highMargin = 250 * time.Millisecond

// highSlack is what the least of n upper bounds overstates the fastest
// file by, at most, nine times in ten: each bound is up to a date's unit
// (res) late, evenly, where files come over a second or more, and the
// least of n such is over x late with odds (1-x*x/2)^n (x in units), a
// tenth at x = sqrt(4.6/n). The 8 bounds of a batch's first seconds
// overstate it by up to 0.76 s: where files came after 0.5-1.5 s they
// made the guess 0.65-0.77 s, and a file dated too early to tell cost a
// fresh challenge (2 calls and 2 reads) 1 to 6 times a batch of 50. The
// 64 of a worker that has seen as many files, by 0.27 s.
func highSlack(n int, res time.Duration) time.Duration {
	return max(highMargin, time.Duration(float64(res)*math.Sqrt(4.6/float64(n))))
}

// skipRead reports whether r's challenge may go without the read before it,
// and how long it waits first, or whether it could where its request fell
// elsewhere in its second (phased), wait from now: a first challenge, on a
// path whose record (what its last holder saw there) is old enough for the
// poll to refuse that holder's file by its date, once the worker has seen
// files appear late enough (or, cold, its scout has missed its own file
// late enough).
func (h *handlers) skipRead(r *run, record string, loc destination.Location) (skip bool, wait time.Duration, phased bool) {
	if r.d.Gen > 0 {
		return false, 0, false
	}
	now := h.now()
	if _, at, ok := parseRecord(record); ok && !at.Before(now.Truncate(time.Second).Add(-h.cfg.ClockSkew-time.Second)) {
		return false, 0, false // its holder's file may be dated within the poll's reach
	}
	least, seen := h.seen.leastFew()
	cold := seen == 0
	if cold {
		// A scout's miss bounds the files' delays from below, as a file
		// seen would (its half, below: one file). Where files come after
		// 5-10 s, the scout has missed at 2-4 s while the batch's first
		// dozen challenges go out, each with a read before it otherwise.
		// A guess too long costs a fresh challenge, never a wrong file:
		// the poll refuses a file dated too early to tell. So cold, only
		// a bound that tells wherever the request falls in its second
		// will do (the scout missed at 3 s or so): where files come
		// after 1-2 s, a miss at 1.5 s is no bound for the next file.
		if least = h.cold.missed(); least <= 0 {
			return false, 0, false
		}
	}
	b, measured := h.clockOf(loc)
	var fastest time.Duration
	if measured {
		// A learnt delay is the middle of what the file's date and the
		// clock's bounds leave open (appeared): the fastest file may have
		// come half of that earlier.
		base := least - (b.res+b.hi-b.lo)/2
		better := base
		low, lowOK := h.seen.leastLow()
		if lowOK {
			// Files known to within a quarter second bound it better.
			better = low
		}
		if high, n, ok := h.seen.leastHigh(); ok {
			// A guess: the fastest recent file came no later than high,
			// and the next is unlikely to come much sooner. Too long a
			// guess costs a fresh challenge for a file dated too early
			// (the poll refuses it), never a wrong file. It also bounds
			// the precise files' lows: those are the files found just
			// after a look that missed them, and where first polls come
			// late, the slow ones. Files after 0.5-1.5 s, their least
			// low was 0.98 s, and a third of the challenges that counted
			// on it asked again.
			guess := high - highSlack(n, b.res)
			if better = guess; lowOK && low < guess {
				better = low
			}
		}
		fastest = max(base, better)
	} else {
		// What ClockSkew assumes: the poll takes a file dated ClockSkew
		// after the request. Its clock is taken for this host's when it
		// comes to when the fastest file is dated, with a second of doubt:
		// a wrong guess costs a fresh challenge, never a wrong file.
		b = clockBounds{hi: h.cfg.ClockSkew, res: time.Second}
		fastest = least - time.Second
	}
	if seen < 8 {
		// Too few files to bound the fastest by: half the least of them.
		// A batch's first challenges all read first otherwise, until 8
		// files are seen (files after 5-10 s: for its first 10 s or so).
		fastest = min(fastest, least/2)
	}
	// It is written, on the storage's clock, at or after y for a request
	// now, and dated y's unit of res; the poll takes it if that is no
	// earlier than the request at the clock's fastest, now+hi: if y lies
	// within slack of the start of its unit, however the request comes
	// within skipMargin.
	slack := fastest + b.lo - b.hi - skipMargin
	if slack <= 0 {
		return false, 0, false
	}
	if b.res <= 0 || slack >= b.res {
		return true, 0, false
	}
	if cold {
		return false, 0, false
	}
	y := now.Add(fastest + b.lo)
	phase := y.Sub(y.Truncate(b.res))
	if phase <= slack {
		return true, 0, false
	}
	if wait = b.res - phase; wait <= h.phaseWait(r, b) {
		return true, wait, false
	}
	return false, wait, true
}

// phaseWait is how long a challenge may wait for its request to fall where
// its file's date tells it new: a date's unit with no budget; with one,
// none. Its grant goes to a validation waiting behind it instead, and it
// takes a later one (see the accept of waitTurn): a wait between the grant
// and the request is latency that the budget's bound has less than an
// interval for in all, the network's included, and waits of up to half an
// interval cost a 429 now and then on a loaded machine.
func (h *handlers) phaseWait(r *run, b clockBounds) time.Duration {
	if r.t.Budget == nil {
		return b.res
	}
	return 0
}

// undated reports whether a file dated mod on a store of clock b (clockOf),
// found for a challenge that did not read its path first and was requested
// at requestedAt, may predate the request.
func (b clockBounds) undated(mod, requestedAt time.Time) bool {
	return mod.Before(requestedAt.Add(b.hi))
}

// notBefore is the date before which a file at loc cannot be the one a
// challenge requested at requestedAt wrote: older files are stale. It
// allows ClockSkew, and the measured clock where that is further behind.
func (h *handlers) notBefore(loc destination.Location, requestedAt time.Time) time.Time {
	nb := requestedAt.Truncate(time.Second).Add(-h.cfg.ClockSkew)
	if b, ok := h.clockOf(loc); ok {
		if m := requestedAt.Add(b.lo).Truncate(max(b.res, time.Nanosecond)); m.Before(nb) {
			return m
		}
	}
	return nb
}
