package worker

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/internal/keys"
)

// An outage can leave a task active in asynq with no worker running it:
// the dequeue script ran (the task is active, leased for 30s) but its
// reply never reached the worker, or the handler ended and asynq's write
// of its outcome failed. asynq v0.26 recovers such a task only once its
// lease expired 30s before a look of its recoverer, which looks once a
// minute: a 5s outage held those destinations for one to two minutes, and
// counted a retry. A worker killed (kill -9, OOM) leaves the tasks it ran
// active the same way. The orphan sweep requeues them as soon as their
// lease has expired, for orphanSweepFor after each outage and after the
// worker starts (a worker restarted after a kill takes its own orphans).

// orphanSweepEvery is how often the sweep looks while it runs.
const orphanSweepEvery = time.Second

// orphanSweepFor is how long the sweep runs after Redis is back (or the
// worker started): an orphan
// was leased before the outage ended, for 30s (asynq's LeaseDuration), so
// its lease expires before then, with room for orphanSkew and for a
// heartbeat that extended it just before the outage.
const orphanSweepFor = time.Minute

// orphanSkew is how long past its expiry, by this worker's clock, a lease
// must be before the sweep takes its task: a worker still running a task
// extends its lease to 30s ahead every 5s (asynq's heartbeat), so only a
// clock more than 30s behind ours could lose a task it runs.
const orphanSkew = 5 * time.Second

// orphanSweepMax is how many times the sweep requeues one task; beyond
// that, asynq's recoverer retries it (and counts the retry), so that a
// task whose run keeps ending its worker cannot loop for ever.
const orphanSweepMax = 3

// orphanField is the field of asynq's task hash that counts the sweep's
// requeues of the task. asynq reads only its own fields, and deletes the
// hash with the task.
const orphanField = "logpush_orphan_requeues"

// requeueOrphan moves a task from active back to the front of pending, as
// asynq's own Requeue does on shutdown, if its lease expired before the
// cutoff and the sweep has not requeued it orphanSweepMax times. Every key
// holds the queue's hash tag, so it runs on a cluster too.
//
// KEYS[1] asynq:{q}:active, KEYS[2] asynq:{q}:lease, KEYS[3] asynq:{q}:pending,
// KEYS[4] asynq:{q}:t:<id>; ARGV[1] task id, ARGV[2] cutoff (Unix seconds),
// ARGV[3] orphanField, ARGV[4] orphanSweepMax. Returns 1 when it requeued.
var requeueOrphan = redis.NewScript(`
local exp = redis.call("ZSCORE", KEYS[2], ARGV[1])
if not exp or tonumber(exp) >= tonumber(ARGV[2]) then return 0 end
if tonumber(redis.call("HGET", KEYS[4], ARGV[3]) or "0") >= tonumber(ARGV[4]) then return 0 end
if redis.call("LREM", KEYS[1], 0, ARGV[1]) == 0 then return 0 end
redis.call("ZREM", KEYS[2], ARGV[1])
redis.call("RPUSH", KEYS[3], ARGV[1])
redis.call("HSET", KEYS[4], "state", "pending")
redis.call("HINCRBY", KEYS[4], ARGV[3], 1)
return 1`)

// orphanSweep requeues, for orphanSweepFor after each outage and after the
// worker's start, the tasks of its queues whose asynq lease expired (see
// requeueOrphan).
type orphanSweep struct {
	rdb    redis.UniversalClient
	queues []string
	log    *slog.Logger
	back   chan time.Time // an outage ended then; buffered
}

func newOrphanSweep(rdb redis.UniversalClient, queues []string, log *slog.Logger) *orphanSweep {
	return &orphanSweep{rdb: rdb, queues: queues, log: log, back: make(chan time.Time, 1)}
}

// sweepFrom starts (or extends) the sweep from at, when an outage ended or
// the worker started; it never blocks.
func (s *orphanSweep) sweepFrom(at time.Time) {
	select {
	case s.back <- at:
	default: // a sweep is starting already
	}
}

// run sweeps after each outage and the start until ctx is done.
func (s *orphanSweep) run(ctx context.Context) {
	var until time.Time
	t := time.NewTicker(orphanSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case at := <-s.back:
			until = at.Add(orphanSweepFor)
		case now := <-t.C:
			if now.Before(until) {
				s.sweep(ctx, now)
			}
		}
	}
}

// sweep requeues the tasks whose lease expired orphanSkew before now and
// returns how many it requeued. A Redis error ends this look; the next one
// tries again.
func (s *orphanSweep) sweep(ctx context.Context, now time.Time) int {
	cutoff := now.Add(-orphanSkew).Unix()
	n := 0
	for _, q := range s.queues {
		prefix := keys.AsynqQueue(q)
		ids, err := s.rdb.ZRangeByScore(ctx, prefix+"lease", &redis.ZRangeBy{Min: "-inf", Max: "(" + strconv.FormatInt(cutoff, 10)}).Result()
		if err != nil {
			return n
		}
		for _, id := range ids {
			keys := []string{prefix + "active", prefix + "lease", prefix + "pending", prefix + "t:" + id}
			done, err := requeueOrphan.Run(ctx, s.rdb, keys, id, cutoff, orphanField, orphanSweepMax).Int()
			if err != nil {
				return n
			}
			if done == 1 {
				n++
				s.log.Info("requeued a task left without a worker (a Redis outage, or a worker killed)", "task_id", id, "queue", q)
			}
		}
	}
	return n
}
