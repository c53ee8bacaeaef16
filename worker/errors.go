package worker

import (
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
)

// SnoozeError asks asynq to run the task again after Delay without counting
// a retry: the challenge file is not there yet.
type SnoozeError struct {
	Delay  time.Duration
	Reason string
	// OnTime: the worker runs the task itself after Delay (handlers.onTime);
	// asynq must not run it early (NotEarly).
	OnTime bool
}

func (e *SnoozeError) Error() string {
	return fmt.Sprintf("snooze %s: %s", e.Delay, e.Reason)
}

// queueDelay is the delay to give asynq for the task the snooze puts back:
// Delay, or, when the worker runs it itself on time, the second after it
// (NotEarly).
func (e *SnoozeError) queueDelay() time.Duration {
	if e.OnTime {
		return NotEarly(e.Delay)
	}
	return e.Delay
}

// IsFailure is asynq's Config.IsFailure: a snooze is not a failure.
func IsFailure(err error) bool {
	var s *SnoozeError
	return !errors.As(err, &s)
}

// Backoff sets the retry delays of transient errors.
type Backoff struct {
	// Initial is the first retry delay. Default 1s.
	Initial time.Duration
	// Max caps the delay. Default 5m.
	Max time.Duration
	// Jitter is backoff's randomization factor. Default 0.3.
	Jitter float64
}

// WithDefaults fills unset fields.
func (b Backoff) WithDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = time.Second
	}
	if b.Max <= 0 {
		b.Max = 5 * time.Minute
	}
	if b.Jitter <= 0 {
		b.Jitter = 0.3
	}
	return b
}

// Delay returns the delay before retry n (0-based) of a task that failed
// with err: a snooze's own delay; Initial after Redis was unreachable (the
// task returns once Redis answers again, see awaitRedis, and the retries
// of earlier outages are no reason to wait longer); otherwise exponential
// backoff with jitter, never below the Retry-After that Cloudflare asked
// for. Either way no later than the deadline of a *retryError, so that the
// run that fails the destination at its deadline is not late.
func (b Backoff) Delay(n int, err error) time.Duration {
	var s *SnoozeError
	if errors.As(err, &s) {
		return s.queueDelay()
	}
	d := b.backoff(n, err)
	var re *retryError
	if errors.As(err, &re) {
		d = max(min(d, time.Until(re.until)), 0)
	}
	return d
}

func (b Backoff) backoff(n int, err error) time.Duration {
	if RedisUnreachable(err) {
		return b.Initial
	}
	eb := backoff.NewExponentialBackOff()
	eb.InitialInterval = b.Initial
	eb.MaxInterval = b.Max
	eb.RandomizationFactor = b.Jitter
	eb.Multiplier = 2
	eb.MaxElapsedTime = 0
	eb.Reset()
	d := eb.NextBackOff()
	for i := 0; i < n; i++ {
		d = eb.NextBackOff()
	}
	var ae *cloudflare.APIError
	if errors.As(err, &ae) && ae.RetryAfter > d {
		d = ae.RetryAfter
	}
	return d
}

// NotEarly is the delay to give asynq for a task due d from now that must
// not run early. asynq schedules in whole seconds (a task's score is the
// Unix second it is due, and it runs once that second has begun), so a
// task due at 12.9 s runs at about 12.0 s; a poll that early mostly misses
// its file, and costs a read and a second. NotEarly is the delay until the
// second after it is due begins.
func NotEarly(d time.Duration) time.Duration {
	now := time.Now()
	due := now.Add(d)
	at := due.Truncate(time.Second)
	if at.Before(due) {
		at = at.Add(time.Second)
	}
	return at.Sub(now) + time.Millisecond
}

// RetryDelayFunc adapts Delay to asynq's Config.RetryDelayFunc.
func (b Backoff) RetryDelayFunc() asynq.RetryDelayFunc {
	b = b.WithDefaults()
	return func(n int, err error, _ *asynq.Task) time.Duration { return b.Delay(n, err) }
}

// class is how the worker treats an error.
type class int

const (
	transient class = iota + 1
	permanent
	stale // validate answered 1002: request a fresh challenge
)

// classify maps an error from the Cloudflare client or a destination reader
// to the worker's action.
func classify(err error) class {
	var ae *cloudflare.APIError
	if errors.As(err, &ae) {
		switch ae.Kind {
		case cloudflare.Transient, cloudflare.RateLimited:
			return transient
		case cloudflare.StaleChallenge:
			return stale
		default:
			return permanent
		}
	}
	var de *destination.Error
	if errors.As(err, &de) && de.Kind == destination.Permanent {
		return permanent
	}
	return transient
}
