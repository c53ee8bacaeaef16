//go:build unix

package worker_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/location"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// BenchmarkChallengeLooksFirst is the whole of a destination whose file is
// there with the challenge answer (bench a): its challenge task takes its
// path, reads it, challenges, looks, validates and records the outcome,
// each destination on a path of its own, on the real Redis with
// Cloudflare and the storage faked. cpu-ns/op is this process's CPU per
// destination (rusage): the handlers' and the Redis client's, not the
// Redis server's; ns/op is dominated by the round trips.
func BenchmarkChallengeLooksFirst(b *testing.B) {
	ctx := context.Background()
	rdb, _ := testutil.Redis(b)
	leases, err := location.New(rdb, location.Config{})
	if err != nil {
		b.Fatal(err)
	}
	api := &fakeAPI{}
	rd := &fakeReader{objs: map[string]destination.Object{}}
	enq := &fakeEnqueuer{}
	h := worker.NewHandlers(worker.Deps{API: api, Reader: rd, Store: ledger.NewStore(rdb, ledger.Config{}), Enqueue: enq,
		Metrics: newMetrics(b), Leases: leases, Waker: &fakeWaker{}}, worker.HandlerConfig{PollFirst: -1})
	api.onChallenge = func(t cloudflare.Target, conf string) {
		api.token = claimToken("zone", t.ID, conf, "1")
		rd.put(lookFile, api.token, time.Now())
	}
	now := time.Now()
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	i := 0
	for b.Loop() {
		i++
		d := tasks.Dest{BatchID: "b1", Scope: tasks.ScopeZone, ScopeID: fmt.Sprintf("%032x", i),
			DestinationConf: fmt.Sprintf("s3://bucket/logs/%d?region=us-east-1", i), EnqueuedAt: now, Line: i + 1}
		task, err := tasks.NewChallengeTask(d, tasks.Options{}, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := h.Challenge(ctx, task); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(i), "cpu-ns/op")
	if n := len(enq.queued()); n > 0 {
		b.Fatalf("%d of %d destinations left a task: not all validated in their challenge task", n, i)
	}
}

// cpuTime is this process's user and system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
