package producer_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// TestCredentialColumn: a row's credential name travels in its task (the
// name, nothing else), an unknown name is a line error that lists the
// known ones, and the name is no part of the destination's identity: the
// batch id is the one of the same file without the column, and the same
// destination under another credential is a duplicate.
func TestCredentialColumn(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	cfg := producer.ClientConfig{Credentials: &tasks.CredentialNames{Names: []string{"alice", "bob"}, Default: true}}
	p, err := producer.NewClient(rdb, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	const a, b = "023e105f4ecef8ad9ca31a8372d0c353,,s3://mybucket/a?region=us-east-1", "023e105f4ecef8ad9ca31a8372d0c354,,gs://gbucket/b"
	plain := "zone_id,account_id,destination_conf\n" + a + "\n" + b + "\n" + a + "\n"
	in := "zone_id,account_id,destination_conf,credential\n" + a + ",alice\n" + b + ",\n" + a + ",bob\n"

	res, err := p.Enqueue(context.Background(), open(in+b+",carol\n"))
	if !errors.Is(err, producer.ErrInvalid) || res.ErrorCount != 1 {
		t.Fatalf("Enqueue = %+v, %v; want the unknown credential refused", res.Plan, err)
	}
	if le := res.Errors[0]; le.Line != 5 || le.Field != "credential" || le.Error() != `line 5: credential: unknown credential "carol" (known: alice, bob)` {
		t.Fatalf("line error = %v", le)
	}
	planPlain, err := producer.Check(context.Background(), open(plain), producer.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	res, err = p.Enqueue(context.Background(), open(in))
	if err != nil {
		t.Fatal(err)
	}
	if res.BatchID != planPlain.BatchID {
		t.Errorf("batch id %s, want %s as without the credential column", res.BatchID, planPlain.BatchID)
	}
	if res.Enqueued != 2 || res.Known != 1 || res.Duplicates[0].Line != 4 || res.Duplicates[0].Of != 2 {
		t.Errorf("result = %+v: want line 4 (bob) a duplicate of line 2 (alice)", res)
	}
	pending, err := asynq.NewInspectorFromRedisClient(rdb).ListPendingTasks(tasks.Queue)
	if err != nil || len(pending) != 2 {
		t.Fatalf("pending = %v, %v", pending, err)
	}
	got := map[int]string{}
	for _, ti := range pending {
		var cp tasks.ChallengePayload
		if err := tasks.Decode(asynq.NewTask(ti.Type, ti.Payload), &cp); err != nil {
			t.Fatal(err)
		}
		got[cp.Line] = cp.Credential
		if cp.Line == 3 && strings.Contains(string(ti.Payload), `"credential"`) {
			t.Errorf("the default credential's task names one: %s", ti.Payload)
		}
	}
	if got[2] != "alice" || got[3] != "" {
		t.Errorf("credentials in the tasks = %v, want line 2 alice, line 3 the default", got)
	}
	// The ledger records the name too, for submit-token.
	store := ledger.NewStore(rdb, ledger.Config{})
	for _, ti := range pending {
		var cp tasks.ChallengePayload
		if err := tasks.Decode(asynq.NewTask(ti.Type, ti.Payload), &cp); err != nil {
			t.Fatal(err)
		}
		st, err := store.Get(context.Background(), ledger.Key{Batch: res.BatchID, Hash: cp.Hash()})
		if err != nil || st.Credential != got[cp.Line] {
			t.Errorf("line %d: ledger credential %q, %v; want %q", cp.Line, st.Credential, err, got[cp.Line])
		}
	}

	// retry rebuilds tasks from the rows: the name comes along.
	for _, ti := range pending {
		var cp tasks.ChallengePayload
		if err := tasks.Decode(asynq.NewTask(ti.Type, ti.Payload), &cp); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Transition(context.Background(), ledger.Key{Batch: res.BatchID, Hash: cp.Hash()}, events.Failed, nil, ""); err != nil {
			t.Fatal(err)
		}
	}
	rr, err := p.Retry(context.Background(), res.BatchID, open(in))
	if err != nil || rr.Failed != 2 || rr.Retried != 2 || len(rr.Lost) != 0 {
		t.Fatalf("Retry = %+v, %v; want both failed destinations retried", rr, err)
	}
	if pending, err = asynq.NewInspectorFromRedisClient(rdb).ListPendingTasks(tasks.Queue); err != nil {
		t.Fatal(err)
	}
	retried := map[int]string{}
	for _, ti := range pending {
		var cp tasks.ChallengePayload
		if err := tasks.Decode(asynq.NewTask(ti.Type, ti.Payload), &cp); err != nil {
			t.Fatal(err)
		}
		if cp.Round == 1 {
			retried[cp.Line] = cp.Credential
		}
	}
	if len(retried) != 2 || retried[2] != "alice" || retried[3] != "" {
		t.Errorf("credentials in the retried tasks = %v, want line 2 alice, line 3 the default", retried)
	}
}
