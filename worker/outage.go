package worker

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// outageWatch is a go-redis hook that logs one line when Redis stops
// answering ("Redis unreachable since ...; retrying") and one when it
// answers again, instead of one line per failed command of every
// component. Failures within outageSettle of Redis answering again are
// part of the same outage: go-redis's pool keeps failing new connections
// with the last dial error until its background dial (once a second)
// succeeds.
type outageWatch struct {
	log  *slog.Logger
	mask func(string) string // hides the Redis password in errors

	mu    sync.Mutex
	since time.Time // zero: reachable
	// upAt is when Redis started answering in the current outage, with no
	// failure since; zero: it has not.
	upAt time.Time
	// backAt is when Redis answered again after the latest outage.
	backAt time.Time
	// onBack, if set, is called (without blocking) when an outage ends.
	onBack func(at time.Time)
	// now is the clock; nil: time.Now.
	now func() time.Time
}

func (o *outageWatch) clock() time.Time {
	if o.now != nil {
		return o.now()
	}
	return time.Now()
}

const outageSettle = 2 * time.Second

// outageBack is how long Redis must answer, with no command failing,
// before an outage is over. A Redis that is shutting down still answers
// on connections it has not closed yet for a few milliseconds after it
// refuses new ones: without it, that answer ended the outage, the next
// failure began another, and one restart logged two.
const outageBack = 500 * time.Millisecond

// down reports whether Redis did not answer the latest commands.
func (o *outageWatch) down() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return !o.since.IsZero()
}

var _ redis.Hook = (*outageWatch)(nil)

func (o *outageWatch) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			o.observe(err) // a dial that works proves nothing until a command does
		}
		return c, err
	}
}

func (o *outageWatch) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		o.observe(err)
		return err
	}
}

func (o *outageWatch) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		o.observe(err)
		return err
	}
}

// answered reports whether err is an answer of Redis: none, or a reply
// of its own (redis.Nil, a script error), but not LOADING.
func answered(err error) bool {
	var rerr redis.Error
	return err == nil || errors.Is(err, redis.Nil) || errors.As(err, &rerr) && !strings.HasPrefix(rerr.Error(), "LOADING")
}

func (o *outageWatch) observe(err error) {
	isUp, isDown := answered(err), RedisUnreachable(err)
	if !isUp && !isDown {
		return // a cancelled context, a closed client: says nothing
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case isDown && o.since.IsZero() && o.clock().Sub(o.backAt) < outageSettle:
		// the pool's remembered dial error, just after Redis came back
	case isDown && o.since.IsZero():
		o.since = o.clock()
		o.log.Warn("Redis unreachable since "+o.since.UTC().Format(time.RFC3339)+"; retrying", "err", o.mask(err.Error()))
	case isDown && !o.since.IsZero():
		o.upAt = time.Time{} // still down: an answer before it was a closing connection's
	case isUp && !o.since.IsZero():
		now := o.clock()
		if o.upAt.IsZero() {
			o.upAt = now
		}
		if now.Sub(o.upAt) < outageBack {
			return
		}
		o.log.Info("Redis reachable again", "unreachable_for", o.upAt.Sub(o.since).Round(time.Millisecond).String())
		o.since, o.upAt, o.backAt = time.Time{}, time.Time{}, now
		if o.onBack != nil {
			o.onBack(now)
		}
	}
}

// passwordMask hides rdb's password in a message: go-redis's dial errors
// do not hold it, but a message that did must not show it.
func passwordMask(rdb redis.UniversalClient) func(string) string {
	var pw string
	switch c := rdb.(type) {
	case *redis.Client:
		pw = c.Options().Password
	case *redis.ClusterClient:
		pw = c.Options().Password
	case *redis.Ring:
		pw = c.Options().Password
	}
	return func(s string) string {
		if pw == "" {
			return s
		}
		return strings.ReplaceAll(s, pw, "xxxxx")
	}
}
