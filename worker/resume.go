package worker

import (
	"context"
	"errors"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/location"
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
// ends with err. Otherwise seen is what the location holds now ("":
// unknown), the fingerprint of the fresh challenge.
func (h *handlers) resume(ctx context.Context, r *run, loc destination.Location) (done bool, seen string, err error) {
	if h.challenges == nil || r.lease == "" || r.d.Gen != 0 {
		return false, "", nil
	}
	prior, ok := h.challenges.Prior(r.key.Hash, r.lease)
	if !ok || !h.now().Before(prior.Time.Add(cloudflare.TokenTTL)) {
		return false, "", nil
	}
	obj, err := h.reader.Read(ctx, loc, prior.Time.Truncate(time.Second).Add(-h.cfg.ClockSkew))
	h.storage(r.conf.Type, err)
	switch {
	case errors.Is(err, destination.ErrNotFound):
		return false, location.Absent, nil
	case err != nil:
		return false, "", nil // older than the challenge, or unreadable: the fresh challenge reads again
	}
	seen = digest(obj.Body)
	if seen == prior.Before {
		return false, seen, nil // the earlier challenge's file was not written
	}
	token, err := cloudflare.CleanToken(string(obj.Body))
	if err != nil {
		return false, seen, nil
	}
	switch cloudflare.TokenFor(token, r.d.Scope, r.d.ScopeID, r.d.DestinationConf, h.now()) {
	case cloudflare.TokenForeign, cloudflare.TokenExpired:
		return false, seen, nil
	}
	r.seen = seen
	if err := h.wait(ctx, r); err != nil {
		return true, "", err
	}
	if _, err := h.enter(ctx, r, events.Validating, events.StageValidate); err != nil {
		return true, "", err
	}
	r.log.Info("taking up the earlier run's challenge", "filename", prior.Filename, "requested_at", prior.Time)
	return true, "", h.submitToken(ctx, r, prior.Filename, token, false)
}
