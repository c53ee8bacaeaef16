package worker_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// trips is a go-redis hook that keeps the keys each round trip names.
type trips struct {
	mu   sync.Mutex
	keys [][]string
}

func (tr *trips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (tr *trips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		tr.add(cmd)
		return next(ctx, cmd)
	}
}

func (tr *trips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		tr.add(cmds...)
		return next(ctx, cmds)
	}
}

// add records one round trip: the logpush keys its commands name.
func (tr *trips) add(cmds ...redis.Cmder) {
	var ks []string
	for _, c := range cmds {
		for _, a := range c.Args() {
			if s := fmt.Sprint(a); strings.HasPrefix(s, "logpush:") {
				ks = append(ks, s)
			}
		}
	}
	tr.mu.Lock()
	tr.keys = append(tr.keys, ks)
	tr.mu.Unlock()
}

// TestOutcomeReleasesPathInOneRoundTrip: the outcome of a destination that
// holds its challenge location writes its state and lets go of the location
// in one round trip, the state first: no round trip touches the location
// after the one that records the outcome, and the location is free.
func TestOutcomeReleasesPathInOneRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb := setupShared(t, worker.HandlerConfig{PollFirst: -1})
	sb.api.token = claimToken("zone", sb.a.ScopeID, sharedConf, "1")
	sb.api.onChallenge = func(cloudflare.Target, string) { sb.rd.put(lookFile, sb.api.token, sb.clock.Now()) }
	tr := &trips{}
	sb.rdb.AddHook(tr)
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.a)); err != nil {
		t.Fatal(err)
	}
	tr.mu.Lock()
	task := tr.keys // the task's round trips, not the checks' below
	tr.mu.Unlock()
	if st := sb.state(t, sb.a); st != events.Validated {
		t.Fatalf("state %q, want validated", st)
	}
	if holder, _ := sb.leases.Holder(ctx, sharedLoc); holder != "" {
		t.Fatalf("location still held by %q after the outcome", holder)
	}
	outcome := -1
	for i, ks := range task {
		if slicesContain(ks, "logpush:events") {
			outcome = i
		}
	}
	if outcome < 0 {
		t.Fatal("no round trip wrote the outcome's event")
	}
	if !hasPrefix(task[outcome], "logpush:loc:") {
		t.Errorf("the outcome's round trip names %v: no release of the location", task[outcome])
	}
	for _, ks := range task[outcome+1:] {
		if hasPrefix(ks, "logpush:loc:") {
			t.Errorf("a round trip after the outcome's touches the location: %v", ks)
		}
	}
}

func slicesContain(ks []string, k string) bool {
	for _, s := range ks {
		if s == k {
			return true
		}
	}
	return false
}

func hasPrefix(ks []string, p string) bool {
	for _, s := range ks {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
