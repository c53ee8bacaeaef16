package worker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/location"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// TestUnreadablePathLeavesNothingInRedis: two Azure destinations on one
// path whose account does not resolve, through asynq: no challenge is
// spent, each fails by its --poll-deadline naming the storage error (the
// second once the first let go of the path), and afterwards no task is
// left in any asynq set and the SAS signature is nowhere in Redis.
func TestUnreadablePathLeavesNothingInRedis(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	b := setup(t)
	b.store = ledger.NewStore(rdb, ledger.Config{})
	leases, err := location.New(rdb, location.Config{})
	if err != nil {
		t.Fatal(err)
	}
	b.rd.err = noSuchHost()
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	insp := asynq.NewInspectorFromRedisClient(rdb)
	h := worker.NewHandlers(worker.Deps{API: b.api, Reader: b.rd, Store: b.store, Enqueue: client, Leases: leases, Waker: insp,
		Metrics: newMetrics(t)}, worker.HandlerConfig{PollDeadline: time.Second, PollInterval: 100 * time.Millisecond})
	mux := asynq.NewServeMux()
	h.Register(mux)
	srv := worker.NewServer(rdb, worker.ServerConfig{Concurrency: 4, Backoff: worker.Backoff{Initial: 10 * time.Millisecond, Max: 20 * time.Millisecond}})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)

	conf := "azure://nosuchacct.blob.core.windows.net/logs/cf?sv=2022-11-02&sp=rw&sig=" + sasSig
	for i, zone := range []string{"023e105f4ecef8ad9ca31a8372d0c353", "c3f2a9c1d0e4b5a6978877665544332b"} {
		d := b.dest
		d.DestinationConf, d.ScopeID, d.Line = conf, zone, i+2
		task, err := tasks.NewChallengeTask(d, tasks.Options{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Enqueue(task); err != nil {
			t.Fatal(err)
		}
	}
	for _, ev := range waitEvents(t, b.store, 2) {
		if ev.Event != events.Failed || ev.Error == nil || !strings.Contains(ev.Error.Message, "before the challenge") ||
			!strings.Contains(ev.Error.Message, "no such host") {
			t.Fatalf("event %+v, want failed naming the storage error", ev)
		}
	}
	if b.api.challenges != 0 {
		t.Fatalf("%d challenges for an unreadable path, want 0", b.api.challenges)
	}
	waitQueues(t, insp, "tasks still queued", func(info *asynq.QueueInfo) bool {
		return info.Pending+info.Active+info.Scheduled+info.Retry+info.Archived == 0
	})
	if dump := testutil.DumpRedis(t, rdb); strings.Contains(dump, sasSig) {
		t.Fatalf("the SAS signature is at rest in Redis:\n%s", dump)
	}
}
