package cli

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
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
