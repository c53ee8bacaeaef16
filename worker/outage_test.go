package worker

import (
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

// TestOutageWatchOneRestartOneOutage: a shutting-down Redis that still
// answers on an open connection just after it refused a dial does not end
// the outage; Redis answering for outageBack does, with one line each.
func TestOutageWatchOneRestartOneOutage(t *testing.T) {
	t.Parallel()
	logs := &testutil.Buffer{}
	o := &outageWatch{log: slog.New(slog.NewTextHandler(logs, nil)), mask: func(s string) string { return s }}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	o.observe(refused)
	o.observe(nil) // the last answer of a connection the server closes next
	o.observe(refused)
	if !o.down() {
		t.Fatal("an answer a moment after a refused dial ended the outage")
	}
	o.observe(nil) // back
	time.Sleep(outageBack + 100*time.Millisecond)
	o.observe(nil)
	if o.down() {
		t.Fatalf("Redis answering for %s did not end the outage", outageBack)
	}
	out := logs.String()
	if n := strings.Count(out, "Redis unreachable since"); n != 1 {
		t.Errorf("%d 'unreachable' lines, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "Redis reachable again"); n != 1 {
		t.Errorf("%d 'reachable again' lines, want 1:\n%s", n, out)
	}
}
