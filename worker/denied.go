package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// deniedBuckets remembers the buckets whose challenge file stayed access
// denied (to the identity reading them) until a poll deadline: the
// identity cannot read the bucket, so the other destinations of that bucket
// fail at once instead of each waiting out its deadline. A successful read
// of the bucket forgets it.
type deniedBuckets struct {
	mu sync.Mutex
	m  map[deniedKey]struct{}
}

// deniedKey is a bucket read as an identity.
type deniedKey struct {
	scheme, bucket, account string
	as                      destination.Identity
}

// maxDenied bounds deniedBuckets: past it, it starts afresh.
const maxDenied = 4096

func keyOf(loc destination.Location) deniedKey {
	return deniedKey{scheme: loc.Scheme, bucket: loc.Bucket, account: loc.Account, as: loc.As}
}

func (d *deniedBuckets) known(loc destination.Location) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.m[keyOf(loc)]
	return ok
}

func (d *deniedBuckets) add(loc destination.Location) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil || len(d.m) >= maxDenied {
		d.m = make(map[deniedKey]struct{})
	}
	d.m[keyOf(loc)] = struct{}{}
}

func (d *deniedBuckets) forget(loc destination.Location) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.m, keyOf(loc))
}

// maybeAbsent reports whether err is a read denied the way S3 denies a file
// that is not written yet to a reader without s3:ListBucket.
func maybeAbsent(err error) bool {
	var de *destination.Error
	return errors.As(err, &de) && de.MaybeAbsent
}

// denied handles a read that maybeAbsent: not yet, until the poll deadline,
// then failed with the explanation; at once when an earlier destination of
// the bucket stayed denied until its deadline.
func (h *handlers) denied(ctx context.Context, r *run, p tasks.PollPayload, loc destination.Location, polls int, err error) error {
	if rerr := h.renew(ctx, r); rerr != nil {
		return rerr
	}
	switch {
	case h.denials.known(loc):
		return h.rec.fail(ctx, r, p.Filename, fmt.Errorf("%w (another destination of this bucket stayed denied until its poll deadline): %w", err, asynq.SkipRetry))
	case h.now().Before(p.Deadline):
		// Backed off as after any miss, even while others wait for the
		// path (unlike notYet): a reader that may not read the bucket would
		// otherwise ask 20 times a second until the deadline, and a file
		// that is only not written yet costs the line one poll interval.
		return &SnoozeError{Delay: min(h.pollDelay(polls), p.Deadline.Sub(h.now())+time.Second),
			Reason: "access denied, as S3 also answers for a file not written yet"}
	}
	h.denials.add(loc)
	return h.rec.fail(ctx, r, p.Filename, fmt.Errorf("still access denied at the poll deadline (%s): %w: %w", h.cfg.PollDeadline, err, asynq.SkipRetry))
}
