package worker

import (
	"context"
	"errors"

	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/location"
)

// removeChallengeFile deletes the destination's challenge file once its job
// exists, as Cloudflare advises (the token in it validates for 7 days),
// unless KeepChallengeFiles or another challenge is in flight on the path
// (a destination holds the path's lease or waits for it: the file is its
// own, or soon will be; the last destination of the path deletes it). It
// never fails the destination: a refused delete is a warning naming the
// permission to grant, anything else a warning too.
//
// A challenge that takes the path between the check and the delete loses
// its file to it, and sees it written again only with a fresh challenge
// after its poll deadline: the window is the one round trip of the check.
func (h *handlers) removeChallengeFile(ctx context.Context, r *run, filename string) {
	if h.cfg.KeepChallengeFiles || filename == "" || !r.conf.NeedsChallenge() {
		return
	}
	d, ok := h.reader.(destination.Deleter)
	if !ok {
		return
	}
	loc := destination.For(r.conf, r.d.ReadAs, filename)
	if h.leases.held() {
		id := location.ID(loc.Scheme + "://" + loc.Account + "@" + loc.Bucket + "/" + loc.Key)
		holder, err := h.leases.Holder(ctx, id)
		var line []string
		if err == nil {
			line, err = h.leases.Line(ctx, id)
		}
		if err != nil {
			r.log.Warn("challenge file kept: cannot tell whether another challenge is in flight on its path", "err", err)
			return
		}
		if holder != "" || len(line) > 0 {
			r.log.Info("challenge file kept: another destination's challenge is in flight on its path", "filename", r.clean(filename))
			return
		}
	}
	err := d.Delete(ctx, loc)
	var de *destination.Error
	switch {
	case err == nil:
		r.log.Info("challenge file deleted", "filename", r.clean(filename))
	case errors.As(err, &de) && de.Permission != "":
		r.log.Warn("challenge file not deleted: grant "+de.Permission+" to delete it, or run with --keep-challenge-files",
			"permission", de.Permission, "err", r.clean(err.Error()))
	default:
		r.log.Warn("challenge file not deleted", "err", r.clean(err.Error()))
	}
}
