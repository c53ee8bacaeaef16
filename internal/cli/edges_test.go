package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/keys"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

// TestRefuseEmbeddedRedis: the commands that only make sense on the
// workers' shared Redis exit 2 without one, saying what to do.
func TestRefuseEmbeddedRedis(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "in.csv")
	os.WriteFile(file, []byte("zone_id,account_id,destination_conf\n023e105f4ecef8ad9ca31a8372d0c353,,gs://b/p\n"), 0o600)
	env := map[string]string{"CLOUDFLARE_API_TOKEN": "t"}
	for _, args := range [][]string{
		{"worker"}, {"enqueue", file}, {"status"}, {"events"}, {"report", "--batch", "b", "--format", "csv"},
		{"retry", "--batch", "b"}, {"submit-token", "--batch", "b", "--file", file}, {"resume"},
	} {
		code, out, stderr := runEnv(t, env, "", args...)
		if code != 2 || !strings.Contains(stderr, "no Redis given: set --redis or REDIS_URL to the Redis your workers use; for a one-process run use `logpush-onboard run FILE`") {
			t.Errorf("%v = %d: %s %s", args, code, out, stderr)
		}
	}
	// simulate has no --redis to ignore; the worker's tuning must be usable.
	for _, args := range [][]string{{"simulate", "--redis", "redis://x"}, {"worker", "--redis", "redis://127.0.0.1:1/0", "--concurrency", "0"},
		{"worker", "--redis", "redis://127.0.0.1:1/0", "--max-retry", "0"}, {"worker", "--redis", "redis://127.0.0.1:1/0", "--poll-deadline", "-1m"}} {
		if code, _, stderr := runEnv(t, env, "", args...); code != 2 {
			t.Errorf("%v = %d, want 2: %s", args, code, stderr)
		}
	}
}

// TestDemoOwnRedis: the demo never uses REDIS_URL (its fake destinations
// must not reach real workers), and -h shows the defaults it uses.
func TestDemoOwnRedis(t *testing.T) {
	t.Parallel()
	rdb, opt := testutil.Redis(t)
	env := map[string]string{"REDIS_URL": fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)}
	code, out, stderr := runEnv(t, env, "", "demo", "-n", "10", "-write-delay", "10ms", "-write-jitter", "10ms", "-error-rate", "0",
		"-rate-limit-rate", "0", "-poll-first", "0", "-progress-interval", "100ms")
	if code != 0 || !strings.Contains(out, "10/10 done (100%)") {
		t.Fatalf("demo = %d:\n%s\n%s", code, out, stderr)
	}
	if n, _ := rdb.DBSize(context.Background()).Result(); n != 0 {
		t.Fatalf("the demo wrote %d keys into REDIS_URL's Redis", n)
	}
	code, _, stderr = runEnv(t, nil, "", "demo", "-h")
	for _, want := range []string{"-error-rate float\n    \tsimulator: fraction of API calls answered 5xx (default 0.05)", "(default \"1200/1m\")", "(default \"127.0.0.1:0\")"} {
		if code != 0 || !strings.Contains(stderr, want) {
			t.Errorf("demo -h = %d, lacks %q:\n%s", code, want, stderr)
		}
	}
	if strings.Contains(stderr, "-redis") {
		t.Errorf("demo -h offers --redis:\n%s", stderr)
	}
}

// TestJSONLogDurations: JSON logs write durations as seconds.
func TestJSONLogDurations(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	slog.New(logHandler(&b, slog.LevelInfo, true)).Info("x", "timeout", 1500*time.Millisecond)
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil || m["timeout"] != 1.5 {
		t.Fatalf("log line %s: timeout = %v, want 1.5 (%v)", b.String(), m["timeout"], err)
	}
}

// TestRunInterrupt: Ctrl-C stops a run cleanly, says how far it got and
// the command that continues; that command finishes the batch.
func TestRunInterrupt(t *testing.T) {
	t.Parallel()
	const n = 60
	rs := newRunSim(t, simulator.Config{WriteDelay: 300 * time.Millisecond, WriteJitter: 700 * time.Millisecond})
	dir := t.TempDir()
	in := filepath.Join(dir, "batch.csv")
	writeFileCSV(t, in, dir, n)
	journal := filepath.Join(dir, "batch.journal.jsonl")
	args := rs.runArgs("--skip-preflight", "--concurrency", "2", in)
	logPath := filepath.Join(dir, "run.log")
	c := startChildEnv(t, logPath, []string{"CLOUDFLARE_API_TOKEN=" + runToken}, args...)
	for deadline := time.Now().Add(hangAfter); len(readJournal(t, journal)) < 5; {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 5 outcomes journaled after %s", hangAfter)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	case <-time.After(hangAfter): // a hang; how fast it stops is not asserted
		t.Fatalf("run did not stop within %s of SIGINT", hangAfter)
	}
	out, _ := os.ReadFile(logPath)
	if code := c.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), "interrupted with ") ||
		!strings.Contains(string(out), "to continue, run again: logpush-onboard run ") {
		t.Fatalf("interrupted run = %d:\n%s", code, out)
	}
	code, stdout, stderr := runEnv(t, map[string]string{"CLOUDFLARE_API_TOKEN": runToken}, "", args...)
	if code != 0 || len(readJournal(t, journal)) != n {
		t.Fatalf("resumed run = %d, journal %d of %d:\n%s\n%s", code, len(readJournal(t, journal)), n, stdout, stderr)
	}
}

// TestTerminalView: on a terminal the view redraws over its last frame:
// a bar per state, the retried calls and the latest failures.
func TestTerminalView(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	v := &view{w: &b, terminal: true}
	st := events.BatchStatus{ID: "b-1", Total: 10, Counts: map[events.State]int64{events.Validated: 5, events.Failed: 1, events.Polling: 4}}
	f := frame{st: st, eta: 3 * time.Second, retries: &retries{server: 21, limited: 16},
		failures: []events.Event{{Event: events.Failed, Line: 7, Destination: "s3://b/p?region=x", Error: &events.Error{HTTPStatus: 403, Codes: []int{1004}, Message: "not allowed"}}}}
	v.draw(f)
	first := b.String()
	for _, want := range []string{"6/10 done", "validated       [###############...............]       5", "37 calls retried: 21x 5xx, 16x 429",
		"line 7 s3://b/p?region=x: HTTP 403, codes 1004: not allowed", "ETA 3s"} {
		if !strings.Contains(first, want) {
			t.Errorf("frame lacks %q:\n%s", want, first)
		}
	}
	b.Reset()
	v.draw(f)
	if !strings.HasPrefix(b.String(), fmt.Sprintf("\x1b[%dA", strings.Count(first, "\n"))) {
		t.Errorf("second frame does not redraw over the first: %q", b.String()[:20])
	}
}

// TestEnqueueInterrupted: an enqueue stopped half way says how far it got
// and that running it again continues; the same command then enqueues the
// rest.
func TestEnqueueInterrupted(t *testing.T) {
	t.Parallel()
	rdb, opt := testutil.Redis(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	var b strings.Builder
	b.WriteString("zone_id,account_id,destination_conf\n")
	for i := 0; i < 600; i++ {
		fmt.Fprintf(&b, "%032x,,gs://bucket/p%d\n", i+1, i)
	}
	if err := os.WriteFile(in, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"enqueue", "--skip-preflight", "--redis", fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB), in}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The interrupt comes at line 300 of the pass that enqueues: the one
	// that reads the input after the batch exists in Redis (the check
	// before it creates nothing).
	env := Env{Stdin: strings.NewReader(""), Getenv: func(string) string { return "" },
		Open: func(name string) (io.ReadCloser, error) {
			f, err := os.Open(name)
			if err != nil {
				return nil, err
			}
			return &lineReader{f: f, r: bufio.NewReader(f), at: func(line int) {
				if line == 300 && rdb.Exists(context.Background(), keys.Batches).Val() == 1 {
					cancel()
				}
			}}, nil
		}}
	var out, errb bytes.Buffer
	env.Stdout, env.Stderr = &out, &errb
	code := Run(ctx, args, env)
	if code != 1 || !strings.Contains(errb.String(), "interrupted with ") || !strings.Contains(errb.String(), "of 600 rows in the batch") ||
		!strings.Contains(errb.String(), "running the same command again continues") {
		t.Fatalf("interrupted enqueue = %d:\n%s\n%s", code, out.String(), errb.String())
	}
	code, stdout, stderr := runEnv(t, nil, "", args...)
	if code != 0 || !strings.Contains(stdout, ": 600 rows, ") {
		t.Fatalf("enqueue again = %d:\n%s\n%s", code, stdout, stderr)
	}
	var id string
	var rows, enq, notReq, known int
	if _, err := fmt.Sscanf(stdout, "batch %s %d rows, %d enqueued, %d not_required, %d already in the batch", &id, &rows, &enq, &notReq, &known); err != nil || enq+known != 600 {
		t.Errorf("enqueue again: %q: want 600 rows enqueued or known (%v)", stdout, err)
	}
}

// lineReader hands its file on one line per Read and calls at with the
// number of each line before handing it on.
type lineReader struct {
	f    *os.File
	r    *bufio.Reader
	line int
	at   func(line int)
}

func (l *lineReader) Read(p []byte) (int, error) {
	s, err := l.r.ReadSlice('\n')
	if len(s) > 0 {
		l.line++
		l.at(l.line)
	}
	if len(s) > len(p) {
		return 0, io.ErrShortBuffer
	}
	return copy(p, s), err
}

func (l *lineReader) Close() error { return l.f.Close() }

// TestEnqueueFromPipe: a named pipe (or a shell's <(...)) gives its rows
// once; every pass over the input still sees all of them.
func TestEnqueueFromPipe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "in.csv")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		f.WriteString("zone_id,account_id,destination_conf\n")
		for i := 0; i < 40; i++ {
			fmt.Fprintf(f, "%032x,,gs://bucket/p%d\n", i+1, i)
		}
	}()
	_, opt := testutil.Redis(t)
	code, stdout, stderr := runEnv(t, nil, "", "enqueue", "--skip-preflight", "--redis", fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB), fifo)
	if code != 0 || !strings.Contains(stdout, ": 40 rows, 40 enqueued") {
		t.Fatalf("enqueue from a pipe = %d:\n%s\n%s", code, stdout, stderr)
	}
}
