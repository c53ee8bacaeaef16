// Package embedded runs the in-process Redis (miniredis) used when no Redis
// address is given: by the demo, single-process runs and fast unit tests.
//
// miniredis only expires keys when its clock is moved, and asynq relies on
// expiring keys (task leases, unique locks), so Start drives the clock from
// the wall clock on a ticker.
package embedded

import (
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// Redis is a running embedded Redis.
type Redis struct {
	*miniredis.Miniredis
	stop, done chan struct{}
}

// Start starts an embedded Redis on a free loopback port.
func Start() (*Redis, error) {
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		return nil, fmt.Errorf("start embedded redis: %w", err)
	}
	r := &Redis{Miniredis: mr, stop: make(chan struct{}), done: make(chan struct{})}
	go r.driveClock(50 * time.Millisecond)
	return r, nil
}

func (r *Redis) driveClock(every time.Duration) {
	defer close(r.done)
	t := time.NewTicker(every)
	defer t.Stop()
	last := time.Now()
	r.SetTime(last)
	for {
		select {
		case <-r.stop:
			return
		case now := <-t.C:
			r.FastForward(now.Sub(last))
			r.SetTime(now)
			last = now
		}
	}
}

// Close stops the clock and the server.
func (r *Redis) Close() {
	close(r.stop)
	<-r.done
	r.Miniredis.Close()
}
