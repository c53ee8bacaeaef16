package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

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

// redisWaiter lets a command that follows Redis (status --watch, events
// --follow) wait out an outage as the workers do, rather than exit: one
// line when Redis stops answering, one when it answers again.
type redisWaiter struct {
	w    io.Writer
	what string // the command, to start its lines
	url  string // masked in errors
	// since is when the current outage began; zero: none.
	since time.Time
	// backAt is when Redis answered again after the latest outage: the
	// pool fails new connections with the last dial error for up to
	// worker's settle time after it, which is the same outage.
	backAt time.Time
	quiet  bool // this outage is such a tail: it said nothing
}

// redisSettle is how long after an outage a failure is still its tail.
const redisSettle = 2 * time.Second

// retry reports whether err is Redis being unreachable: then it says so,
// once per outage, waits a second and returns true unless ctx ended.
func (o *redisWaiter) retry(ctx context.Context, err error) bool {
	if o == nil || !worker.RedisUnreachable(err) || ctx.Err() != nil {
		return false
	}
	if o.since.IsZero() {
		o.since = time.Now()
		o.quiet = o.since.Sub(o.backAt) < redisSettle
		if !o.quiet {
			fmt.Fprintf(o.w, "%s: Redis unreachable since %s (%s); waiting for it, as the workers do (Ctrl-C to stop)\n",
				o.what, o.since.UTC().Format(time.RFC3339), maskRedisURL(err.Error(), o.url))
		}
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Second):
		return true
	}
}

// answered ends an outage: it says that Redis is back.
func (o *redisWaiter) answered() {
	if o == nil || o.since.IsZero() {
		return
	}
	if !o.quiet {
		fmt.Fprintf(o.w, "%s: Redis reachable again after %s\n", o.what, time.Since(o.since).Round(time.Second))
	}
	o.since, o.backAt = time.Time{}, time.Now()
}

// asynqQuiet keeps asynq's own log lines about a Redis it cannot reach
// (one per component and poll: "Dequeue error: ... connection refused")
// at debug: the worker's outage watch says it once per outage, and once
// when it is back. Other asynq lines, and everyone else's, pass as they are.
type asynqQuiet struct {
	slog.Handler
	asynq bool // the logger of component asynq (worker.NewServer)
}

func (h asynqQuiet) WithAttrs(as []slog.Attr) slog.Handler {
	q := h.asynq
	for _, a := range as {
		if a.Key == "component" && a.Value.String() == "asynq" {
			q = true
		}
	}
	return asynqQuiet{h.Handler.WithAttrs(as), q}
}

func (h asynqQuiet) WithGroup(name string) slog.Handler {
	return asynqQuiet{h.Handler.WithGroup(name), h.asynq}
}

func (h asynqQuiet) Handle(ctx context.Context, r slog.Record) error {
	if h.asynq && r.Level > slog.LevelDebug && redisDownText(r.Message) {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

// redisDownText reports whether an asynq log message is about Redis not
// answering: asynq logs its errors as text, so worker.RedisUnreachable
// cannot see them.
func redisDownText(msg string) bool {
	for _, s := range []string{"connection refused", "connection reset", "broken pipe", "i/o timeout", "EOF",
		"LOADING", "no such host", "network is unreachable", "connection pool timeout", "use of closed network connection"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// watchRedisRestart says plainly, once per restart, when the Redis
// restarted and kept no batch (it persists nothing): the outage lines say
// only that it was away and is back, while the batches, their states and
// the queued tasks are gone and only enqueueing their files again brings
// them back. It looks every interval until ctx ends.
func watchRedisRestart(ctx context.Context, rdb redis.UniversalClient, store *ledger.Store, every time.Duration, log *slog.Logger) {
	runID := func() string {
		info, err := rdb.Info(ctx, "server").Result()
		if err != nil {
			return ""
		}
		for _, l := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "run_id:"); ok {
				return v
			}
		}
		return ""
	}
	hasBatches := func() (bool, error) {
		ids, err := store.Batches(ctx, 1)
		return len(ids) > 0, err
	}
	last := runID()
	had, _ := hasBatches()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		id := runID()
		if id == "" {
			continue // away: the outage watch says so
		}
		has, err := hasBatches()
		if err != nil {
			continue
		}
		if id != last && last != "" && had && !has {
			log.Warn("Redis restarted and kept no batch (restarted without persistence?): the batches in flight, their states and queued tasks are gone; " +
				"re-enqueue each file: logpush-onboard enqueue --redis URL FILE (its finished destinations are challenged again; deploy/README.md says how to make Redis persist)")
		}
		last, had = id, has
	}
}
