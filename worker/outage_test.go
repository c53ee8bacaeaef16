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

var errRefused = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

// TestOutageWatchOneRestartOneOutage: a shutting-down Redis that still
// answers on an open connection just after it refused a dial does not end
// the outage; Redis answering for outageBack does, with one line each, and
// the end of the outage is told once (the orphan sweep starts on it).
func TestOutageWatchOneRestartOneOutage(t *testing.T) {
	t.Parallel()
	logs := &testutil.Buffer{}
	clock := time.Date(2026, 12, 6, 5, 0, 0, 0, time.UTC)
	var backs []time.Time
	o := &outageWatch{log: slog.New(slog.NewTextHandler(logs, nil)), mask: func(s string) string { return s },
		now: func() time.Time { return clock }, onBack: func(at time.Time) { backs = append(backs, at) }}
	o.observe(errRefused)
	o.observe(nil) // the last answer of a connection the server closes next
	o.observe(errRefused)
	if !o.down() {
		t.Fatal("an answer a moment after a refused dial ended the outage")
	}
	o.observe(nil) // back
	clock = clock.Add(outageBack - time.Millisecond)
	o.observe(nil)
	if !o.down() {
		t.Fatalf("Redis answering for less than %s ended the outage", outageBack)
	}
	clock = clock.Add(time.Millisecond)
	o.observe(nil)
	if o.down() {
		t.Fatalf("Redis answering for %s did not end the outage", outageBack)
	}
	// The pool's remembered dial error just after: the same outage.
	clock = clock.Add(outageSettle / 2)
	o.observe(errRefused)
	if o.down() {
		t.Fatal("the pool's remembered dial error began another outage")
	}
	out := logs.String()
	if n := strings.Count(out, "Redis unreachable since"); n != 1 {
		t.Errorf("%d 'unreachable' lines, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "Redis reachable again"); n != 1 {
		t.Errorf("%d 'reachable again' lines, want 1:\n%s", n, out)
	}
	if len(backs) != 1 || !backs[0].Equal(clock.Add(-outageSettle/2)) {
		t.Errorf("outage ends told: %v, want one, when Redis had answered for %s", backs, outageBack)
	}
}
