package worker

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// ServerConfig sets how the asynq server runs the handlers.
type ServerConfig struct {
	// Concurrency is the number of tasks run at once. The work is I/O bound
	// and the API budget is shared, so more than CPUs. Default
	// ConcurrencyDefault.
	Concurrency int
	// ShutdownTimeout bounds the drain on SIGTERM: tasks still running after
	// it go back to the queue. Default ShutdownTimeoutDefault.
	ShutdownTimeout time.Duration
	// DelayedTaskCheckInterval is how often snoozed polls and retries are
	// moved back to pending. Default DelayedTaskCheckIntervalDefault,
	// 200ms (asynq's own default is 5s,
	// which would add seconds to every poll; on a shared path, where one
	// destination onboards after another, each poll's wait for this tick
	// delays every destination behind it). It costs one Redis script per
	// tick and worker.
	DelayedTaskCheckInterval time.Duration
	// TaskCheckInterval is how long an idle processor sleeps before it
	// looks for a task again. Default TaskCheckIntervalDefault, 100ms:
	// asynq's 1s would add up to a
	// second to every hand-off from poll to validate; an idle worker pays
	// about 10 cheap dequeue calls a second for it.
	TaskCheckInterval time.Duration
	// Backoff sets the retry delays of transient errors.
	Backoff Backoff
	// Logger receives asynq's own log lines. Default: discard.
	Logger *slog.Logger
}

// WithDefaults fills unset fields.
func (c ServerConfig) WithDefaults() ServerConfig {
	if c.Concurrency <= 0 {
		c.Concurrency = ConcurrencyDefault
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = ShutdownTimeoutDefault
	}
	if c.DelayedTaskCheckInterval <= 0 {
		c.DelayedTaskCheckInterval = DelayedTaskCheckIntervalDefault
	}
	if c.TaskCheckInterval <= 0 {
		c.TaskCheckInterval = TaskCheckIntervalDefault
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Backoff = c.Backoff.WithDefaults()
	return c
}

// newServer returns an asynq server for the logpush queues with the
// handlers' retry policy: the follow-up queue first (strict priority), so
// that a destination under way never waits behind challenges. Start it
// with Start(mux) and stop it with Shutdown.
func newServer(rdb redis.UniversalClient, cfg ServerConfig) *asynq.Server {
	cfg = cfg.WithDefaults()
	return asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:              cfg.Concurrency,
		Queues:                   queuePriorities(),
		StrictPriority:           true,
		RetryDelayFunc:           cfg.Backoff.RetryDelayFunc(),
		IsFailure:                IsFailure,
		ShutdownTimeout:          cfg.ShutdownTimeout,
		DelayedTaskCheckInterval: cfg.DelayedTaskCheckInterval,
		TaskCheckInterval:        cfg.TaskCheckInterval,
		Logger:                   AsynqLogger(cfg.Logger.With("component", "asynq")),
		LogLevel:                 asynq.WarnLevel,
	})
}

// queuePriorities gives tasks.Queues descending priorities, in their order.
func queuePriorities() map[string]int {
	qs := tasks.Queues()
	m := make(map[string]int, len(qs))
	for i, q := range qs {
		m[q] = len(qs) - i
	}
	return m
}

// AsynqLogger adapts l to asynq's Logger.
func AsynqLogger(l *slog.Logger) asynq.Logger { return asynqLogger{l} }

type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }
