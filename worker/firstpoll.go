package worker

import (
	"context"
	"sync"
	"time"

	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// A cold worker (one that has seen no challenge file appear yet) does not
// know when files appear, so a first poll waits --poll-first (4 s by
// default) rather than spend reads on misses. A small tenant or a small
// batch in a fresh fleet paid that wait on every row, well beyond its own
// bound when files appear after a second. So, while cold, one destination
// at a time is the scout: it polls every PollInterval, and when its file
// appears the delay is learnt and the first polls that were scheduled cold
// are woken for when their own files should be there by that delay
// (appearance.firstPoll), rather than left sleeping --poll-first. The
// scout's extra reads are a few per worker, not per destination.
//
// asynq schedules in whole seconds, so a scout polled by its task alone
// finds a file that appears after 1.1 s at about 2 s, and every first poll
// waits for it. So the worker also runs the scout's poll task itself every
// scoutLook (a quarter of PollInterval), or a quarter of its wait once
// that is longer (scoutGap), for at most scoutLooks looks in all: a scout
// whose file never comes costs a few reads, not 4 a second for the whole
// batch.
//
// asynq hands the scout's poll to any worker of the fleet, so the file may
// be seen by another worker, and this one stay cold. So each worker shares
// the first fleetShare delays it sees (keys.Appearances), and a cold
// worker's scout looks read them first: a worker learns from the first
// file the fleet sees, and a worker started later starts from the fleet's.

// coldPolls are the first polls this worker scheduled while cold, and its
// scout.
type coldPolls struct {
	mu sync.Mutex
	// scout is the holder (see holder) of the scout, scoutAt when it was
	// challenged; a scout older than PollFirst (its file is slow, or never
	// comes) is replaced by the next cold challenge.
	scout   string
	scoutAt time.Time
	// waiting are the first polls scheduled cold, oldest first.
	waiting []coldPoll
	// held are the challenges coldHold snoozed, to wake when it ends.
	held []coldPoll
	// warm: a file was seen; nothing is kept any more.
	warm bool
	// scoutMissed is the longest a scout (this one or one it replaced)
	// had waited at a look that missed its file (notDue, skipRead).
	scoutMissed time.Duration
	// looks counts the scout looks the worker ran itself (scoutLooks).
	looks int
	// shared counts the appearance delays this worker shared with the
	// fleet (fleetShare).
	shared int
}

// fleetShare is how many appearance delays each worker shares with the
// fleet: its first, enough for a cold worker to schedule by.
const fleetShare = 8

// scoutLooks bounds the looks at scouts a worker runs itself, over all its
// scouts: 16, a scout's --poll-first of 4 s at the default PollInterval.
const scoutLooks = 16

// scoutLook is how long after a scout's challenge or miss the worker runs
// its poll task itself.
func (h *handlers) scoutLook() time.Duration { return h.cfg.PollInterval / 4 }

// scoutGap is the time from a scout's look, when it had waited that long
// since its challenge, to its next: scoutLook, or a quarter of the wait
// where that is longer. A look every scoutLook cost a scout 16 reads by
// 4 s where files come after 5-10 s, and then it looked no more; a
// quarter of the wait learns the delay to within a quarter of it.
func (h *handlers) scoutGap(waited time.Duration) time.Duration {
	return max(h.scoutLook(), waited/4)
}

type coldPoll struct {
	queue, id   string
	requestedAt time.Time
	// ck is the challenge's key (challengeKey) of a first poll: the
	// worker's misses say whether it read since.
	ck string
}

// coldFirst is the delay of r's first poll (first, by firstPoll), with
// the challenge requested at requestedAt. While the worker is cold and the
// first poll waits, r becomes the scout (polled after PollInterval) if
// there is none, or its poll is kept to be woken when the scout's file is
// seen. inline: the challenge task polls itself (a contended path), which
// already looks early.
func (h *handlers) coldFirst(r *run, requestedAt time.Time, first time.Duration, inline bool) time.Duration {
	c := &h.cold
	if inline || first <= h.cfg.PollInterval || h.leases.waker == nil {
		return first
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.warm {
		return first
	}
	if c.scout == "" || requestedAt.Sub(c.scoutAt) > h.cfg.PollFirst && c.scoutMissed < h.holdMiss() {
		// A scout that missed its file at holdMiss stays: another would
		// look until PollFirst too, and learn little new.
		c.scout, c.scoutAt = holder(r), requestedAt
		h.lookAtScout(r)
		return h.cfg.PollInterval
	}
	// Polls scheduled more than PollFirst ago have run by now.
	i := 0
	for i < len(c.waiting) && requestedAt.Sub(c.waiting[i].requestedAt) > h.cfg.PollFirst {
		i++
	}
	c.waiting = append(c.waiting[i:], coldPoll{queue: tasks.QueueOf(tasks.TypePoll), id: tasks.PollTaskID(r.d), requestedAt: requestedAt,
		ck: challengeKey(r, requestedAt)})
	return first
}

// coldHold holds r's challenge, before it takes its budget turn, while
// the worker is cold and its scout has missed its file at holdFrom but
// not yet at holdMiss: until the scout's file is seen (the worker is
// warm), or it has missed at holdMiss, for at most PollFirst from the
// scout's challenge. Files that slow are not worth a read before each
// challenge, nor a first poll set by the scout's one file before most are
// there: where files come after 5-10 s, the challenges of the first
// seconds of a batch read first, and their polls looked at 6 s; after
// 1-2 s, three reads each for the first 20 of a batch of 50. Held, they
// go once the scout's misses date their files (skipRead) or its file says
// when to look. Files faster than holdFrom are not held for: a small
// tenant's few rows would pay the scout's time to learn, against a bound
// of a few seconds. A held challenge snoozes (no slot: the scout's poll
// needs one) and is woken when the hold ends. Only where a scout looks
// (coldFirst): not with a first poll within PollInterval.
func (h *handlers) coldHold(r *run) error {
	if r.lease == "" || r.contended || r.d.Gen > 0 || h.cfg.PollFirst <= h.cfg.PollInterval || h.leases.waker == nil {
		return nil
	}
	c := &h.cold
	now := h.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.warm || c.scout == "" || c.scout == holder(r) || c.scoutMissed < h.holdFrom() || c.scoutMissed >= h.holdMiss() {
		return nil
	}
	until := c.scoutAt.Add(h.cfg.PollFirst)
	if !now.Before(until) {
		return nil
	}
	if len(c.held) < heldWoken {
		c.held = append(c.held, coldPoll{queue: tasks.QueueOf(tasks.TypeChallenge), id: tasks.ChallengeTaskID(r.d), requestedAt: now})
	}
	return &SnoozeError{Delay: max(until.Sub(now), time.Second), Reason: "a cold worker: waiting for its scout's file"}
}

// coldGone ends r's turn as the scout: a scout whose destination ended
// without its file seen (it failed) holds the others no longer.
func (h *handlers) coldGone(r *run) {
	c := &h.cold
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.warm || c.scout != holder(r) {
		return
	}
	c.scout = ""
	h.wakeHeld(c)
}

// heldRetry and heldRetries bound how long wakeHeld tries to wake a
// challenge that still counts as running.
const (
	heldRetry   = 50 * time.Millisecond
	heldRetries = 40
)

// heldWoken bounds the challenges coldHold wakes when the hold ends; the
// others run when their snooze ends, PollFirst after the scout's challenge.
const heldWoken = 256

// holdFrom is the scout's miss that starts coldHold: half as long again as
// PollInterval (1.5 s by default), past where files after a second or so
// are found.
func (h *handlers) holdFrom() time.Duration { return h.cfg.PollInterval * 3 / 2 }

// holdMiss is the scout's miss that ends coldHold: three quarters of
// PollFirst (3 s by default), where the scout's looks stand for the first
// polls', and a file's date tells it new wherever the request falls in its
// second (skipRead, cold).
func (h *handlers) holdMiss() time.Duration { return h.cfg.PollFirst * 3 / 4 }

// wakeHeld runs the challenges coldHold held. c.mu is held.
func (h *handlers) wakeHeld(c *coldPolls) {
	held := c.held
	c.held = nil
	if len(held) == 0 {
		return
	}
	h.leases.after(0, func() {
		for _, p := range held {
			// A challenge that snoozed a moment ago may still count as
			// running: asynq reschedules it once its handler returned.
			for range heldRetries {
				if !running(h.leases.waker.RunTask(p.queue, p.id)) || sleepCtx(h.leases.ctx, heldRetry) != nil {
					break
				}
			}
		}
	})
}

// scoutDelay is the delay after a miss of r's poll, which has waited
// since its challenge: PollInterval for the scout of a cold worker within
// PollFirst, d otherwise. A file later than that is slower than the
// worker's guess; the scout's look every second would cost a read each
// (about 10 for files after 5-10 s) and learn no sooner than the first
// polls, which look at PollFirst. A scout's miss is kept for notDue.
func (h *handlers) scoutDelay(r *run, d, waited time.Duration) time.Duration {
	c := &h.cold
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.warm || c.scout != holder(r) {
		return d
	}
	c.scoutMissed = max(c.scoutMissed, waited)
	if c.scoutMissed >= h.holdMiss() {
		h.wakeHeld(c)
	}
	if waited >= h.cfg.PollFirst {
		return d
	}
	return min(d, h.cfg.PollInterval)
}

// missed is the longest a cold worker's scout had waited at a look that
// missed its file; 0 once warm, or before any miss.
func (c *coldPolls) missed() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.warm {
		return 0
	}
	return c.scoutMissed
}

// notDue says whether the first poll of r, which has waited since its
// challenge, looks later instead of now, without a read: cold, when the
// scout (this one or one it replaced) missed its own file when it had
// waited as long, to within a scout's look (scout: its next look is the
// miss schedule's); warm, when what the worker learnt since the challenge
// puts the first poll later (later: how much). The scout's looks until
// PollFirst stand for the cold first polls' look at PollFirst: where files
// come after 5-10 s, the scout misses at 4 s, and so would every first
// poll (a read each); and the first files of a cold batch come after
// PollFirst there, so the polls of the challenges made meanwhile are due
// at PollFirst, and would miss too. A poll stands for the scout's look
// twice at most, never on a contended path or the scout's: its next look
// reads, so that a scout whose file never comes holds the others up by two
// looks (where files come after 5-10 s, the polls of a batch's first
// challenges stood at 4 s and read at 6 s, most in vain, where the scout
// had missed too). The scout's misses count to within standsWithin of its
// looks: a poll that stood looks again two scout looks after the scout's
// own look at that age (notYet), and asynq runs a poll due at 4 s at
// 4.0-4.1 s. A first challenge's poll that stood, and has not read since
// (read: this worker missed its file), also looks when the worker has
// learnt since: where files come after 5-10 s, the polls of a cold batch's
// held challenges stood at 4 s, the scout's file came at 8 s, and they
// read at 6 s, most in vain.
func (h *handlers) notDue(r *run, polls int, waited time.Duration, read bool) (scout bool, later time.Duration) {
	if polls > 2 || polls == 2 && (read || r.d.Gen > 0) || r.contended {
		return false, 0
	}
	c := &h.cold
	c.mu.Lock()
	warm, stands := c.warm, c.scout != "" && c.scout != holder(r) && waited <= c.scoutMissed+standsWithin*h.scoutLook()
	c.mu.Unlock()
	if !warm && stands && !sampled(r) {
		// The fleet may have seen a file since: another worker's scout's,
		// which woke this poll. Standing for this worker's scout then
		// held it a second and a half past its file.
		if warm = h.warmFromFleet(); !warm {
			return true, 0
		}
	}
	if !warm {
		return false, 0
	}
	if later = h.firstPoll(r) - waited; later > h.scoutLook() {
		return false, later
	}
	return false, 0
}

// scouting says whether r is this cold worker's scout: a listing stands
// for its looks only while young (pollListed).
func (h *handlers) scouting(r *run) bool {
	c := &h.cold
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.warm && c.scout == holder(r)
}

// sampled says whether r's poll is one of the quarter of cold first polls
// that read rather than stand for the scout's miss (notDue), by its
// destination's hash. A scout is one file: where files come after 1-5 s
// and the scout's came after 4 s, every first poll of a batch challenged
// at once stood for it, and the batch's median latency went to 2-3.7 s.
// The first of the quarter to find its file makes the worker warm, which
// wakes the others when their files should be there (warmUp).
func sampled(r *run) bool {
	return r.key.Hash != "" && r.key.Hash[0] < '4'
}

// standsWithin is how many scout looks past the scout's miss a poll still
// stands for it (notDue).
const standsWithin = 3

// lookAtScout runs the poll task of r, the scout, after scoutLook, and
// again every scoutLook, until the worker is warm, r is no longer the
// scout, or the looks are spent. c.mu is held. The looks go on whether or
// not the poll ran here: asynq hands it to any worker. A look that finds
// the task running, or not scheduled yet, does nothing: the task's own
// schedule stands. Each look first asks the fleet (warmFromFleet).
func (h *handlers) lookAtScout(r *run) {
	c := &h.cold
	if c.looks >= scoutLooks {
		return
	}
	c.looks++
	who := holder(r)
	h.runPollAfter(r.d, h.scoutGap(h.now().Sub(c.scoutAt)), func() bool {
		if h.warmFromFleet() {
			return false
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.warm || c.scout != who {
			return false
		}
		h.lookAtScout(r)
		return true
	})
}

// warmFromFleet learns the appearance delays other workers shared, if
// any, and says whether it did: the worker is warm then. A cold worker
// whose scout's poll ran on another worker, which saw the file, would
// otherwise stay cold, and its first polls wait --poll-first.
func (h *handlers) warmFromFleet() bool {
	ds, err := h.store.Appearances(h.leases.ctx)
	if err != nil || len(ds) == 0 {
		return false
	}
	for _, d := range ds {
		h.seen.observe(d)
		h.seen.observeBy(d)
	}
	h.warmUp()
	return true
}

// observeAppearance learns that a challenge file appeared d after its
// challenge, and by then at the latest, and shares by with the fleet
// while it is one of this worker's first fleetShare: a cold worker wakes
// its first polls by them, and one woken before its file looks again a
// second later.
func (h *handlers) observeAppearance(ctx context.Context, d, by time.Duration) {
	h.seen.observe(d)
	h.seen.observeBy(by)
	c := &h.cold
	c.mu.Lock()
	share := c.shared < fleetShare
	if share {
		c.shared++
	}
	c.mu.Unlock()
	if share {
		if err := h.store.ShareAppearance(ctx, by); err != nil {
			h.log.Debug("sharing an appearance delay failed", "err", err)
		}
	}
	h.warmUp()
}

// warmUp makes a cold worker warm: the first polls it scheduled cold are
// woken, each when its file should be there by what was learnt.
func (h *handlers) warmUp() {
	c := &h.cold
	c.mu.Lock()
	if c.warm {
		c.mu.Unlock()
		return
	}
	waiting := c.waiting
	c.warm, c.waiting, c.scout = true, nil, ""
	h.wakeHeld(c)
	c.mu.Unlock()
	if len(waiting) == 0 {
		return
	}
	after := h.seen.firstPoll(h.cfg.PollFirst, h.cfg.PollMaxInterval, h.pollDelay)
	now := h.now()
	var due []coldPoll
	for _, p := range waiting {
		// Not read yet, or stood for the scout's misses (notDue): where
		// the scout's file came after PollFirst, the polls of a batch
		// challenged at once stood at PollFirst and looked two scout
		// looks after its next miss, 1.5 s after their files were due.
		if at := p.requestedAt.Add(after); at.After(now) {
			h.leases.after(at.Sub(now), func() { h.wakeCold(p) })
		} else {
			due = append(due, p)
		}
	}
	// Not in this task: one RunTask per poll, there may be many.
	h.leases.after(0, func() {
		for _, p := range due {
			h.wakeCold(p)
		}
	})
}

// wakeCold runs p's poll now, unless it read in vain since its challenge:
// its own schedule stands then, a look after what was learnt. A poll that
// ran already, or is running, is not found or refused: nothing to do.
func (h *handlers) wakeCold(p coldPoll) {
	if h.misses.has(p.ck) {
		return
	}
	_ = h.leases.waker.RunTask(p.queue, p.id)
}
