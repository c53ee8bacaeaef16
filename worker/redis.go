package worker

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisUnreachable reports whether err says that Redis did not answer: a
// network error, a closed connection, a pool timeout, or LOADING (a
// restarted server reading its data). A reply of Redis's own (redis.Nil, a
// script error), a cancelled context or a closed client is not.
func RedisUnreachable(err error) bool {
	var rerr redis.Error
	var nerr net.Error
	switch {
	case err == nil, errors.Is(err, redis.Nil), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, redis.ErrClosed):
		return false
	case errors.As(err, &rerr):
		return strings.HasPrefix(rerr.Error(), "LOADING")
	}
	return errors.As(err, &nerr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, redis.ErrPoolTimeout)
}

// redisWait bounds how long a task waits for Redis to come back: below
// asynq's 30s task lease, which its heartbeats cannot extend while Redis is
// away.
const redisWait = 20 * time.Second

// redisSettle is how long Redis must answer every ping before a held task
// returns: after an outage go-redis's pool keeps failing new connections
// with the last dial error until its background dial, once a second,
// succeeds.
const redisSettle = 1500 * time.Millisecond

// awaitRedis holds a task that failed because Redis is unreachable, or that
// ends while Redis is (deps.RedisDown), until Redis answers again for
// redisSettle (at most redisWait, or until ctx is done). asynq
// writes a task's outcome (done, retry, snooze) after the handler returns,
// and a write that fails is never retried (asynq v0.26 retries it with a
// context it already cancelled): the task stays active until its lease
// expires and asynq's recoverer, which looks once a minute for leases that
// expired 30s before, retries it, counting a retry: a 5s outage held
// destinations for about 100s. Returning once Redis is back lets asynq
// write the outcome at once.
func (h *handlers) awaitRedis(ctx context.Context, err error) {
	if h.ping == nil || !RedisUnreachable(err) && (h.redisDown == nil || !h.redisDown()) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, redisWait)
	defer cancel()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	var upSince time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		perr := h.ping(pctx)
		pcancel()
		switch {
		case perr != nil:
			upSince = time.Time{}
		case upSince.IsZero():
			upSince = h.now()
		case h.now().Sub(upSince) >= redisSettle:
			return
		}
	}
}
