package producer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// TestBudgetPacedPerCredential: with Budget and named credentials, the
// client settles each credential's budget itself: alice's rows are paced
// at her file's api_rate (2/10s: one challenge per 10s), bob's row after
// them is due at once on a budget of his own, and the default
// credential's row on its own too.
func TestBudgetPacedPerCredential(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Redis(t)
	set, err := credentials.NewSet(
		credentials.Named{Name: "alice", Credentials: credentials.Cloudflare{APIToken: "token-alice"}, APIRate: "2/10s", BudgetKey: "alice"},
		credentials.Named{Name: "bob", Credentials: credentials.Cloudflare{APIToken: "token-bob"}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := producer.NewClient(rdb, &producer.ClientConfig{Credentials: &tasks.CredentialNames{Names: set.Names(), Default: true},
		Budget: &producer.BudgetConfig{Credentials: credentials.Cloudflare{APIToken: "token-default"}, APIRate: "1000/1m", Named: set}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var b strings.Builder
	b.WriteString("zone_id,account_id,destination_conf,credential\n")
	for i := range 5 {
		fmt.Fprintf(&b, "023e105f4ecef8ad9ca31a8372d0c353,,s3://mybucket/p%d?region=us-east-1,alice\n", i)
	}
	b.WriteString("023e105f4ecef8ad9ca31a8372d0c354,,s3://bobbucket/x?region=us-east-1,bob\n")
	b.WriteString("023e105f4ecef8ad9ca31a8372d0c355,,s3://defbucket/x?region=us-east-1,\n")
	res, err := p.Enqueue(context.Background(), open(b.String()))
	if err != nil || res.Enqueued != 7 {
		t.Fatalf("Enqueue = %+v, %v", res, err)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	pending, err := insp.ListPendingTasks(tasks.Queue)
	if err != nil {
		t.Fatal(err)
	}
	due := map[string]int{}
	for _, ti := range pending {
		var cp tasks.ChallengePayload
		if err := json.Unmarshal(ti.Payload, &cp); err != nil {
			t.Fatal(err)
		}
		due[cp.Credential]++
	}
	if due["bob"] != 1 || due[""] != 1 || due["alice"] != 2 {
		t.Errorf("due at once: %v; want alice's first two (her lead), bob's and the default's", due)
	}
	if sched, _ := insp.ListScheduledTasks(tasks.Queue); len(sched) != 3 {
		t.Errorf("scheduled = %d, want alice's last three", len(sched))
	}
}

// TestBudgetRateRequired: a client whose Budget requires its rate is
// refused, before it writes anything, when the budget has another one
// stored; one that adopts takes the stored rate.
func TestBudgetRateRequired(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Redis(t)
	creds := credentials.Cloudflare{APIToken: "token-a"}
	if _, err := producer.NewClient(rdb, &producer.ClientConfig{Budget: &producer.BudgetConfig{Key: "no spaces"}}); err == nil {
		t.Fatal("a bad budget key was taken")
	}
	first, err := producer.NewClient(rdb, &producer.ClientConfig{Budget: &producer.BudgetConfig{Credentials: creds, APIRate: "60/1m", Claim: worker.RateRequire}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Enqueue(context.Background(), open(file)); err != nil {
		t.Fatal(err)
	}
	other, err := producer.NewClient(rdb, &producer.ClientConfig{BatchID: "other", Budget: &producer.BudgetConfig{Credentials: creds, APIRate: "600/1m", Claim: worker.RateRequire}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = other.Enqueue(context.Background(), open(file))
	var rc *worker.RateConflictError
	if !errors.As(err, &rc) || rc.Shared != "60/1m" || rc.Wanted != "600/1m" {
		t.Fatalf("Enqueue at another required rate = %v, want a RateConflictError 600/1m vs 60/1m", err)
	}
	if _, err := other.BatchStatus(context.Background(), "other"); !errors.Is(err, ledger.ErrNoBatch) {
		t.Errorf("the refused batch = %v, want none written", err)
	}
	adopt, err := producer.NewClient(rdb, &producer.ClientConfig{BatchID: "adopt", Budget: &producer.BudgetConfig{Credentials: creds, APIRate: "600/1m"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adopt.Enqueue(context.Background(), open(file)); err != nil {
		t.Fatalf("Enqueue adopting the stored rate = %v", err)
	}
}
