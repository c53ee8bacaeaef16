package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// child is a worker process: this test binary running the worker command.
type child struct {
	cmd  *exec.Cmd
	done chan error
}

func startChild(t *testing.T, logPath string, args ...string) *child {
	t.Helper()
	return startChildEnv(t, logPath, []string{"CLOUDFLARE_API_TOKEN=crash-test-token"}, args...)
}

// startChildEnv is startChild with environment variables (KEY=value).
func startChildEnv(t *testing.T, logPath string, env []string, args ...string) *child {
	t.Helper()
	argv, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "LOGPUSH_TEST_CHILD_ARGS="+string(argv)), env...)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	cmd.Stdout, cmd.Stderr = logf, logf
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

func waitDone(t *testing.T, store *ledger.Store, batch string, atLeast int64, timeout time.Duration) events.BatchStatus {
	t.Helper()
	timeout = hangBound(timeout)
	deadline := time.Now().Add(timeout)
	for {
		st, err := store.Batch(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		if st.Done() >= atLeast {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d done after %s: %+v", st.Done(), atLeast, timeout, st.Counts)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkOneTerminalEvent checks that each of the n destinations of batch has
// exactly one terminal event on the stream.
func checkOneTerminalEvent(t *testing.T, store *ledger.Store, batch string, n int) {
	t.Helper()
	perDest := map[string]int{}
	after := "0"
	for {
		es, err := store.Read(context.Background(), after, 1000, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			after = e.ID
			if e.Event.BatchID == batch && e.Event.Event.Terminal() {
				perDest[e.Event.Scope+e.Event.ScopeID+e.Event.Destination]++
			}
		}
	}
	if len(perDest) != n {
		t.Fatalf("terminal events for %d destinations, want %d", len(perDest), n)
	}
	for d, k := range perDest {
		if k != 1 {
			t.Errorf("%d terminal events for %s", k, d)
		}
	}
}

func writeFileCSV(t *testing.T, path, dir string, n int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "zone_id,account_id,destination_conf")
	for i := range n {
		fmt.Fprintf(w, "%032x,,file://%s\n", i+1, filepath.Join(dir, "dest", fmt.Sprint(i)))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestCrashSafety runs a batch of 1000 destinations through worker
// processes that are killed with SIGKILL, stopped with SIGTERM and cut off
// from Redis, and re-enqueues the file half done: every destination ends
// validated with exactly one terminal event.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about two minutes: asynq recovers a killed worker's tasks after their lease expires")
	}
	t.Parallel()
	const n = 1000
	rdb, opt := testutil.Redis(t)
	dir := t.TempDir()
	sim, err := simulator.New(simulator.Config{
		Write: writeFunc(&destination.File{}), WriteDelay: 100 * time.Millisecond, WriteJitter: 400 * time.Millisecond,
		APIToken: "crash-test-token", ErrorRate: 0.05,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	simsrv := httptest.NewServer(sim)
	t.Cleanup(simsrv.Close)

	csv := filepath.Join(dir, "batch.csv")
	writeFileCSV(t, csv, dir, n)
	store := ledger.NewStore(rdb, ledger.Config{})
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	enqueue := func() producer.Result {
		p := newProducer(t, rdb, producer.ClientConfig{Format: tasks.FormatCSV})
		res, err := p.Enqueue(context.Background(), func() (io.ReadCloser, error) { return os.Open(csv) })
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := enqueue()
	if res.Enqueued != n {
		t.Fatalf("enqueued %d, want %d", res.Enqueued, n)
	}
	workerArgs := func(redisAddr string) []string {
		return []string{"worker", "--redis", fmt.Sprintf("redis://%s/%d", redisAddr, opt.DB), "--cloudflare-api-url", simsrv.URL,
			"--metrics-addr", "", "--concurrency", "20", "--api-rate", "0", "--shutdown-timeout", "5s", "--log-level", "warn"}
	}
	logPath := filepath.Join(dir, "workers.log")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("worker logs:\n%s", b)
		}
	})

	// 1. kill -9 in the middle of the batch.
	a := startChild(t, logPath, workerArgs(opt.Addr)...)
	waitDone(t, store, res.BatchID, 250, 2*time.Minute)
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.done

	// 2. Re-enqueueing the half-done file adds nothing.
	if again := enqueue(); again.Enqueued != 0 || again.Known != n {
		t.Fatalf("re-enqueue = %+v, want all %d known", again, n)
	}

	// 3. SIGTERM drains within the shutdown timeout.
	b := startChild(t, logPath, workerArgs(opt.Addr)...)
	st := waitDone(t, store, res.BatchID, 500, 2*time.Minute)
	start := time.Now()
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-b.done:
		if err != nil {
			t.Fatalf("worker exit after SIGTERM: %v", err)
		}
	case <-time.After(hangAfter): // a hang; the drain's time is logged, not asserted
		t.Fatalf("worker did not exit within %s of SIGTERM (shutdown timeout 5s)", hangAfter)
	}
	drain := time.Since(start)
	t.Logf("drain after SIGTERM: %s (with %d of %d done)", drain.Round(time.Millisecond), st.Done(), n)

	// 4. Lose the Redis connection for a few seconds.
	proxy := testutil.NewProxy(t, opt.Addr)
	c := startChild(t, logPath, workerArgs(proxy.Addr())...)
	waitDone(t, store, res.BatchID, 700, 2*time.Minute)
	proxy.Cut(3 * time.Second)
	final := waitDone(t, store, res.BatchID, n, 4*time.Minute)
	if final.Counts[events.Validated] != n || final.Counts[events.Failed] != 0 {
		t.Fatalf("final = %+v, want %d validated", final.Counts, n)
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	<-c.done

	checkOneTerminalEvent(t, store, res.BatchID, n)
	t.Logf("crash safety: %d destinations, %d terminal events each; simulator %s", n, 1, sim.Stats())
}

// childLogLevel is the --log-level of the worker processes tests start:
// warn, or LOGPUSH_TEST_LOG_LEVEL to trace a failure.
func childLogLevel() string {
	if l := os.Getenv("LOGPUSH_TEST_LOG_LEVEL"); l != "" {
		return l
	}
	return "warn"
}

// dumpStuck logs what a failed test left in flight: every destination of
// batch not yet terminal, and every task still in the workers' queues.
func dumpStuck(t *testing.T, rdb redis.UniversalClient, store *ledger.Store, batch string) {
	t.Helper()
	ctx := context.Background()
	err := store.Dests(ctx, batch, func(hash string, st ledger.DestState) error {
		if !st.State.Terminal() {
			t.Logf("in flight: %s %s%s %s line=%d gen=%d round=%d requested=%s attempts=%+v",
				hash, st.Scope, st.ScopeID, st.State, st.Line, st.Gen, st.Round, st.RequestedAt.Format(time.RFC3339Nano), st.Attempts)
		}
		return nil
	})
	if err != nil {
		t.Logf("dump destinations: %v", err)
	}
	in := asynq.NewInspectorFromRedisClient(rdb)
	for _, q := range tasks.Queues() {
		for name, list := range map[string]func(string, ...asynq.ListOption) ([]*asynq.TaskInfo, error){
			"pending": in.ListPendingTasks, "active": in.ListActiveTasks, "scheduled": in.ListScheduledTasks,
			"retry": in.ListRetryTasks, "archived": in.ListArchivedTasks,
		} {
			ts, err := list(q)
			if err != nil {
				t.Logf("dump %s %s: %v", q, name, err)
				continue
			}
			for _, ti := range ts {
				t.Logf("task %s %s: %s %s next=%s retried=%d last_err=%q",
					q, name, ti.Type, ti.ID, ti.NextProcessAt.Format(time.RFC3339Nano), ti.Retried, ti.LastErr)
			}
		}
	}
}
