package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/internal/keys"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// asynq archives a task, payload and all, where no handler of ours can
// stop it: its recoverer archives a task whose lease expired on its last
// attempt (asynq.ErrLeaseExpired: a worker killed, or Redis lost, mid-run),
// and its processor one whose handler ran past asynq's deadline on its last
// attempt (lastretry.go, overran). The payload holds the destination_conf,
// its secrets (a SAS sig, S3 keys) with it, and asynq keeps an archived
// task for 90 days. The archive sweep takes such tasks out: every
// archiveSweepEvery it records the failure of each archived task's
// destination, unless it is finished or a newer round or challenge took
// it over, and deletes the task.

// archiveSweepEvery is how often the archive sweep looks.
const archiveSweepEvery = 10 * time.Second

// archiveSweepPage is how many archived tasks one read of a queue's
// archive returns (asynq's listing: a ZRANGE of the page, and each task's
// hash).
const archiveSweepPage = 100

// deleteArchived deletes an archived task, as asynq v0.26's deleteTaskCmd
// does (internal/rdb/inspect.go: the task's id out of its state's sorted
// set, then its hash), but only while the task is still archived: a task
// an operator ran again (archived to pending) meanwhile is left to run.
// Our tasks take no asynq.Unique, so there is no unique key to delete.
// Both keys hold the queue's hash tag.
//
// KEYS[1] asynq:{q}:t:<id>, KEYS[2] asynq:{q}:archived; ARGV[1] task id.
// Returns 1 when it deleted the task, 0 when it was not archived (gone,
// or deleted by another worker's sweep).
var deleteArchived = redis.NewScript(`
if redis.call("HGET", KEYS[1], "state") ~= "archived" then return 0 end
redis.call("ZREM", KEYS[2], ARGV[1])
return redis.call("DEL", KEYS[1])`)

// archiveSweep takes our tasks out of asynq's archive of queues. Any
// number of workers may sweep at once: the ledger's transition records a
// destination's failure once, and deleteArchived deletes a task once.
type archiveSweep struct {
	rdb    redis.UniversalClient
	insp   *asynq.Inspector
	h      *handlers
	queues []string
}

func newArchiveSweep(rdb redis.UniversalClient, insp *asynq.Inspector, h *handlers, queues []string) *archiveSweep {
	return &archiveSweep{rdb: rdb, insp: insp, h: h, queues: queues}
}

// run sweeps every archiveSweepEvery until ctx is done.
func (s *archiveSweep) run(ctx context.Context) {
	t := time.NewTicker(archiveSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.sweep(ctx); err != nil && ctx.Err() == nil {
				s.h.log.Debug("archive sweep: look ended early; the next one goes on", "err", err)
			}
		}
	}
}

// sweep takes every archived task of our task types out of each queue and
// returns how many it deleted. An error ends the look; the next one goes
// on where it stopped (what it deleted is gone, the rest still archived).
func (s *archiveSweep) sweep(ctx context.Context) (int, error) {
	n := 0
	for _, q := range s.queues {
		// A page whose tasks all stay (not ours, or left to an operator)
		// is passed; one where a task went is read again, since the tasks
		// after it moved up.
		for page := 1; ; {
			infos, err := s.insp.ListArchivedTasks(q, asynq.PageSize(archiveSweepPage), asynq.Page(page))
			if errors.Is(err, asynq.ErrQueueNotFound) {
				break // nothing was ever enqueued into it on this Redis
			}
			if err != nil {
				return n, fmt.Errorf("list archived tasks of %s: %w", q, err)
			}
			if len(infos) == 0 {
				break
			}
			deleted := 0
			for _, info := range infos {
				if !slices.Contains(tasks.Types(), info.Type) {
					continue
				}
				ok, err := s.take(ctx, q, info)
				if err != nil {
					return n, err
				}
				if ok {
					deleted++
				}
			}
			n += deleted
			if deleted == 0 {
				page++
			}
		}
	}
	return n, nil
}

// take records the failure of the destination of info, an archived task
// of ours in queue q (unless it is finished or superseded), then deletes
// the task; it reports whether it deleted it. The record comes first: a
// sweep cut off between the two leaves the task for the next one, whose
// record changes nothing.
func (s *archiveSweep) take(ctx context.Context, q string, info *asynq.TaskInfo) (bool, error) {
	h := s.h
	outcome := "undecodable payload: dropped"
	var r *run
	var lastErr string
	d, lease, derr := archivedDest(info)
	if derr == nil {
		r = newRun(d, info.Type)
		r.lease = lease // a poll's path lease, released with the outcome
		r.log = slog.New(slog.DiscardHandler)
		if conf, err := tasks.ParseConf(d.DestinationConf); err == nil {
			r.conf = conf
		}
		lastErr = r.clean(cmp.Or(info.LastErr, "no error recorded"))
		var err error
		if outcome, err = s.record(ctx, r, lastErr); err != nil {
			return false, err
		}
	}
	prefix := keys.AsynqQueue(q)
	done, err := deleteArchived.Run(ctx, s.rdb, []string{prefix + "t:" + info.ID, prefix + "archived"}, info.ID).Int()
	if err != nil || done != 1 {
		return false, err
	}
	h.metrics.Tasks.WithLabelValues(info.Type, "swept").Inc()
	attrs := []any{"task_id", info.ID, "queue", q, "type", info.Type, "retried", info.Retried, "destination", outcome}
	if r != nil {
		attrs = append(attrs, "batch_id", r.d.BatchID, "dest", r.key.Hash, "gen", r.d.Gen, "round", r.d.Round, "last_error", lastErr)
	} else {
		attrs = append(attrs, "err", derr) // quotes no byte of the payload (tasks.Decode)
	}
	h.log.Warn("deleted a task asynq had archived with its payload", attrs...)
	return true, nil
}

// record fails r's destination for its archived task, unless it is
// finished or a newer round or challenge generation took it over (the
// ledger's transition itself refuses a finished destination); it returns
// what became of the destination, for the log.
func (s *archiveSweep) record(ctx context.Context, r *run, lastErr string) (string, error) {
	st, err := s.h.store.Get(ctx, r.key)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		// Not registered: the failure registers it at the task's line.
	case err != nil:
		return "", err
	case st.State.Terminal():
		return "already " + string(st.State), nil
	case st.Round > r.d.Round || (st.Round == r.d.Round && st.Gen > r.d.Gen):
		return "superseded by a newer challenge or round", nil
	default:
		r.st = &st
	}
	err = s.h.rec.fail(ctx, r, "", errors.New("asynq archived the task: "+lastErr))
	if !errors.Is(err, errFailed) {
		return "", err
	}
	return "failed", nil
}

// archivedDest is the destination of an archived task of ours, and the
// path lease a poll task holds ("" for none).
func archivedDest(info *asynq.TaskInfo) (tasks.Dest, string, error) {
	t := asynq.NewTask(info.Type, info.Payload)
	if info.Type == tasks.TypePoll {
		var p tasks.PollPayload
		err := tasks.Decode(t, &p)
		return p.Dest, p.Lease, err
	}
	var d tasks.Dest // every payload holds a Dest, embedded
	err := tasks.Decode(t, &d)
	return d, "", err
}
