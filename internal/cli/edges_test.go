package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
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
// and that running it again continues.
func TestEnqueueInterrupted(t *testing.T) {
	t.Parallel()
	_, opt := testutil.Redis(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "in.csv")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	const header = "zone_id,account_id,destination_conf\n"
	rows := func(from, to int) string {
		var b strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&b, "%032x,,gs://bucket/p%d\n", i+1, i)
		}
		return b.String()
	}
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skipf("no /proc/self/fd here to see the pipe's reader: %v", err)
	}
	real, err := filepath.EvalSymlinks(fifo)
	if err != nil {
		t.Fatal(err)
	}
	// The command reads the pipe in this process: its open descriptors of
	// the pipe (the reader's, and the writer's below) show where each pass
	// is, without guessing from sleeps.
	waitFDs := func(want func(n int) bool) {
		for {
			if want(pipeFDs(t, real)) {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// The plan reads the whole file; the enqueue pass gets half of it,
		// then the interrupt, then the rest.
		for _, part := range []func(f *os.File){
			func(f *os.File) { f.WriteString(header + rows(0, 600)) },
			func(f *os.File) {
				f.WriteString(header + rows(0, 300))
				cancel() // the enqueue pass has the pipe open: it cannot have read all rows
				f.WriteString(rows(300, 600))
			},
		} {
			f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			if err != nil {
				return
			}
			// The pass's reader holds the pipe (an open of a pipe returns on
			// both ends at once, not necessarily in the same instant).
			waitFDs(func(n int) bool { return n >= 2 })
			part(f)
			f.Close()
			// The pass's reader has seen the end and closed the pipe: the next
			// writer's open waits for the next pass's reader.
			waitFDs(func(n int) bool { return n == 0 })
		}
	}()
	var out, errb bytes.Buffer
	code := Run(ctx, []string{"enqueue", "--skip-preflight", "--redis", fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB), fifo},
		Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	if code != 1 || !strings.Contains(errb.String(), "interrupted with ") || !strings.Contains(errb.String(), "of 600 rows in the batch") ||
		!strings.Contains(errb.String(), "running the same command again continues") {
		t.Fatalf("interrupted enqueue = %d:\n%s\n%s", code, out.String(), errb.String())
	}
}

// pipeFDs is how many of this process's open descriptors refer to path.
func pipeFDs(t *testing.T, path string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Error(err)
		return 0
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && target == path {
			n++
		}
	}
	return n
}
