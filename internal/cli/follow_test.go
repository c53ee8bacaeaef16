package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

// startCmd runs the CLI in the background until ctx ends; the result
// arrives on the channel.
func startCmd(ctx context.Context, args ...string) (chan int, *testutil.Buffer, *testutil.Buffer) {
	out, errb := &testutil.Buffer{}, &testutil.Buffer{}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, args, Env{Stdin: strings.NewReader(""), Stdout: out, Stderr: errb, Getenv: func(string) string { return "" }})
	}()
	return done, out, errb
}

// waitFor waits until cond holds, failing the test at hangAfter.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(hangAfter); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s", what, hangAfter)
		}
	}
}

// TestFollowWaitsOutOutage: status --watch and events --follow wait out a
// Redis outage as the workers do (one line when it goes, one when it is
// back) instead of exiting; once Redis has lost the batch, status says so
// plainly and how to re-enqueue it, and so does status --batch.
func TestFollowWaitsOutOutage(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", srv.port)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	os.WriteFile(in, []byte(fmt.Sprintf("zone_id,account_id,destination_conf\n%032x,,file://%s/d\n", 1, dir)), 0o600)
	code, out, stderr := runEnv(t, map[string]string{"CLOUDFLARE_API_TOKEN": "t"}, "", "enqueue", "--redis", url, "--skip-preflight", "--api-rate", "0", in)
	if code != 0 {
		t.Fatalf("enqueue = %d:\n%s\n%s", code, out, stderr)
	}
	batch := strings.TrimSuffix(strings.Fields(out)[1], ":") // "batch ID: 1 rows, ..."

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	statusDone, _, statusErr := startCmd(ctx, "status", "--redis", url, "--batch", batch, "--watch", "--interval", "100ms")
	eventsDone, _, eventsErr := startCmd(ctx, "events", "--redis", url, "--follow")
	time.Sleep(500 * time.Millisecond) // both are following
	srv.stop()
	// Neither exits during the outage: each says once that it waits.
	stillRunning := func() {
		select {
		case c := <-statusDone:
			t.Fatalf("status --watch exited %d during the outage: %s", c, statusErr)
		case c := <-eventsDone:
			t.Fatalf("events --follow exited %d during the outage: %s", c, eventsErr)
		default:
		}
	}
	waitFor(t, "outage line", func() bool {
		stillRunning()
		return strings.Contains(statusErr.String(), "Redis unreachable since") && strings.Contains(eventsErr.String(), "Redis unreachable since")
	})
	time.Sleep(2 * time.Second) // the outage goes on
	stillRunning()
	srv.start()
	waitFor(t, "back line", func() bool {
		return strings.Contains(statusErr.String(), "Redis reachable again") && strings.Contains(eventsErr.String(), "Redis reachable again")
	})
	for what, b := range map[string]*testutil.Buffer{"status": statusErr, "events": eventsErr} {
		if n := strings.Count(b.String(), "Redis unreachable"); n != 1 {
			t.Errorf("%s: %d outage lines, want 1:\n%s", what, n, b)
		}
	}

	// Redis loses the batch (as a restart without persistence does).
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", srv.port)})
	defer rdb.Close()
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	var c int
	select {
	case c = <-statusDone:
	case <-time.After(hangAfter):
		t.Fatalf("status --watch still watching a batch Redis lost: %s", statusErr)
	}
	want := "batch " + batch + " is gone from Redis (restarted without persistence?): re-enqueue from the file: logpush-onboard enqueue --redis URL " + in
	if c != 1 || !strings.Contains(statusErr.String(), want) {
		t.Errorf("status --watch of a lost batch = %d, want 1 and %q:\n%s", c, want, statusErr)
	}
	cancel()
	if c := <-eventsDone; c != 0 {
		t.Errorf("events --follow stopped = %d, want 0: %s", c, eventsErr)
	}
	code, _, stderr = run(t, "", "status", "--redis", url, "--batch", batch)
	if code != 2 || !strings.Contains(stderr, "no batch "+batch+" on this Redis: check the id") || !strings.Contains(stderr, "re-enqueue from the file") {
		t.Errorf("status --batch of a lost batch = %d:\n%s", code, stderr)
	}
}

// TestAsynqOutageLinesQuiet: asynq's own lines about a Redis it cannot
// reach stay off the terminal (debug), as the worker's outage watch says
// it once; its other lines and everyone else's pass.
func TestAsynqOutageLinesQuiet(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	log := slog.New(logHandler(&b, slog.LevelInfo, false))
	asynqLog := log.With("component", "asynq")
	asynqLog.Error("Dequeue error: UNKNOWN: redis eval error: dial tcp 127.0.0.1:6379: connect: connection refused")
	asynqLog.Warn("Failed to write server state data: UNKNOWN: redis command error: SADD failed: EOF")
	if b.Len() != 0 {
		t.Fatalf("asynq's outage lines reached the terminal:\n%s", b.String())
	}
	asynqLog.Error("Could not move task to archive: task not found")
	log.Error("Redis unreachable since now; retrying", "err", "connection refused")
	if out := b.String(); !strings.Contains(out, "task not found") || !strings.Contains(out, "Redis unreachable since") {
		t.Fatalf("other lines were kept off too:\n%s", out)
	}
	b.Reset()
	debug := slog.New(logHandler(&b, slog.LevelDebug, true)).With("component", "asynq")
	debug.Error("Dequeue error: dial tcp: connect: connection refused")
	if !strings.Contains(b.String(), `"level":"DEBUG"`) {
		t.Fatalf("at --log-level debug, asynq's outage line is kept at debug: %s", b.String())
	}
}

// TestWorkerSaysBatchesGone: a worker says plainly when its Redis
// restarted and kept no batch, and nothing when a restart kept them.
func TestWorkerSaysBatchesGone(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", srv.port)})
	defer rdb.Close()
	if err := ledger.NewStore(rdb, ledger.Config{}).CreateBatch(context.Background(), "b-gone", "in.csv", time.Now()); err != nil {
		t.Fatal(err)
	}
	logs := &testutil.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go watchRedisRestart(ctx, rdb, ledger.NewStore(rdb, ledger.Config{}), 100*time.Millisecond, slog.New(logHandler(logs, slog.LevelInfo, false)))
	time.Sleep(300 * time.Millisecond)
	// A restart that kept the batch (append-only file): nothing to say.
	srv.stop()
	srv.start()
	time.Sleep(time.Second)
	if strings.Contains(logs.String(), "kept no batch") {
		t.Fatalf("a restart that kept the batches said they are gone:\n%s", logs)
	}
	// A restart that kept nothing.
	srv.stop()
	os.RemoveAll(filepath.Join(srv.dir, "appendonlydir"))
	os.Remove(filepath.Join(srv.dir, "dump.rdb"))
	srv.start()
	waitFor(t, "batches-gone line", func() bool {
		return strings.Contains(logs.String(), "Redis restarted and kept no batch (restarted without persistence?)") &&
			strings.Contains(logs.String(), "re-enqueue each file: logpush-onboard enqueue --redis URL FILE")
	})
}
