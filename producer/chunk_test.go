package producer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

const zone = "023e105f4ecef8ad9ca31a8372d0c353"

// chunkFile repeats destinations within and across chunks of 1 to 3 rows.
const chunkFile = "zone_id,account_id,destination_conf\n" +
	zone + ",,s3://bucket/a?region=us-east-1\n" + // 2
	zone + ",,https://logs.example.com/x?header_Authorization=Basic%20abc\n" + // 3: needs no challenge
	zone + ",,s3://bucket/a?region=us-east-1\n" + // 4: of 2
	zone + ",,https://logs.example.com/x?header_Authorization=Basic%20abc\n" + // 5: of 3
	zone + ",,s3://bucket/b?region=us-east-1\n" + // 6
	zone + ",,s3://bucket/b?region=us-east-1\n" + // 7: of 6
	zone + ",,s3://bucket/a?region=us-east-1\n" + // 8: of 2
	zone + ",,s3://bucket/c?region=us-east-1\n" // 9

var chunkDups = []producer.Duplicate{
	{Line: 4, Of: 2, State: events.Queued}, {Line: 5, Of: 3, State: events.NotRequired},
	{Line: 7, Of: 6, State: events.Queued}, {Line: 8, Of: 2, State: events.Queued},
}

// TestEnqueueChunks: whatever the chunk size, on the embedded and a real
// Redis, the same file gives the same counts and duplicates, in file order,
// and a re-run adds nothing.
func TestEnqueueChunks(t *testing.T) {
	t.Parallel()
	type server struct {
		name string
		rdb  func(t *testing.T) *redis.Client
	}
	servers := []server{
		{"mini", func(t *testing.T) *redis.Client { c, _ := testutil.Mini(t); return c }},
		{"redis", func(t *testing.T) *redis.Client { c, _ := testutil.Redis(t); return c }},
	}
	for _, srv := range servers {
		for _, size := range []int{1, 2, 3, 256} {
			t.Run(fmt.Sprintf("%s/chunk%d", srv.name, size), func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				rdb := srv.rdb(t)
				client := asynq.NewClientFromRedisClient(rdb)
				t.Cleanup(func() { client.Close() })
				store := ledger.NewStore(rdb, ledger.Config{})
				p := producer.NewWith(client, store, producer.ClientConfig{ChunkSize: size, Concurrency: 3})
				res, err := p.Enqueue(ctx, open(chunkFile))
				if err != nil {
					t.Fatal(err)
				}
				if res.Rows != 8 || res.Enqueued != 3 || res.NotRequired != 1 || res.Known != 4 {
					t.Fatalf("result = %+v", res)
				}
				if fmt.Sprint(res.Duplicates) != fmt.Sprint(chunkDups) {
					t.Fatalf("duplicates = %+v\nwant %+v", res.Duplicates, chunkDups)
				}
				insp := asynq.NewInspectorFromRedisClient(rdb)
				if info, err := insp.GetQueueInfo(tasks.Queue); err != nil || info.Pending != 3 {
					t.Fatalf("queue = %+v, %v; want 3 pending challenges", info, err)
				}
				st, err := store.Batch(ctx, res.BatchID)
				if err != nil || st.Total != 4 || st.Counts[events.Queued] != 3 || st.Counts[events.NotRequired] != 1 {
					t.Fatalf("batch = %+v, %v", st, err)
				}
				evs, _ := store.Last(ctx, 10)
				if len(evs) != 1 || evs[0].Event.Event != events.NotRequired || evs[0].Event.Line != 3 ||
					!strings.HasPrefix(evs[0].Event.Destination, "https://logs.example.com/x?header_Authorization=REDACTED") {
					t.Fatalf("events = %+v, want one not_required for line 3", evs)
				}

				again, err := p.Enqueue(ctx, open(chunkFile))
				if err != nil {
					t.Fatal(err)
				}
				if again.Enqueued != 0 || again.NotRequired != 0 || again.Known != 8 {
					t.Fatalf("re-run = %+v", again)
				}
				want := []producer.Duplicate{
					{2, 2, events.Queued}, {3, 3, events.NotRequired}, {4, 2, events.Queued}, {5, 3, events.NotRequired},
					{6, 6, events.Queued}, {7, 6, events.Queued}, {8, 2, events.Queued}, {9, 9, events.Queued},
				}
				if fmt.Sprint(again.Duplicates) != fmt.Sprint(want) {
					t.Fatalf("re-run duplicates = %+v\nwant %+v", again.Duplicates, want)
				}
				if info, _ := insp.GetQueueInfo(tasks.Queue); info.Pending != 3 {
					t.Fatalf("re-run enqueued more: %+v", info)
				}
				if evs, _ := store.Last(ctx, 10); len(evs) != 1 {
					t.Fatalf("re-run emitted events: %+v", evs)
				}
			})
		}
	}
}

// orderEnqueuer checks that no destination is registered before its task
// is enqueued, and fails the task of one destination.
type orderEnqueuer struct {
	producer.Enqueuer
	store *ledger.Store
	fail  string // destination_conf whose enqueue fails

	mu    sync.Mutex
	early []string // destinations found registered before their enqueue
}

func (e *orderEnqueuer) EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	var cp tasks.ChallengePayload
	if err := tasks.Decode(t, &cp); err != nil {
		return nil, err
	}
	if cp.Dest.DestinationConf == e.fail {
		return nil, errors.New("boom")
	}
	if _, err := e.store.Get(ctx, ledger.Key{Batch: cp.Dest.BatchID, Hash: cp.Dest.Hash()}); !errors.Is(err, ledger.ErrNotFound) {
		e.mu.Lock()
		e.early = append(e.early, cp.Dest.DestinationConf)
		e.mu.Unlock()
	}
	return e.Enqueuer.EnqueueContext(ctx, t, opts...)
}

func numbered(n int) string {
	var b strings.Builder
	b.WriteString("zone_id,account_id,destination_conf\n")
	for i := range n {
		fmt.Fprintf(&b, "%s,,s3://bucket/p%d?region=us-east-1\n", zone, i)
	}
	return b.String()
}

// TestEnqueueFailureLineAndOrder: tasks are enqueued before their
// destinations are registered; an enqueue failure names its line, what was
// enqueued before it is registered and counted, and a re-run finishes the
// file.
func TestEnqueueFailureLineAndOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, _ := testutil.Redis(t)
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	store := ledger.NewStore(rdb, ledger.Config{})
	file := numbered(10) // p0 is line 2
	enq := &orderEnqueuer{Enqueuer: client, store: store, fail: "s3://bucket/p5?region=us-east-1"}
	// One enqueue in flight: in a chunk, p4 (line 6) goes before p5 (line
	// 7), and p6, p7 are not reached.
	p := producer.NewWith(enq, store, producer.ClientConfig{ChunkSize: 4, Concurrency: 1})
	res, err := p.Enqueue(ctx, open(file))
	if err == nil || !strings.HasPrefix(err.Error(), "line 7: enqueue: ") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err = %v, want line 7's enqueue failure", err)
	}
	if res.Enqueued != 5 || res.Known != 0 {
		t.Fatalf("result = %+v, want lines 2-6 enqueued", res)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	if info, _ := insp.GetQueueInfo(tasks.Queue); info.Pending != 5 {
		t.Fatalf("queue = %+v, want 5 pending", info)
	}
	if st, _ := store.Batch(ctx, res.BatchID); st.Total != 5 {
		t.Fatalf("batch = %+v, want 5 registered", st)
	}

	enq.fail = ""
	again, err := p.Enqueue(ctx, open(file))
	if err != nil {
		t.Fatal(err)
	}
	if again.Enqueued != 5 || again.Known != 5 {
		t.Fatalf("re-run = %+v, want 5 enqueued, 5 known", again)
	}
	if info, _ := insp.GetQueueInfo(tasks.Queue); info.Pending != 10 {
		t.Fatalf("queue = %+v, want 10 pending", info)
	}
	if len(enq.early) != 0 {
		t.Fatalf("registered before their task was enqueued: %q", enq.early)
	}
}

// TestEnqueueAfterCrashBeforeRegister: tasks enqueued but never registered
// (a crash between the two) are found by TaskID on a re-run, which
// registers them and enqueues nothing twice.
func TestEnqueueAfterCrashBeforeRegister(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, _ := testutil.Redis(t)
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	store := ledger.NewStore(rdb, ledger.Config{})
	p := producer.NewWith(client, store, producer.ClientConfig{ChunkSize: 7})
	file := numbered(20)
	if _, err := p.Enqueue(ctx, open(file)); err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, "logpush:*").Result()
	if err != nil || len(keys) < 20 {
		t.Fatalf("keys = %d, %v", len(keys), err)
	}
	if err := rdb.Del(ctx, keys...).Err(); err != nil {
		t.Fatal(err)
	}
	res, err := p.Enqueue(ctx, open(file))
	if err != nil {
		t.Fatal(err)
	}
	if res.Enqueued != 20 || res.Known != 0 {
		t.Fatalf("result = %+v", res)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	if info, _ := insp.GetQueueInfo(tasks.Queue); info.Pending != 20 {
		t.Fatalf("queue = %+v, want 20 pending", info)
	}
	if st, _ := store.Batch(ctx, res.BatchID); st.Total != 20 || st.Counts[events.Queued] != 20 {
		t.Fatalf("batch = %+v", st)
	}
}

// TestEnqueueScriptCacheFlushed: the pipelined scripts load themselves
// again when the server lost them (SCRIPT FLUSH, a restart).
func TestEnqueueScriptCacheFlushed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, _ := testutil.Mini(t) // a private server: flushing its scripts disturbs no one
	loads := &loadCounter{}
	rdb.AddHook(loads)
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	store := ledger.NewStore(rdb, ledger.Config{})
	p := producer.NewWith(client, store, producer.ClientConfig{Now: func() time.Time { return time.Unix(1700000000, 0) }})
	for i, f := range []string{file, chunkFile} {
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		res, err := p.Enqueue(ctx, open(f))
		if err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
		if res.Enqueued+res.NotRequired+res.Known != res.Rows {
			t.Fatalf("file %d: %+v", i, res)
		}
	}
	// Each file: the register and the transition scripts.
	if n := loads.n.Load(); n < 4 {
		t.Fatalf("%d SCRIPT LOADs in pipelines' retries, want 4", n)
	}
}

// loadCounter counts SCRIPT LOAD commands.
type loadCounter struct{ n atomic.Int64 }

func (c *loadCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *loadCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if a := cmd.Args(); len(a) > 1 && strings.EqualFold(fmt.Sprint(a[0]), "script") && strings.EqualFold(fmt.Sprint(a[1]), "load") {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (c *loadCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestEnqueueCancelled: a cancelled enqueue says so, even when the file is
// a single chunk.
func TestEnqueueCancelled(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	store := ledger.NewStore(rdb, ledger.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	enq := cancelEnqueuer{Enqueuer: client, cancel: cancel}
	_, err := producer.NewWith(enq, store, producer.ClientConfig{Concurrency: 1}).Enqueue(ctx, open(numbered(5)))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// cancelEnqueuer cancels the enqueue's context on its first task.
type cancelEnqueuer struct {
	producer.Enqueuer
	cancel context.CancelFunc
}

func (e cancelEnqueuer) EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	info, err := e.Enqueuer.EnqueueContext(ctx, t, opts...)
	e.cancel()
	return info, err
}

// TestEnqueueWorkerRecordedFirst: a destination a worker recorded before
// any producer registered it (no line) is left to registering to decide;
// its task is not enqueued twice.
func TestEnqueueWorkerRecordedFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, _ := testutil.Redis(t)
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	store := ledger.NewStore(rdb, ledger.Config{})
	p := producer.NewWith(client, store, producer.ClientConfig{})
	file := numbered(3)
	res, err := p.Enqueue(ctx, open(file))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := rdb.Keys(ctx, "logpush:dest:*").Result()
	if err != nil || len(keys) != 3 {
		t.Fatalf("keys = %q, %v", keys, err)
	}
	if err := rdb.HDel(ctx, keys[0], "line").Err(); err != nil {
		t.Fatal(err)
	}
	again, err := p.Enqueue(ctx, open(file))
	if err != nil {
		t.Fatal(err)
	}
	if again.BatchID != res.BatchID || again.Enqueued+again.Known != 3 || again.Known < 2 {
		t.Fatalf("re-run = %+v", again)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	if info, _ := insp.GetQueueInfo(tasks.Queue); info.Pending != 3 {
		t.Fatalf("queue = %+v, want 3 pending", info)
	}
}
