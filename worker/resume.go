package worker

import (
	"context"
	"errors"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
)

// ChallengeLog keeps a durable record of each challenge before it is made,
// and hands a re-run the record an earlier run left, so that a challenge
// in flight when a run was killed is taken up instead of asked again. run's
// journal is one: its worker is the only one on its embedded Redis.
type ChallengeLog interface {
	// Record keeps c before the challenge call; an error retries the task.
	Record(ctx context.Context, c ledger.Challenge) error
	// Prior returns the earlier run's record of the challenge of the
	// destination dest (its hash) at location loc, when it is the last
	// challenge recorded there, and none was recorded there since: the
	// file holds only the last challenged destination's token.
	Prior(dest, loc string) (ledger.Challenge, bool)
	// Pending returns the last challenge an earlier run recorded at loc
	// when its destination has no outcome and none was recorded there
	// since: Cloudflare may still write its token into the file.
	Pending(loc string) (ledger.Challenge, bool)
}

// EarlierWriteWait is how long after an earlier run's challenge that run's
// token may still be written into its file: a run killed with a challenge
// in flight leaves its write to come. Until then the destination of that
// challenge takes up its token rather than asking again, and no other
// destination challenges on the path: it would take that late token for
// its own (with opaque tokens nothing tells them apart).
const EarlierWriteWait = time.Minute

// earlierWriteSnooze is the snooze (a look every PollInterval at most)
// while prior's token may still be written (EarlierWriteWait after it),
// or nil once that is over.
func (h *handlers) earlierWriteSnooze(prior ledger.Challenge, reason string) *SnoozeError {
	left := prior.Time.Add(EarlierWriteWait).Sub(h.now())
	if left <= 0 {
		return nil
	}
	return &SnoozeError{Delay: min(left, h.cfg.PollInterval), Reason: reason}
}

// earlierWrite says whether the location r holds may still receive the
// token of an earlier run's challenge of another destination (Pending):
// then r lets the location go and waits, so that the other destination
// takes it up first (it is woken by the release) or the wait ends.
func (h *handlers) earlierWrite(ctx context.Context, r *run) error {
	if h.challenges == nil || r.lease == "" {
		return nil
	}
	prior, ok := h.challenges.Pending(r.lease)
	if !ok || prior.Dest == r.key.Hash {
		return nil
	}
	wait := h.earlierWriteSnooze(prior, "an earlier run's challenge of another destination on this path may still be written: it goes first")
	if wait == nil {
		return nil
	}
	h.release(ctx, r)
	return wait
}

// record keeps the challenge about to be requested in the ChallengeLog.
func (h *handlers) record(ctx context.Context, r *run, loc destination.Location, before string, at time.Time) error {
	if h.challenges == nil || r.lease == "" {
		return nil
	}
	return h.challenges.Record(ctx, ledger.Challenge{Dest: r.key.Hash, Location: r.lease, Filename: r.clean(loc.Key),
		Time: at.UTC(), Before: before})
}

// resume takes up the challenge an earlier run made for r's destination
// (ChallengeLog.Prior), with its location held: it reads the file, and
// when the file is a new write since the path's pre-challenge fingerprint
// (and, where claims decode, they name this destination and have not
// expired), validates that token instead of asking for another. A refused
// token (1002) asks for a fresh challenge, counted as today. done: the task
// ends with err. Otherwise the fresh challenge goes ahead, and looks at
// the location itself after its budget wait (its read, record or skipped
// read), not at what this read found.
func (h *handlers) resume(ctx context.Context, r *run, loc destination.Location) (done bool, err error) {
	if h.challenges == nil || r.lease == "" || r.d.Gen != 0 {
		return false, nil
	}
	prior, ok := h.challenges.Prior(r.key.Hash, r.lease)
	if !ok || !h.now().Before(prior.Time.Add(cloudflare.TokenTTL)) {
		return false, nil
	}
	obj, err := h.read(ctx, loc, h.notBefore(loc, prior.Time))
	h.storage(r.conf.Type, destination.OpRead, err)
	// Not written yet: the earlier challenge's write may still come
	// (EarlierWriteWait); asking again now would leave it to land on top of
	// the fresh challenge's, a stale token where only the latest validates.
	notYet := func() (bool, error) {
		wait := h.earlierWriteSnooze(prior, "the earlier run's challenge file is not written yet")
		if wait == nil {
			return false, nil
		}
		if err := h.renew(ctx, r); err != nil {
			return true, err
		}
		return true, wait
	}
	switch {
	case errors.Is(err, destination.ErrNotFound), errors.Is(err, destination.ErrStale):
		return notYet()
	case err != nil:
		return false, nil // unreadable: the fresh challenge reads again
	}
	seen := digest(obj.Body)
	if seen == prior.Before {
		return notYet() // the earlier challenge's file was not written
	}
	if b, _ := h.clockOf(loc); prior.Before == unread && b.undated(obj.ModTime, prior.Time) {
		return false, nil // may predate the earlier challenge: a fresh one
	}
	token, err := cloudflare.CleanToken(string(obj.Body))
	if err != nil {
		return false, nil
	}
	switch cloudflare.TokenFor(token, r.d.Scope, r.d.ScopeID, r.d.DestinationConf, h.now()) {
	case cloudflare.TokenForeign, cloudflare.TokenExpired:
		return false, nil
	}
	r.seen = seen
	if err := h.wait(ctx, r); err != nil {
		return true, err
	}
	if _, err := h.enter(ctx, r, events.Validating, events.StageValidate); err != nil {
		return true, err
	}
	r.log.Info("taking up the earlier run's challenge", "filename", prior.Filename, "requested_at", prior.Time)
	return true, h.submitToken(ctx, r, prior.Filename, token, false)
}
