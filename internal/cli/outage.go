package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/worker"
)

// outageWatch is a go-redis hook that logs one line when Redis stops
// answering ("Redis unreachable since ...; retrying") and one when it
// answers again, instead of one line per failed command of every
// component. Failures within outageSettle of Redis answering again are
// part of the same outage: go-redis's pool keeps failing new connections
// with the last dial error until its background dial (once a second)
// succeeds.
type outageWatch struct {
	log *slog.Logger
	url string // for masking its password in errors

	mu    sync.Mutex
	since time.Time // zero: reachable
	// backAt is when Redis answered again after the latest outage.
	backAt time.Time
}

const outageSettle = 2 * time.Second

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
	isUp, isDown := answered(err), worker.RedisUnreachable(err)
	if !isUp && !isDown {
		return // a cancelled context, a closed client: says nothing
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case isDown && o.since.IsZero() && time.Since(o.backAt) < outageSettle:
		// the pool's remembered dial error, just after Redis came back
	case isDown && o.since.IsZero():
		o.since = time.Now()
		o.log.Warn("Redis unreachable since "+o.since.UTC().Format(time.RFC3339)+"; retrying", "err", maskRedisURL(err.Error(), o.url))
	case isUp && !o.since.IsZero():
		o.log.Info("Redis reachable again", "unreachable_for", time.Since(o.since).Round(time.Millisecond).String())
		o.since, o.backAt = time.Time{}, time.Now()
	}
}

// QuietRedisLog keeps go-redis's own log lines (pool.go, one per failed
// dial) off the terminal until a command routes them through its logger:
// main calls it once, before any command connects, so that a Redis that
// does not answer is reported once, by the command. It is not safe to call
// while Redis clients run.
func QuietRedisLog() {
	redis.SetLogger(redisLogger{log: slog.New(slog.DiscardHandler)})
}

// routeRedisLog sends go-redis's log lines to log at debug. go-redis has
// one logger per process: the latest call wins.
func routeRedisLog(log *slog.Logger, url string) {
	redis.SetLogger(redisLogger{log: log, url: url})
}

// redisLogger routes go-redis's own log lines (pool.go: connection errors,
// one per attempt) through slog at debug: the outage watch says it once.
type redisLogger struct {
	log *slog.Logger
	url string
}

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Debug(maskRedisURL(fmt.Sprintf(format, v...), l.url), "component", "go-redis")
}
