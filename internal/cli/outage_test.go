package cli

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

// redisServer is a redis-server of the test's own, on a free port, with an
// append-only file so that a restart keeps the data.
type redisServer struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
}

func startRedisServer(t *testing.T) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &redisServer{t: t, port: port, dir: t.TempDir()}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *redisServer) start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", "--port", fmt.Sprint(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--appendonly", "yes", "--save", "", "--daemonize", "no", "--loglevel", "notice", "--logfile", filepath.Join(s.dir, "server.log"))
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.port))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %d did not start: %v", s.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the server as a restart does (SIGTERM: it flushes the AOF).
func (s *redisServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
	s.cmd = nil
}

// TestRedisRestartMidBatch restarts the Redis (append-only) for 5 s while
// a batch is in flight: afterwards every destination ends, none failed and
// none twice, including those whose dequeue the outage cut off (asynq
// marked them active, the worker never got them: the worker's orphan sweep
// requeues them once their lease expires, rather than asynq's recoverer a
// minute or two later); and the worker logs one line for the outage and
// one when Redis is back, instead of go-redis's own lines.
func TestRedisRestartMidBatch(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t)
	logs := &testutil.Buffer{}
	rdb, closeRedis, err := connectRedis(context.Background(), fmt.Sprintf("redis://127.0.0.1:%d/0", srv.port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeRedis)
	e := newE2E(t, rdb, e2eConfig{logw: logs, sim: simFlags{writeDelay: 2 * time.Second, writeJitter: 3 * time.Second}})
	res := e.enqueue(t, 200)
	waitDone(t, e.store, res.BatchID, int64(res.NotRequired+10), hangAfter)
	srv.stop()
	time.Sleep(5 * time.Second) // the outage
	srv.start()
	back := time.Now()
	inflight := int64(res.Rows) - doneOf(t, e.store, res.BatchID)
	var st events.BatchStatus
	// Every destination ends, however long the machine takes: a hang fails
	// at hangAfter.
	for deadline := time.Now().Add(hangAfter); ; time.Sleep(100 * time.Millisecond) {
		st, err = e.store.Batch(context.Background(), res.BatchID)
		if err == nil && st.Done() >= int64(res.Rows) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch not done %s after Redis came back: %+v, %v", hangAfter, st.Counts, err)
		}
	}
	t.Logf("batch done %s after Redis came back (%d in flight then, %d requeued by the orphan sweep): %+v", time.Since(back).Round(time.Millisecond),
		inflight, strings.Count(logs.String(), "requeued a task that the Redis outage left without a worker"), st.Counts)
	if st.Counts[events.Failed] != 0 || st.Counts[events.Validated] != int64(res.Enqueued) || st.Counts[events.NotRequired] != int64(res.NotRequired) {
		t.Errorf("outcomes %+v over a 5 s restart, want %d validated, %d not_required, none failed", st.Counts, res.Enqueued, res.NotRequired)
	}
	checkOneTerminalEvent(t, e.store, res.BatchID, res.Rows)
	out := logs.String()
	if n := strings.Count(out, "Redis unreachable since"); n != 1 {
		t.Errorf("%d 'Redis unreachable' lines for one outage, want 1", n)
	}
	if n := strings.Count(out, "Redis reachable again"); n != 1 {
		t.Errorf("%d 'Redis reachable again' lines, want 1", n)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "pool.go") && !strings.Contains(l, `"level":"DEBUG"`) {
			t.Errorf("a go-redis line above debug: %s", l)
		}
	}
	if t.Failed() {
		t.Logf("logs:\n%s", out)
	}
}

// doneOf is the batch's done count, retried until Redis answers.
func doneOf(t *testing.T, store *ledger.Store, batch string) int64 {
	t.Helper()
	for deadline := time.Now().Add(hangAfter); ; time.Sleep(50 * time.Millisecond) {
		st, err := store.Batch(context.Background(), batch)
		if err == nil {
			return st.Done()
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch %s: %v", batch, err)
		}
	}
}
