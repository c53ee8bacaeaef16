package cli

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logpush-onboard/logpush-onboard/internal/input"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// TestExitNothingStarted: every command exits 2, the code for "nothing was
// started", on a usage error, bad input (invalid lines, a missing or
// unreadable file, a directory) and bad configuration (a malformed or
// unreachable --redis, a bad log level, a busy port); 1 is kept for
// destinations that failed.
func TestExitNothingStarted(t *testing.T) {
	t.Parallel()
	_, opt := testutil.Redis(t)
	url := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("zone_id,account_id,destination_conf\n023e105f4ecef8ad9ca31a8372d0c353,,gs://b/p\nnot-an-id,,gs://b/p\n"), 0o600)
	good := filepath.Join(dir, "good.csv")
	os.WriteFile(good, []byte("zone_id,account_id,destination_conf\n023e105f4ecef8ad9ca31a8372d0c353,,gs://b/p\n"), 0o600)
	empty := filepath.Join(dir, "empty.csv")
	os.WriteFile(empty, []byte("zone_id,account_id,destination_conf\n"), 0o600)
	missing := filepath.Join(dir, "missing.csv")
	unreadable := filepath.Join(dir, "unreadable.csv")
	os.WriteFile(unreadable, []byte("zone_id,account_id,destination_conf\n"), 0o000)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	const malformed = "http://127.0.0.1:6379/0"
	const unreachable = "redis://127.0.0.1:1/0"
	env := map[string]string{"CLOUDFLARE_API_TOKEN": "t"}

	cases := [][]string{
		{"enqueue", "--redis", url, "--skip-preflight", bad},
		{"enqueue", "--dry-run", bad},
		{"enqueue", "--dry-run", dir},
		{"enqueue", "--dry-run", missing},
		{"enqueue", "--dry-run", empty},
		{"enqueue", "--redis", url, "--skip-preflight", empty},
		{"enqueue", "--dry-run", "--format", "xml", good},
		{"enqueue", "--redis", malformed, "--skip-preflight", good},
		{"enqueue", "--redis", unreachable, "--skip-preflight", good},
		{"preflight", bad},
		{"preflight", dir},
		{"preflight", missing},
		{"run", bad},
		{"run", dir},
		{"run", missing},
		{"run", empty},
		{"run", "--skip-preflight", "--redis", malformed, "--journal", filepath.Join(dir, "m.journal.jsonl"), good},
		{"run", "--skip-preflight", "--metrics-addr", busy, "--journal", filepath.Join(dir, "b.journal.jsonl"), good},
		{"run", "--log-level", "loud", good},
		{"worker", "--redis", malformed},
		{"worker", "--redis", unreachable},
		{"worker", "--redis", url, "--metrics-addr", busy},
		{"worker", "--redis", url, "--log-level", "loud"},
		{"status", "--redis", malformed},
		{"status", "--redis", unreachable},
		{"status", "--redis", url, "--log-level", "loud"},
		{"events", "--redis", malformed},
		{"report", "--redis", malformed, "--batch", "b"},
		{"retry", "--redis", malformed, "--batch", "b"},
		{"resume", "--redis", malformed},
		{"submit-token", "--redis", malformed, "--batch", "b", "--file", good},
	}
	if f, err := os.Open(unreadable); err == nil {
		f.Close() // root reads it all the same
	} else {
		cases = append(cases, []string{"enqueue", "--dry-run", unreadable}, []string{"run", unreadable}, []string{"preflight", unreadable})
	}
	// A usage error, for every command.
	for _, c := range commands() {
		cases = append(cases, []string{c.name, "--no-such-flag"})
	}
	for _, args := range cases {
		code, out, stderr := runEnv(t, env, "", args...)
		if code != 2 {
			t.Errorf("%v = %d, want 2 (nothing was started)\nstdout: %s\nstderr: %s", args, code, out, stderr)
		}
		if strings.Contains(stderr, "panic") {
			t.Errorf("%v: %s", args, stderr)
		}
	}
}

// TestHelpEveryCommand: every command's -h describes the command (never
// Go's bare "Usage of ..."), lists its flags and says what its exit status
// means; run's and enqueue's list every optional input column.
func TestHelpEveryCommand(t *testing.T) {
	t.Parallel()
	for _, c := range commands() {
		code, out, stderr := run(t, "", c.name, "-h")
		if code != 0 || out != "" {
			t.Errorf("%s -h = %d, stdout %q; want 0 and the help on stderr", c.name, code, out)
		}
		if strings.Contains(stderr, "Usage of") || !strings.HasPrefix(stderr, "usage: logpush-onboard "+c.name) {
			t.Errorf("%s -h starts without its usage line:\n%s", c.name, stderr)
		}
		first, rest, _ := strings.Cut(stderr, "\n\n")
		if desc, _, _ := strings.Cut(rest, "\n\n"); len(strings.Fields(desc)) < 4 || strings.HasPrefix(strings.TrimSpace(desc), "-") {
			t.Errorf("%s -h has no description after %q:\n%s", c.name, first, stderr)
		}
		if !strings.Contains(stderr, "Exit status: 0 ") || !strings.Contains(stderr, "2 ") {
			t.Errorf("%s -h does not say what its exit status means:\n%s", c.name, stderr)
		}
	}
	for _, cmd := range []string{"run", "enqueue"} {
		_, _, stderr := run(t, "", cmd, "-h")
		cols := append([]string{input.FieldCredential, input.FieldZoneName}, tasks.ReadAsColumns...)
		for _, col := range append(cols, tasks.JobColumns...) {
			if !strings.Contains(stderr, col) {
				t.Errorf("%s -h omits the optional column %s:\n%s", cmd, col, stderr)
			}
		}
	}
}
