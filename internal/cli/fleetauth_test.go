package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// TestFleetWorkerWithWrongToken: two workers with the right token and one
// started with a wrong one share a batch. The wrong one's 403s fail no
// destination and pause nothing: it hands the rows back to the queue, for
// the others, and reports unready naming its credential and host.
func TestFleetWorkerWithWrongToken(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Redis(t)
	// The good workers are started (their marks tell the fleet that a
	// working copy of the credential is alive) but held at their first
	// API call until the wrong-token worker has handed a row back. With 10
	// slots each they hold at most 20 rows; the rows that need a challenge
	// are more (32 of the 40, at most 28 at a call at once: 8 share 4
	// paths), so rows are left that only the wrong-token worker can take,
	// whatever the scheduling. Left free, the good workers could take
	// every row first, and the test would prove nothing.
	const slots = 10
	hold := make(chan struct{})
	e := newE2E(t, rdb, e2eConfig{workers: 2, badWorkers: 1, concurrency: slots, holdGood: hold, sim: simFlags{writeDelay: 50 * time.Millisecond}})
	release := sync.OnceFunc(func() { close(hold) })
	t.Cleanup(release) // before the workers stop, should the test end early
	bad := e.bad[0]
	res := e.enqueue(t, 40)
	if res.Enqueued <= 2*slots+4 {
		t.Fatalf("%d rows enqueued: the held good workers could take them all", res.Enqueued)
	}
	waitFor(t, "row handed back by the wrong-token worker", func() bool {
		return gatherSum(t, bad, "logpush_onboard_credential_handed_back_total", nil) > 0
	})
	release()
	st := e.wait(t, res.BatchID, 2*time.Minute)
	if st.Counts[events.Failed] != 0 || st.Counts[events.Validated] != int64(res.Enqueued) {
		t.Fatalf("outcomes = %+v, want every row validated, none failed", st.Counts)
	}
	entries, err := e.store.Read(context.Background(), "0", 10000, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		if en.Event.Event == events.QueuePaused || en.Event.Event == events.Failed {
			t.Fatalf("event %s: %+v; the good workers' copy of the credential works", en.Event.Event, en.Event.Error)
		}
	}
	handed := gatherSum(t, bad, "logpush_onboard_credential_handed_back_total", nil)
	if handed == 0 {
		t.Fatal("the wrong-token worker handed no row back: it took none (the test proves nothing)")
	}
	resp, err := http.Get("http://" + bad.metricsAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "credential (default) refused") ||
		!strings.Contains(string(body), worker.Self()) || strings.Contains(string(body), "wrong-token") {
		t.Fatalf("/readyz of the wrong-token worker = %d %q; want 503 naming the credential and the worker, not the token", resp.StatusCode, body)
	}
	t.Logf("the wrong-token worker handed %v rows back (%d enqueued)", handed, res.Enqueued)
}

// TestWorkerChecksItsCredentialAtStart: a worker started with a token
// Cloudflare refuses exits 2 naming the credential, never its value, before
// it takes a task: checked at the accounts and zones of the rows waiting
// in the queue, or at CLOUDFLARE_ACCOUNT_ID.
func TestWorkerChecksItsCredentialAtStart(t *testing.T) {
	t.Parallel()
	sim, err := simulator.New(simulator.Config{Write: writeFunc(&destination.File{}), APIToken: "the-right-token"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	simsrv := httptest.NewServer(sim)
	t.Cleanup(simsrv.Close)
	rdb, opt := testutil.Redis(t)
	url := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	args := []string{"worker", "--redis", url, "--cloudflare-api-url", simsrv.URL, "--metrics-addr", ""}
	wrong := map[string]string{"CLOUDFLARE_API_TOKEN": "the-wrong-token"}

	// Queued rows to check it at.
	path := filepath.Join(t.TempDir(), "batch.csv")
	if err := os.WriteFile(path, []byte("zone_id,account_id,destination_conf\n023e105f4ecef8ad9ca31a8372d0c353,,s3://logs/http?region=us-east-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runEnv(t, map[string]string{"CLOUDFLARE_API_TOKEN": "the-right-token"}, "", "enqueue", "--skip-preflight", "--redis", url, path); code != 0 {
		t.Fatalf("enqueue = %d: %s", code, stderr)
	}
	code, _, stderr := runEnv(t, wrong, "", args...)
	if code != 2 || !strings.Contains(stderr, "credential (default): refused by Cloudflare") || strings.Contains(stderr, "the-wrong-token") {
		t.Fatalf("worker with a wrong token and rows in the queue = %d: %s; want 2 naming the credential, not its value", code, stderr)
	}
	if n, _ := rdb.Exists(context.Background(), "asynq:servers").Result(); n != 0 {
		t.Fatalf("the refused worker registered as a server: it took tasks")
	}

	// An empty queue: the account given checks it.
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	wrong["CLOUDFLARE_ACCOUNT_ID"] = "01a7362d577a6c3019a474fd6f485823"
	code, _, stderr = runEnv(t, wrong, "", args...)
	if code != 2 || !strings.Contains(stderr, "credential (default): refused by Cloudflare") {
		t.Fatalf("worker with a wrong token and CLOUDFLARE_ACCOUNT_ID = %d: %s; want 2", code, stderr)
	}
}

// TestMetricsAddrDefaultsToLoopback: the worker's metrics, like its web
// UI, listen on loopback unless an address is given.
func TestMetricsAddrDefaultsToLoopback(t *testing.T) {
	t.Parallel()
	var f workerFlags
	env := Env{Getenv: func(string) string { return "" }, Stdout: io.Discard, Stderr: io.Discard}
	fs := newFlags("worker", env)
	f.register(fs, env)
	if d := fs.Lookup("metrics-addr").DefValue; d != "127.0.0.1:9464" {
		t.Fatalf("-metrics-addr default %q, want loopback", d)
	}
}

// TestRunWarnsOfReadableCredentialsFile: run says that its credentials
// file is readable by others at its default log level, not only at warn.
func TestRunWarnsOfReadableCredentialsFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds.yaml")
	if err := os.WriteFile(creds, []byte("alice:\n  token: alice-token-value\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(creds, 0o644); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "in.csv")
	if err := os.WriteFile(in, []byte("zone_id,account_id,destination_conf,credential\nnot-an-id,,s3://b/p?region=us-east-1,alice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, stderr := runEnv(t, nil, "", "run", "--credentials", creds, in)
	if !strings.Contains(stderr, "readable by other users (mode 0644)") || strings.Contains(stderr, "alice-token-value") {
		t.Fatalf("run stderr = %q; want the file's mode warning, never its token", stderr)
	}
}
