package cli

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

// TestSimulateServesGCS: simulate --serve-gcs writes gs:// challenge files
// into a GCS in which every bucket exists, and a reader pointed at it
// (as STORAGE_EMULATOR_HOST points the workers) reads them back.
func TestSimulateServesGCS(t *testing.T) {
	t.Parallel()
	addr := testutil.FreeAddr(t)
	ctx := context.Background()
	w, stop, err := serveGCS(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	r, err := destination.NewGCS(ctx, destination.GCSOptions{Endpoint: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	// A bucket nobody wrote to exists (preflight reads before any write).
	if _, err := r.Read(ctx, destination.Location{Scheme: "gs", Bucket: "never-written", Key: "x.txt"}, time.Time{}); !errors.Is(err, destination.ErrNotFound) {
		t.Errorf("read in a bucket never written: %v, want not found (the bucket exists)", err)
	}
	loc := destination.Location{Scheme: "gs", Bucket: "logs-b", Key: "zone/1/ownership-challenge-abc.txt"}
	if err := w.Write(ctx, loc, []byte("token-body")); err != nil {
		t.Fatal(err)
	}
	obj, err := r.Read(ctx, loc, time.Time{})
	if err != nil || string(obj.Body) != "token-body" {
		t.Fatalf("read back = %q, %v", obj.Body, err)
	}
}

func TestGCSBucketOfPath(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]string{
		"/storage/v1/b/bk/o/a%2Fb":         "bk",
		"/upload/storage/v1/b/bk/o":        "bk",
		"/download/storage/v1/b/bk/o/x":    "bk",
		"/bk/zone/1/ownership-challenge.t": "bk",
		"/storage/v1/b":                    "",
		"/":                                "",
	} {
		if got := gcsBucket(path); got != want {
			t.Errorf("gcsBucket(%q) = %q, want %q", path, got, want)
		}
	}
}

// TestSimulateThatCannotStartExits2: a simulator that cannot listen did
// not start (exit 2, the port named), as its -h says; -h gives its own
// exit status, not that of the commands with rows.
func TestSimulateThatCannotStartExits2(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, _, stderr := runEnv(t, nil, "", "simulate", "--addr", ln.Addr().String())
	if code != 2 || !strings.Contains(stderr, ln.Addr().String()) {
		t.Fatalf("simulate on a busy port: exit %d, stderr %q; want 2, naming the address", code, stderr)
	}
	code, _, stderr = runEnv(t, nil, "", "simulate", "-h")
	if code != 0 || !strings.Contains(stderr, "0 when stopped by SIGINT or SIGTERM") || strings.Contains(stderr, "every row") {
		t.Fatalf("simulate -h: exit %d, %q; want simulate's own exit status", code, stderr)
	}
}
