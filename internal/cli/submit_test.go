package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/input"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// TestSubmitUsesRecordedCredential: submit-token validates under the
// credential the batch recorded for the destination when the operator
// names none, and refuses a different name.
func TestSubmitUsesRecordedCredential(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	ctx := context.Background()
	cl, err := producer.NewClient(rdb, nil)
	if err != nil {
		t.Fatal(err)
	}
	store := cl.Ledger()
	conf, err := tasks.ParseConf("sumo://endpoint1.collection.sumologic.com/receiver/v1/http/ZaVnC4dhaV3")
	if err != nil {
		t.Fatal(err)
	}
	row := input.Row{Line: 2, Scope: tasks.ScopeZone, ScopeID: "023e105f4ecef8ad9ca31a8372d0c353", Conf: conf}
	const batch = "b1"
	d := tasks.Dest{BatchID: batch, Scope: row.Scope, ScopeID: row.ScopeID, DestinationConf: conf.Raw}
	key := ledger.Key{Batch: batch, Hash: d.Hash()}
	if _, errs := store.RegisterMany(ctx, []ledger.Registration{{Key: key, Meta: ledger.Meta{Line: 2, Scope: row.Scope, ScopeID: row.ScopeID,
		Destination: conf.Redacted(), Type: conf.Type, EnqueuedAt: time.Now(), Credential: "alice"}}}); errs != nil {
		t.Fatal(errs)
	}
	if _, err := store.Transition(ctx, key, events.AwaitingToken, &events.Event{Event: events.AwaitingToken, BatchID: batch}, events.StageChallenge, "filename", "ownership-challenge.txt"); err != nil {
		t.Fatal(err)
	}
	if st, err := store.Get(ctx, key); err != nil || st.Credential != "alice" {
		t.Fatalf("recorded credential = %q, %v; want alice", st.Credential, err)
	}
	const token = "0123456789abcdef0123456789abcdef"
	_, err = cl.SubmitToken(ctx, submission{line: 2, row: row, credential: "bob"}.dest(batch), token)
	if err == nil || !strings.Contains(err.Error(), `enqueued under credential "alice", not "bob"`) {
		t.Fatalf("submit under another credential: %v", err)
	}
	if _, err := cl.SubmitToken(ctx, submission{line: 2, row: row}.dest(batch), token); err != nil {
		t.Fatal(err)
	}
	pending, err := asynq.NewInspectorFromRedisClient(rdb).ListPendingTasks(tasks.FollowUpQueue)
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending validate tasks = %d, %v; want 1", len(pending), err)
	}
	var p tasks.ValidatePayload
	if err := tasks.Decode(asynq.NewTask(pending[0].Type, pending[0].Payload), &p); err != nil {
		t.Fatal(err)
	}
	if p.Credential != "alice" {
		t.Fatalf("validate task under credential %q, want the recorded alice", p.Credential)
	}
}
