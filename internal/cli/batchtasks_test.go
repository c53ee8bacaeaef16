package cli

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/keys"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// A finished batch waits for its own tasks, found by their ids at every
// generation up to its destinations', and for no other batch's.
func TestWaitBatchTasksLooksOnlyAtItsBatch(t *testing.T) {
	ctx := context.Background()
	rdb, _ := testutil.Mini(t)
	store := ledger.NewStore(rdb, ledger.Config{})
	client := asynq.NewClientFromRedisClient(rdb)
	insp := asynq.NewInspectorFromRedisClient(rdb)

	dest := func(batch, zone string, gen int) tasks.Dest {
		return tasks.Dest{BatchID: batch, Scope: tasks.ScopeZone, ScopeID: zone, DestinationConf: "s3://bucket/" + zone + "?region=us-east-1", Gen: gen}
	}
	mine0, other := dest("mine", "023e105f4ecef8ad9ca31a8372d0c353", 0), dest("other", "023e105f4ecef8ad9ca31a8372d0c354", 0)
	mine1 := mine0
	mine1.Gen = 1
	for _, d := range []tasks.Dest{mine0, other} {
		if _, errs := store.RegisterMany(ctx, []ledger.Registration{{Key: ledger.Key{Batch: d.BatchID, Hash: d.Hash()},
			Meta: ledger.Meta{Line: 2, Scope: d.Scope, ScopeID: d.ScopeID, Type: "s3", EnqueuedAt: time.Now()}}}); errs != nil {
			t.Fatal(errs)
		}
	}
	if _, err := store.Enter(ctx, ledger.Key{Batch: "mine", Hash: mine1.Hash()}, 2, events.AwaitingToken, 0, 1, events.StageChallenge, "gen", 1); err != nil {
		t.Fatal(err)
	}
	// A poll of each generation of mine, due in an hour, the challenge of
	// its next generation (enqueued, not yet run), and a challenge of the
	// other batch.
	mine2 := mine1
	mine2.Gen = 2
	next, err := tasks.NewChallengeTask(mine2, tasks.Options{}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(next); err != nil {
		t.Fatal(err)
	}
	want := []string{keys.AsynqQueue(tasks.Queue) + "t:" + tasks.ChallengeTaskID(mine2)}
	for _, d := range []tasks.Dest{mine0, mine1} {
		task, err := tasks.NewPollTask(tasks.PollPayload{Dest: d, Filename: "f.txt"}, tasks.Options{}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Enqueue(task); err != nil {
			t.Fatal(err)
		}
		want = append(want, keys.AsynqQueue(tasks.FollowUpQueue)+"t:"+tasks.PollTaskID(d))
	}
	task, err := tasks.NewChallengeTask(other, tasks.Options{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(task); err != nil {
		t.Fatal(err)
	}

	ks, err := batchTaskKeys(ctx, store, "mine")
	if err != nil {
		t.Fatal(err)
	}
	left, err := existing(ctx, rdb, ks)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(left)
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Fatalf("tasks of the batch left = %q, want %q", left, want)
	}

	var out, errOut testutil.Buffer
	env := Env{Stdout: &out, Stderr: &errOut}
	waitBatchTasks(ctx, env, rdb, store, "mine", 0)
	if !strings.Contains(errOut.String(), "warning: 3 tasks of batch mine are still in Redis") {
		t.Errorf("past its limit, the wait says %q; want the 3 tasks named", errOut.String())
	}
	for _, d := range []tasks.Dest{mine0, mine1} {
		if err := insp.DeleteTask(tasks.FollowUpQueue, tasks.PollTaskID(d)); err != nil {
			t.Fatal(err)
		}
	}
	if err := insp.DeleteTask(tasks.Queue, tasks.ChallengeTaskID(mine2)); err != nil {
		t.Fatal(err)
	}
	errOut = testutil.Buffer{}
	waitBatchTasks(ctx, env, rdb, store, "mine", time.Hour) // returns at once: the other batch's task is not its own
	if errOut.String() != "" || out.String() != "" {
		t.Errorf("with no task of its own left, the wait said %q %q", out.String(), errOut.String())
	}
}
