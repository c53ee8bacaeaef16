package producer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/budget"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

func open(s string) producer.Opener {
	return func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(s)), nil }
}

const file = "zone_id,account_id,destination_conf\n" +
	"023e105f4ecef8ad9ca31a8372d0c353,,s3://mybucket/a?region=us-east-1\n" +
	"023e105f4ecef8ad9ca31a8372d0c353,,s3://mybucket/a?region=us-east-1\n" + // duplicate of line 2
	",01a7362d577a6c3019a474fd6f485823,https://logs.example.com/x?header_Authorization=Basic%20abc\n" +
	"023e105f4ecef8ad9ca31a8372d0c353,,gs://gbucket/b\n"

func TestEnqueueDedupesAndIsIdempotent(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	store := ledger.NewStore(rdb, ledger.Config{})
	p := producer.NewWith(client, store, producer.ClientConfig{Now: func() time.Time { return time.Unix(1700000000, 0) }})
	res, err := p.Enqueue(context.Background(), open(file))
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != 4 || res.Enqueued != 2 || res.NotRequired != 1 || res.Known != 1 || res.NeedChallenge != 3 {
		t.Fatalf("result = %+v", res)
	}
	if d := res.Duplicates; len(d) != 1 || d[0].Line != 3 || d[0].Of != 2 {
		t.Fatalf("duplicates = %+v, want line 3 of line 2", d)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	info, err := insp.GetQueueInfo(tasks.Queue)
	if err != nil || info.Pending != 2 {
		t.Fatalf("queue = %+v, %v; want 2 pending challenges", info, err)
	}
	// The same file again is the same batch and adds nothing.
	again, err := p.Enqueue(context.Background(), open(file))
	if err != nil {
		t.Fatal(err)
	}
	if again.BatchID != res.BatchID || again.Enqueued != 0 || again.NotRequired != 0 || again.Known != 4 {
		t.Fatalf("re-run = %+v", again)
	}
	if info, _ := insp.GetQueueInfo(tasks.Queue); info.Pending != 2 {
		t.Fatalf("re-run enqueued more: %+v", info)
	}
	st, _ := store.Batch(context.Background(), res.BatchID)
	if st.Total != 3 || st.Counts[events.NotRequired] != 1 || st.Counts[events.Queued] != 2 {
		t.Fatalf("batch = %+v", st)
	}
}

func TestEnqueueInvalidEnqueuesNothing(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	p, err := producer.NewClient(rdb, &producer.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	res, err := p.Enqueue(context.Background(), open(file+"nothex,,s3://mybucket/c?region=us-east-1\n"))
	if !errors.Is(err, producer.ErrInvalid) || res.ErrorCount != 1 || res.Errors[0].Line != 6 {
		t.Fatalf("Enqueue = %+v, %v", res.Plan, err)
	}
	if n, _ := rdb.DBSize(context.Background()).Result(); n != 0 {
		t.Fatalf("%d keys written for an invalid file", n)
	}
	if _, err := producer.Check(context.Background(), open(file), producer.ClientConfig{BatchID: "bad id!"}); err == nil {
		t.Fatal("a batch id with spaces was accepted")
	}
}

// TestNewRefusesWhatCannotWork: New names the setting that cannot work,
// and refuses a missing Redis client.
func TestNewRefusesWhatCannotWork(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	for _, c := range []struct {
		cfg  producer.ClientConfig
		want string
	}{
		{producer.ClientConfig{BatchID: "bad id!"}, `batch id "bad id!"`},
		{producer.ClientConfig{Concurrency: -1}, "concurrency -1"},
		{producer.ClientConfig{ChunkSize: -2}, "chunk size -2"},
		{producer.ClientConfig{MaxErrors: -3}, "max errors -3"},
		{producer.ClientConfig{Task: tasks.Options{Retention: -time.Second}}, "task retention -1s"},
		{producer.ClientConfig{Format: tasks.Format(7)}, "format Format(7)"},
	} {
		if _, err := producer.NewClient(rdb, &c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want %q", c.cfg, err, c.want)
		}
	}
	if _, err := producer.NewClient(nil, nil); !errors.Is(err, producer.ErrNoRedis) {
		t.Errorf("New(nil) = %v, want ErrNoRedis", err)
	}
}

// TestReadAsColumns: per-row identities travel in the task; a bad role ARN
// is a line error naming its column.
func TestReadAsColumns(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	p := producer.NewWith(client, ledger.NewStore(rdb, ledger.Config{}), producer.ClientConfig{})
	in := "zone_id,account_id,destination_conf,aws_profile,aws_role_arn\n" +
		"023e105f4ecef8ad9ca31a8372d0c353,,s3://mybucket/a?region=us-east-1,customer-a,arn:aws:iam::123456789012:role/logpush-reader\n"
	res, err := p.Enqueue(context.Background(), open(in+"023e105f4ecef8ad9ca31a8372d0c353,,s3://mybucket/b?region=us-east-1,,not-an-arn\n"))
	if !errors.Is(err, producer.ErrInvalid) || res.Errors[0].Line != 3 || res.Errors[0].Field != "aws_role_arn" {
		t.Fatalf("Enqueue = %+v, %v", res.Errors, err)
	}
	if _, err := p.Enqueue(context.Background(), open(in)); err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	pending, err := insp.ListPendingTasks(tasks.Queue)
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending = %v, %v", pending, err)
	}
	var cp tasks.ChallengePayload
	if err := tasks.Decode(asynq.NewTask(pending[0].Type, pending[0].Payload), &cp); err != nil {
		t.Fatal(err)
	}
	if cp.ReadAs == nil || cp.ReadAs.AWSProfile != "customer-a" || cp.ReadAs.AWSRoleARN != "arn:aws:iam::123456789012:role/logpush-reader" {
		t.Fatalf("read_as = %+v", cp.ReadAs)
	}
}

// TestPacedEnqueue: with a pacer, the challenges of a batch are due one
// Interval apart in file order, those within the pacer's 15s lead at once,
// and a second batch queues after the first instead of beside it.
func TestPacedEnqueue(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Redis(t)
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	pace, err := budget.NewPacer(rdb, budget.Config{Rate: budget.Rate{Limit: 2, Window: 10 * time.Second}, Key: "paced"}) // 10s apart
	if err != nil {
		t.Fatal(err)
	}
	p := producer.NewWith(client, ledger.NewStore(rdb, ledger.Config{}), producer.ClientConfig{Pacer: pace, ChunkSize: 2})
	var b strings.Builder
	b.WriteString("zone_id,account_id,destination_conf\n")
	for i := range 5 {
		fmt.Fprintf(&b, "023e105f4ecef8ad9ca31a8372d0c353,,s3://mybucket/p%d?region=us-east-1\n", i)
	}
	b.WriteString("023e105f4ecef8ad9ca31a8372d0c353,,https://logs.example.com/x\n")
	start := time.Now()
	res, err := p.Enqueue(context.Background(), open(b.String()))
	if err != nil || res.Enqueued != 5 || res.NotRequired != 1 {
		t.Fatalf("Enqueue = %+v, %v", res, err)
	}
	// The slots count from the pacer's first reservation, somewhere between
	// start and took: the checks allow that much, however slow the machine.
	took := time.Since(start)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	// Slots at -15s, -5s (both due at once), 5s, 15s, 25s.
	pending, err := insp.ListPendingTasks(tasks.Queue)
	if err != nil || len(pending) != 2 {
		t.Fatalf("pending = %d, %v; want the first two challenges", len(pending), err)
	}
	sched, err := insp.ListScheduledTasks(tasks.Queue)
	if err != nil || len(sched) != 3 {
		t.Fatalf("scheduled = %d, %v; want 3", len(sched), err)
	}
	due := make([]time.Duration, len(sched))
	for i, ti := range sched {
		due[i] = ti.NextProcessAt.Sub(start)
	}
	slices.Sort(due)
	for i, d := range due { // asynq keeps whole seconds
		if want := time.Duration(5+10*i) * time.Second; d < want-time.Second || d > want+took+time.Second {
			t.Errorf("challenge %d due after %s, want %s to %s (all: %v)", i+3, d, want, want+took, due)
		}
	}
	// Another batch on the same credential: after the first one's slots.
	p2 := producer.NewWith(client, ledger.NewStore(rdb, ledger.Config{}), producer.ClientConfig{Pacer: pace, BatchID: "second"})
	if _, err := p2.Enqueue(context.Background(), open("zone_id,account_id,destination_conf\n023e105f4ecef8ad9ca31a8372d0c353,,gs://other/x\n")); err != nil {
		t.Fatal(err)
	}
	sched, _ = insp.ListScheduledTasks(tasks.Queue)
	var last time.Duration
	for _, ti := range sched {
		last = max(last, ti.NextProcessAt.Sub(start))
	}
	if last < 34*time.Second || last > 35*time.Second+took+time.Second {
		t.Fatalf("second batch's challenge due after %s, want 35s to %s", last, 35*time.Second+took)
	}
}

// TestEnqueueNoDestinations: an empty input or a CSV header alone is an
// error, and no batch is created.
func TestEnqueueNoDestinations(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	store := ledger.NewStore(rdb, ledger.Config{})
	for _, in := range []string{"", "zone_id,account_id,destination_conf\n", "\n\n"} {
		_, err := producer.NewWith(client, store, producer.ClientConfig{}).Enqueue(context.Background(), open(in))
		if !errors.Is(err, producer.ErrNoDestinations) {
			t.Errorf("Enqueue(%q) = %v, want ErrNoDestinations", in, err)
		}
	}
	if ids, _ := store.Batches(context.Background(), 10); len(ids) != 0 {
		t.Fatalf("batches created: %v", ids)
	}
}

// TestEnqueueSkip: rows Skip returns true for are not enqueued, and the
// batch id stays the one of the whole file.
func TestEnqueueSkip(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	store := ledger.NewStore(rdb, ledger.Config{})
	whole, err := producer.NewWith(nil, nil, producer.ClientConfig{}).Check(context.Background(), open(file))
	if err != nil {
		t.Fatal(err)
	}
	skip := func(d tasks.Dest) bool { return strings.HasPrefix(d.DestinationConf, "s3:") }
	res, err := producer.NewWith(client, store, producer.ClientConfig{Skip: skip}).Enqueue(context.Background(), open(file))
	if err != nil {
		t.Fatal(err)
	}
	if res.BatchID != whole.BatchID || res.Skipped != 2 || res.Enqueued != 1 || res.NotRequired != 1 || res.Known != 0 {
		t.Fatalf("result = %+v, want batch %s with 2 skipped, 1 enqueued, 1 not_required", res, whole.BatchID)
	}
	if st, _ := store.Batch(context.Background(), res.BatchID); st.Total != 2 {
		t.Fatalf("batch total = %d, want 2", st.Total)
	}
}

// countingPacer counts the challenges it paces, all due at once.
type countingPacer struct{ n int }

func (c *countingPacer) Reserve(_ context.Context, n int) (time.Duration, error) {
	c.n += n
	return 0, nil
}

func (c *countingPacer) Interval() time.Duration { return 0 }

// TestEnqueueWatch: a row Watch names a job for is enqueued as that job's
// health task, not challenged (and not paced as a challenge), and counts
// as enqueued; the other rows go on as ever.
func TestEnqueueWatch(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	watch := func(d tasks.Dest) (producer.Watch, bool) {
		return producer.Watch{JobID: 77, Filename: "ownership-challenge.txt"}, strings.HasPrefix(d.DestinationConf, "gs:")
	}
	pacer := &countingPacer{}
	now := time.Now()
	res, err := producer.NewWith(client, ledger.NewStore(rdb, ledger.Config{}), producer.ClientConfig{Watch: watch, WatchFor: time.Hour, Pacer: pacer,
		Now: func() time.Time { return now }}).Enqueue(context.Background(), open(file))
	if err != nil {
		t.Fatal(err)
	}
	if res.Enqueued != 2 || res.NotRequired != 1 || res.Known != 1 || pacer.n != 1 {
		t.Fatalf("result = %+v, %d paced; want 2 enqueued (one of them watched), 1 not_required, 1 duplicate, 1 challenge paced", res, pacer.n)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	challenges, _ := insp.ListPendingTasks(tasks.QueueOf(tasks.TypeChallenge))
	follow, _ := insp.ListPendingTasks(tasks.QueueOf(tasks.TypeHealth))
	if len(challenges) != 1 || len(follow) != 1 || follow[0].Type != tasks.TypeHealth {
		t.Fatalf("%d challenges and follow-ups %v; want 1 challenge and 1 health task", len(challenges), follow)
	}
	var p tasks.HealthPayload
	if err := json.Unmarshal(follow[0].Payload, &p); err != nil {
		t.Fatal(err)
	}
	if p.JobID != 77 || p.Filename != "ownership-challenge.txt" || !p.Deadline.Equal(now.Add(time.Hour)) || !strings.HasPrefix(p.DestinationConf, "gs:") {
		t.Fatalf("health payload = %+v", p)
	}
}

// cancelAtEOF cancels a context when its reader reaches the end.
type cancelAtEOF struct {
	io.Reader
	cancel func()
}

func (c cancelAtEOF) Read(p []byte) (int, error) {
	n, err := c.Reader.Read(p)
	if err == io.EOF {
		c.cancel()
	}
	return n, err
}

// TestEnqueueCancelledAtEnd: an enqueue cancelled as the input ends does
// not report a whole batch: the last chunk did not go in.
func TestEnqueueCancelledAtEnd(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	passes := 0
	openCancel := func() (io.ReadCloser, error) {
		passes++
		if passes == 1 {
			return io.NopCloser(strings.NewReader(file)), nil
		}
		return io.NopCloser(cancelAtEOF{strings.NewReader(file), cancel}), nil
	}
	res, err := producer.NewWith(client, ledger.NewStore(rdb, ledger.Config{}), producer.ClientConfig{}).Enqueue(ctx, openCancel)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Enqueue = %+v, %v; want context.Canceled", res, err)
	}
}

// TestPacedPerCredential: with a pacer per credential, each credential's challenges are
// paced by its own pacer: alice's five rows spread over her budget, and
// bob's row after them is due at once instead of behind hers.
func TestPacedPerCredential(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Redis(t)
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	pacers := map[string]producer.Pacer{}
	for _, name := range []string{"alice", "bob"} {
		pc, err := budget.NewPacer(rdb, budget.Config{Rate: budget.Rate{Limit: 2, Window: 10 * time.Second}, Key: "paced-" + name}) // 10s apart
		if err != nil {
			t.Fatal(err)
		}
		pacers[name] = pc
	}
	var asked []string
	cfg := producer.ClientConfig{Credentials: &tasks.CredentialNames{Names: []string{"alice", "bob"}}}
	p := producer.NewWithPacers(client, ledger.NewStore(rdb, ledger.Config{}), cfg,
		func(c string) (producer.Pacer, error) { asked = append(asked, c); return pacers[c], nil })
	var b strings.Builder
	b.WriteString("zone_id,account_id,destination_conf,credential\n")
	for i := range 5 {
		fmt.Fprintf(&b, "023e105f4ecef8ad9ca31a8372d0c353,,s3://mybucket/p%d?region=us-east-1,alice\n", i)
	}
	b.WriteString("023e105f4ecef8ad9ca31a8372d0c354,,s3://bobbucket/x?region=us-east-1,bob\n")
	res, err := p.Enqueue(context.Background(), open(b.String()))
	if err != nil || res.Enqueued != 6 {
		t.Fatalf("Enqueue = %+v, %v", res, err)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	pending, err := insp.ListPendingTasks(tasks.Queue)
	if err != nil || len(pending) != 3 {
		t.Fatalf("pending = %d, %v; want alice's first two and bob's", len(pending), err)
	}
	bobDue := false
	for _, ti := range pending {
		var cp tasks.ChallengePayload
		if err := json.Unmarshal(ti.Payload, &cp); err != nil {
			t.Fatal(err)
		}
		bobDue = bobDue || cp.Credential == "bob"
	}
	if !bobDue {
		t.Error("bob's row waits behind alice's")
	}
	if sched, _ := insp.ListScheduledTasks(tasks.Queue); len(sched) != 3 {
		t.Errorf("scheduled = %d, want alice's last three", len(sched))
	}
	slices.Sort(asked)
	if strings.Join(asked, ",") != "alice,bob" {
		t.Errorf("pacers asked for %v, want alice and bob once", asked)
	}
}
