package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// run runs the CLI in this process and returns exit code, stdout, stderr.
func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	return runEnv(t, nil, stdin, args...)
}

// runEnv is run with environment variables.
func runEnv(t *testing.T, env map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return env[k] }})
	return code, out.String(), errb.String()
}

// TestOperatorCommands: a batch with failures is reported row by row,
// retried after the cause is fixed, and watched to the end.
func TestOperatorCommands(t *testing.T) {
	t.Parallel()
	rdb, opt := testutil.Redis(t)
	url := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	e := newE2E(t, rdb, e2eConfig{sim: simFlags{writeDelay: 50 * time.Millisecond}})
	dir := t.TempDir()
	blocked := filepath.Join(dir, "blocked")
	if err := os.WriteFile(blocked, []byte("a file where a directory should be"), 0o644); err != nil {
		t.Fatal(err)
	}
	var csv strings.Builder
	csv.WriteString("zone_id,account_id,destination_conf\n")
	for i := range 5 {
		fmt.Fprintf(&csv, "%032x,,file://%s/ok/%d\n", i+1, dir, i)
	}
	fmt.Fprintf(&csv, ",%032x,file://%s/x\n", 0xf1, blocked)
	fmt.Fprintf(&csv, ",%032x,file://%s/y\n", 0xf2, blocked)
	path := filepath.Join(dir, "batch.csv")
	if err := os.WriteFile(path, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	code, out, stderr := run(t, "", "enqueue", "--skip-preflight", "--redis", url, path)
	if code != 0 {
		t.Fatalf("enqueue = %d: %s", code, stderr)
	}
	var batch string
	if _, err := fmt.Sscanf(out, "batch %s", &batch); err != nil {
		t.Fatalf("enqueue output %q: %v", out, err)
	}
	batch = strings.TrimSuffix(batch, ":")
	st := e.wait(t, batch, time.Minute)
	if st.Counts[events.Validated] != 5 || st.Counts[events.Failed] != 2 {
		t.Fatalf("outcomes = %+v, want 5 validated and 2 failed", st.Counts)
	}

	code, out, _ = run(t, "", "status", "--redis", url, "--batch", batch)
	if code != 0 || !strings.Contains(out, "failed          2") || !strings.Contains(out, "done            7/7") {
		t.Fatalf("status = %d:\n%s", code, out)
	}
	code, out, _ = run(t, "", "report", "--redis", url, "--batch", batch, "--format", "csv")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 8 || !strings.HasPrefix(lines[0], "line,scope,scope_id,destination") ||
		!strings.HasPrefix(lines[1], "2,zone,") || !strings.Contains(lines[6], ",failed,") || !strings.Contains(lines[6], "permanent") && !strings.Contains(lines[6], "not a directory") ||
		!strings.HasSuffix(lines[0], ",worker") || !strings.HasSuffix(lines[6], ","+worker.Self()) {
		t.Fatalf("report csv = %d (want the failed row naming the worker %s):\n%s", code, worker.Self(), out)
	}
	code, out, _ = run(t, "", "report", "--redis", url, "--batch", batch, "--format", "json")
	var row reportRow
	if code != 0 || json.Unmarshal([]byte(strings.Split(out, "\n")[5]), &row) != nil || row.Line != 7 || row.State != events.Failed || row.Error == nil || row.Error.Worker != worker.Self() {
		t.Fatalf("report json = %d:\n%s", code, out)
	}

	// Watching a batch with failures ends non-zero, so it can gate a script.
	code, out, stderr = run(t, "", "status", "--redis", url, "--batch", batch, "--watch", "--interval", "100ms")
	if code != 1 || !strings.Contains(out, "7/7 done (100%)") || !strings.Contains(stderr, "2 destinations failed of 7") {
		t.Fatalf("status --watch of a batch with failures = %d:\n%s\n%s", code, out, stderr)
	}
	for _, args := range [][]string{{"--watch", "--interval", "0s"}, {"--watch", "--interval", "-1s"}, {batch}} {
		if code, _, stderr := run(t, "", append([]string{"status", "--redis", url, "--batch", batch}, args...)...); code != 2 {
			t.Errorf("status %v = %d, want 2: %s", args, code, stderr)
		}
	}
	if code, _, stderr := run(t, "", "events", "--redis", url, "--batch", "nope"); code != 2 || !strings.Contains(stderr, "no batch nope on this Redis") {
		t.Errorf("events --batch nope = %d: %s", code, stderr)
	}
	if code, out, _ := run(t, "", "resume", "--redis", url); code != 0 || !strings.Contains(out, "were not paused") {
		t.Errorf("resume of a queue not paused = %d: %s", code, out)
	}
	// Enqueueing the file again: one line for the repeated rows; flags may
	// follow FILE.
	code, out, stderr = run(t, "", "enqueue", "--redis", url, path, "--skip-preflight")
	if code != 0 || strings.Count(stderr, "already in the batch") != 1 || !strings.Contains(stderr, "7 rows already in the batch, not enqueued again\n") ||
		strings.Contains(stderr, "line ") || !strings.Contains(out, "7 already in the batch") {
		t.Fatalf("re-enqueue = %d:\n%s\n%s", code, out, stderr)
	}

	// Fix the cause, retry the failed rows, watch the batch finish.
	if err := os.Remove(blocked); err != nil {
		t.Fatal(err)
	}
	// No failed task is kept (its payload holds the conf's secrets): retry
	// rebuilds the tasks from the input, and says which rows it lacks.
	partial := filepath.Join(dir, "partial.csv")
	if err := os.WriteFile(partial, []byte(strings.Join(strings.Split(csv.String(), "\n")[:6], "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = run(t, "", "retry", "--redis", url, "--batch", batch, partial)
	if code != 0 || !strings.Contains(out, "0 failed destinations re-enqueued, 2 could not be") || !strings.Contains(stderr, "line 7: its destination is not in") {
		t.Fatalf("retry from a file without the failed rows = %d: %s %s", code, out, stderr)
	}
	code, out, stderr = run(t, "", "retry", "--redis", url, "--batch", batch)
	if code != 0 || !strings.Contains(out, "2 failed destinations re-enqueued") {
		t.Fatalf("retry = %d: %s %s", code, out, stderr)
	}
	code, out, _ = run(t, "", "status", "--redis", url, "--batch", batch, "--watch", "--interval", "200ms")
	if code != 0 || !strings.Contains(out, "7/7 done (100%)") {
		t.Fatalf("status --watch = %d:\n%s", code, out)
	}
	st, _ = e.store.Batch(context.Background(), batch)
	if st.Counts[events.Validated] != 7 || st.Counts[events.Failed] != 0 {
		t.Fatalf("after retry: %+v", st.Counts)
	}
	code, out, _ = run(t, "", "events", "--redis", url, "--batch", batch)
	if code != 0 || strings.Count(out, `"event":"failed"`) != 2 || strings.Count(out, `"event":"validated"`) != 7 {
		t.Fatalf("events = %d:\n%s", code, out)
	}
}

// TestEnqueueRejectsBadInput: every bad line is named, nothing is enqueued.
func TestEnqueueRejectsBadInput(t *testing.T) {
	t.Parallel()
	rdb, opt := testutil.Redis(t)
	url := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	bad := "zone_id,account_id,destination_conf\n" +
		"023e105f4ecef8ad9ca31a8372d0c353,,s3://mybucket/p?region=us-east-1\n" +
		"023e105f4ecef8ad9ca31a8372d0c35,,s3://mybucket/p?region=us-east-1\n" +
		"023e105f4ecef8ad9ca31a8372d0c353,01a7362d577a6c3019a474fd6f485823,s3://mybucket/q?region=us-east-1\n" +
		"023e105f4ecef8ad9ca31a8372d0c353,,ftp://b/p\n"
	code, _, stderr := run(t, bad, "enqueue", "--skip-preflight", "--redis", url, "-")
	if code != 2 {
		t.Fatalf("enqueue of bad input = %d, want 2", code)
	}
	for _, want := range []string{"line 3: zone_id", "line 4:", "line 5: destination_conf", "3 of 4 lines invalid; nothing was enqueued"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if n, _ := rdb.DBSize(context.Background()).Result(); n != 0 {
		t.Fatalf("bad input wrote %d keys", n)
	}
	code, out, _ := run(t, bad, "enqueue", "-", "--dry-run")
	if code != 2 || !strings.Contains(out, "1 valid row, 3 invalid") {
		t.Fatalf("dry run = %d: %s", code, out)
	}
	for _, empty := range []string{"", "zone_id,account_id,destination_conf\n"} {
		if code, _, stderr := run(t, empty, "enqueue", "--skip-preflight", "--redis", url, "-"); code != 2 || !strings.Contains(stderr, "no destinations") {
			t.Errorf("enqueue of %q = %d: %s", empty, code, stderr)
		}
		if code, _, stderr := run(t, empty, "enqueue", "--dry-run", "-"); code != 2 || !strings.Contains(stderr, "no destinations") {
			t.Errorf("enqueue --dry-run of %q = %d: %s", empty, code, stderr)
		}
	}
	if ids, _ := ledger.NewStore(rdb, ledger.Config{}).Batches(context.Background(), 10); len(ids) != 0 {
		t.Errorf("an empty input made batches %v", ids)
	}
	if code, _, stderr := run(t, "", "enqueue", "--dry-run", "a.csv", "b.csv"); code != 2 || !strings.Contains(stderr, "one FILE only") {
		t.Errorf("enqueue of two files = %d: %s", code, stderr)
	}
}

// TestPreflight: a broken credential or an unreadable bucket stops the
// batch before anything is enqueued.
func TestPreflight(t *testing.T) {
	t.Parallel()
	rdb, opt := testutil.Redis(t)
	url := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	e := newE2E(t, rdb, e2eConfig{})
	dir := t.TempDir()
	blocked := filepath.Join(dir, "blocked")
	if err := os.WriteFile(blocked, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	good := fmt.Sprintf("zone_id,account_id,destination_conf\n%032x,,file://%s/a\n%032x,,file://%s/b\n", 1, dir, 2, dir)
	env := map[string]string{"CLOUDFLARE_API_TOKEN": "e2e-api-token", "CLOUDFLARE_API_URL": e.simURL}

	code, out, stderr := runEnv(t, env, good, "preflight", "-")
	if code != 0 || !strings.Contains(out, "Cloudflare credential works (user API token); 2 buckets readable") {
		t.Fatalf("preflight of a good file = %d: %s %s", code, out, stderr)
	}
	one := fmt.Sprintf("zone_id,account_id,destination_conf\n%032x,,file://%s/a\n", 1, dir)
	if code, out, stderr := runEnv(t, env, one, "preflight", "-"); code != 0 || !strings.Contains(out, "; 1 bucket readable\n") {
		t.Fatalf("preflight of one bucket = %d: %s %s; want '1 bucket'", code, out, stderr)
	}
	missing := fmt.Sprintf("zone_id,account_id,destination_conf\n%032x,,file:///definitely/not/here\n", 5)
	code, out, stderr = runEnv(t, env, missing, "preflight", "-")
	if code == 0 || strings.Contains(out, "readable") || !strings.Contains(stderr, "/definitely does not exist") {
		t.Fatalf("preflight of a missing directory = %d: %s %s; want it refused", code, out, stderr)
	}
	bad := good + fmt.Sprintf("%032x,,file://%s/c\n", 3, blocked)
	code, _, stderr = runEnv(t, env, bad, "enqueue", "--redis", url, "-")
	if code != 2 || !strings.Contains(stderr, "preflight: line 4") || !strings.Contains(stderr, "nothing was enqueued") {
		t.Fatalf("enqueue with an unreadable bucket = %d: %s", code, stderr)
	}
	wrong := map[string]string{"CLOUDFLARE_API_TOKEN": "not-the-token", "CLOUDFLARE_API_URL": e.simURL}
	code, _, stderr = runEnv(t, wrong, good, "enqueue", "--redis", url, "-")
	if code != 2 || !strings.Contains(stderr, "the Cloudflare credential does not work") {
		t.Fatalf("enqueue with a wrong token = %d: %s", code, stderr)
	}
	keys, _ := rdb.Keys(context.Background(), "logpush:*").Result()
	keys = slices.DeleteFunc(keys, func(k string) bool {
		// the worker's shared rate and its marks of the credentials it holds
		return strings.HasPrefix(k, "logpush:budget:") || strings.HasPrefix(k, "logpush:credential_workers:")
	})
	if len(keys) != 0 {
		t.Fatalf("a failed preflight wrote %v", keys)
	}
	code, out, stderr = runEnv(t, env, good, "enqueue", "--redis", url, "--batch-id", "good", "-")
	if code != 0 || !strings.Contains(out, "2 enqueued") {
		t.Fatalf("enqueue after a good preflight = %d: %s %s", code, out, stderr)
	}
	// The workers onboard it, writing into dir: done before dir goes.
	if st := e.wait(t, "good", time.Minute); st.Counts[events.Validated] != 2 {
		t.Fatalf("the good batch ended %v, want 2 validated", st.Counts)
	}
	// Bad lines are shown first, always, with preflight's findings after
	// them, and nothing is enqueued.
	badLines := good + "zz,,file:///tmp/x\n" + fmt.Sprintf("%032x,,file://%s/c\n", 4, blocked)
	code, _, stderr = runEnv(t, wrong, badLines, "enqueue", "--redis", url, "--batch-id", "bad-lines", "-")
	lineAt, preAt := strings.Index(stderr, "line 4: zone_id"), strings.Index(stderr, "preflight: the Cloudflare credential does not work")
	if code != 2 || lineAt < 0 || preAt < lineAt || !strings.Contains(stderr, "preflight: line 5") {
		t.Fatalf("enqueue with bad lines and a failing preflight = %d: %s", code, stderr)
	}
	for _, args := range [][]string{{"enqueue", "--redis", url, "--batch-id", "bad-lines", "-"}, {"preflight", "-"}} {
		code, _, stderr = runEnv(t, env, badLines, args...)
		if code != 2 || !strings.Contains(stderr, "line 4: zone_id") {
			t.Fatalf("%s with bad lines = %d: %s", args[0], code, stderr)
		}
	}
	if keys, _ := rdb.Keys(context.Background(), "*bad-lines*").Result(); len(keys) != 0 {
		t.Fatal("a file with bad lines was enqueued")
	}
}

// TestPreflightAccountToken: an account-owned API token, which Cloudflare
// recommends for automation and whose user endpoint answers 401, passes
// preflight through its account's endpoint (an account row) or a zone's
// job list (zone rows only); a 429 that outlasts the retries is "not
// checked", not "does not work".
func TestPreflightAccountToken(t *testing.T) {
	t.Parallel()
	rdb, opt := testutil.Redis(t)
	url := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	const account = "01a7362d577a6c3019a474fd6f485823"
	e := newE2E(t, rdb, e2eConfig{sim: simFlags{tokenAccount: account}})
	dir := t.TempDir()
	env := map[string]string{"CLOUDFLARE_API_TOKEN": "e2e-api-token", "CLOUDFLARE_API_URL": e.simURL}
	accounts := fmt.Sprintf("zone_id,account_id,destination_conf\n,%s,file://%s/a\n", account, dir)
	code, out, stderr := runEnv(t, env, accounts, "enqueue", "--redis", url, "--batch-id", "accounts", "-")
	if code != 0 || !strings.Contains(out, "works (account-owned API token of account "+account+")") || !strings.Contains(out, "1 enqueued") {
		t.Fatalf("enqueue with an account-owned token = %d: %s %s", code, out, stderr)
	}
	// The workers onboard it, writing into dir: done before dir goes.
	if st := e.wait(t, "accounts", time.Minute); st.Counts[events.Validated] != 1 {
		t.Fatalf("the account row ended %v, want validated", st.Counts)
	}
	zones := fmt.Sprintf("zone_id,account_id,destination_conf\n%032x,,file://%s/z\n", 7, dir)
	code, out, stderr = runEnv(t, env, zones, "preflight", "-")
	if code != 0 || !strings.Contains(out, "lists the Logpush jobs of zone") {
		t.Fatalf("preflight of zone rows with an account-owned token = %d: %s %s", code, out, stderr)
	}
	if st := e.sim.Stats(); st.Count(simulator.EndpointVerify, 401) != 2 || st.Count(simulator.EndpointAccountVerify, 200) != 1 {
		t.Fatalf("simulator: %s", st)
	}

	// The API answers 429 for longer than preflight waits.
	lrdb, _ := testutil.Redis(t)
	limited := newE2E(t, lrdb, e2eConfig{sim: simFlags{rateLimit: "1/1m", penalty: time.Minute}})
	env["CLOUDFLARE_API_URL"] = limited.simURL
	runEnv(t, env, zones, "preflight", "-") // spends the limit
	code, out, stderr = runEnv(t, env, zones, "preflight", "-")
	if code != 0 || !strings.Contains(stderr, "Cloudflare credential not checked: API unavailable (429)") || strings.Contains(stderr, "does not work") {
		t.Fatalf("preflight over the rate limit = %d: %s %s", code, out, stderr)
	}
}

// sumoSource plays a Sumo Logic HTTP source: it receives the token.
type sumoSource struct {
	mu     sync.Mutex
	tokens []string
}

func (s *sumoSource) Write(_ context.Context, _ destination.Location, body []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = append(s.tokens, string(body))
	return nil
}

// TestSubmitToken: a Sumo destination waits for its token; the operator
// submits it and the destination is validated. A wrong token is refused
// before anything is enqueued.
func TestSubmitToken(t *testing.T) {
	t.Parallel()
	rdb, opt := testutil.Redis(t)
	url := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	sumo := &sumoSource{}
	e := newE2E(t, rdb, e2eConfig{writers: destination.WriterMux{"sumo": sumo}})
	const conf = "sumo://endpoint1.collection.sumologic.com/receiver/v1/http/ZaVnC4dhaV3"
	const zone = "023e105f4ecef8ad9ca31a8372d0c353"
	path := filepath.Join(e.dir, "sumo.csv")
	os.WriteFile(path, []byte("zone_id,account_id,destination_conf\n"+zone+",,"+conf+"\n"), 0o644)
	res := e.enqueueFile(t, path)
	awaitSumoToken(t, e, sumo, res.BatchID)
	code, out, stderr := run(t, "", "status", "--redis", url, "--batch", res.BatchID, "--watch", "--interval", "100ms")
	if code != 0 || !strings.Contains(out, "1 row waits for submit-token") {
		t.Fatalf("status --watch of a batch waiting for a token = %d:\n%s\n%s", code, out, stderr)
	}
	code, _, stderr = run(t, "has spaces\n", "submit-token", "--redis", url, "--batch", res.BatchID, "--zone-id", zone, "--destination-conf", conf)
	if code == 0 || !strings.Contains(stderr, "not an ownership challenge token") || strings.Contains(stderr, "has spaces") {
		t.Fatalf("submit of a malformed token = %d: %s", code, stderr)
	}
	tokens := filepath.Join(e.dir, "tokens.csv")
	os.WriteFile(tokens, []byte("zone_id,account_id,destination_conf,token\n"+zone+",,"+conf+","+sumo.tokens[0]+"\n"), 0o600)
	code, out, stderr = run(t, "", "submit-token", "--redis", url, "--batch", res.BatchID, "--file", tokens)
	if code != 0 || !strings.Contains(out, "1 token submitted") || !strings.Contains(out, "1 token validated") {
		t.Fatalf("submit-token = %d: %s %s", code, out, stderr)
	}
	st := e.wait(t, res.BatchID, 30*time.Second)
	if st.Counts[events.Validated] != 1 {
		t.Fatalf("after submit: %+v", st.Counts)
	}
	code, _, stderr = run(t, "", "submit-token", "--redis", url, "--batch", res.BatchID, "--file", tokens)
	if code != 1 || !strings.Contains(stderr, "destination is validated, not awaiting a token") {
		t.Fatalf("second submit = %d: %s", code, stderr)
	}
	code, _, stderr = run(t, "", "submit-token", "--redis", url, "--batch", "nope", "--file", tokens)
	if code != 2 || !strings.Contains(stderr, "no batch nope on this Redis") {
		t.Fatalf("submit to an unknown batch = %d: %s", code, stderr)
	}

	// The first destination's token, well-formed but not this one's:
	// Cloudflare answers 1002, and submit-token says so.
	const other = "sumo://endpoint1.collection.sumologic.com/receiver/v1/http/OtherCode42"
	path2 := filepath.Join(e.dir, "sumo2.csv")
	os.WriteFile(path2, []byte("zone_id,account_id,destination_conf\n"+zone+",,"+other+"\n"), 0o644)
	res2 := e.enqueueFile(t, path2)
	for deadline := time.Now().Add(hangAfter); ; {
		st, _ := e.store.Batch(context.Background(), res2.BatchID)
		if st.Counts[events.AwaitingToken] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second destination not awaiting a token: %+v", st.Counts)
		}
		time.Sleep(50 * time.Millisecond)
	}
	sumo.mu.Lock()
	first := sumo.tokens[0]
	sumo.mu.Unlock()
	code, out, stderr = run(t, first+"\n", "submit-token", "--redis", url, "--batch", res2.BatchID, "--wait", "20s", "--zone-id", zone, "--destination-conf", other)
	if code != 1 || !strings.Contains(stderr, "Cloudflare rejected the token (code 1002") || !strings.Contains(out, "0 tokens validated, 1 rejected") {
		code, o, _ := run(t, "", "report", "--redis", url, "--batch", res2.BatchID, "--format", "json")
		t.Logf("report = %d %s", code, o)
		t.Fatalf("submit of another destination's token = %d: %s %s", code, out, stderr)
	}
}

// TestSubmitTokenWithJob: a Sumo Logic row of a --create-job batch gets its
// job once its submitted token validates; the submission names the job
// columns, which are part of the destination's identity.
func TestSubmitTokenWithJob(t *testing.T) {
	t.Parallel()
	rdb, opt := testutil.Redis(t)
	url := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	sumo := &sumoSource{}
	e := newE2E(t, rdb, e2eConfig{writers: destination.WriterMux{"sumo": sumo}})
	const conf = "sumo://endpoint1.collection.sumologic.com/receiver/v1/http/ZaVnC4dhaV3"
	const zone = "023e105f4ecef8ad9ca31a8372d0c353"
	code, out, stderr := run(t, "zone_id,account_id,destination_conf,dataset\n"+zone+",,"+conf+",http_requests\n",
		"enqueue", "--skip-preflight", "--create-job", "--redis", url, "-")
	if code != 0 {
		t.Fatalf("enqueue = %d: %s", code, stderr)
	}
	batch := strings.TrimSuffix(strings.Fields(out)[1], ":")
	awaitSumoToken(t, e, sumo, batch)
	tokens := filepath.Join(e.dir, "tokens.csv")
	os.WriteFile(tokens, []byte("zone_id,account_id,destination_conf,token\n"+zone+",,"+conf+","+sumo.tokens[0]+"\n"), 0o600)
	if code, _, stderr := run(t, "", "submit-token", "--redis", url, "--batch", batch, "--file", tokens); code != 1 || !strings.Contains(stderr, "the job columns must be exactly as enqueued") {
		t.Fatalf("submit without the job columns = %d: %s", code, stderr)
	}
	os.WriteFile(tokens, []byte("zone_id,account_id,destination_conf,dataset,token\n"+zone+",,"+conf+",http_requests,"+sumo.tokens[0]+"\n"), 0o600)
	if code, out, stderr := run(t, "", "submit-token", "--redis", url, "--batch", batch, "--file", tokens); code != 0 {
		t.Fatalf("submit-token = %d: %s %s", code, out, stderr)
	}
	if st := e.wait(t, batch, 30*time.Second); st.Counts[events.Validated] != 1 {
		t.Fatalf("after submit: %+v", st.Counts)
	}
	if code, evs, _ := run(t, "", "events", "--redis", url, "--batch", batch); code != 0 || !strings.Contains(evs, `"job_id":`) || e.sim.Stats().JobsCreated != 1 {
		t.Fatalf("events = %s (%s)", evs, e.sim.Stats())
	}
}

// TestCreateJob: with --create-job every row gets its Logpush job, once:
// after validation, or at once for a destination that needs no challenge;
// two datasets to one destination are two jobs; a job Cloudflare already
// has is reported, not created again; the zone's jobs are listed once per
// batch; a bad job column is refused with its line and field. It measures
// the API calls per destination with and without --create-job.
func TestCreateJob(t *testing.T) {
	t.Parallel()
	rdb, opt := testutil.Redis(t)
	url := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	e := newE2E(t, rdb, e2eConfig{sim: simFlags{writeDelay: 50 * time.Millisecond}})
	dir := t.TempDir()
	const zone1, zone2, acct = "00000000000000000000000000000001", "00000000000000000000000000000002", "0000000000000000000000000000000a"
	https := "https://logs.example.com/in?header_Authorization=Basic%20x"
	rows := [][]string{
		{zone1, "", "file://" + dir + "/0", "http_requests"},
		{zone1, "", "file://" + dir + "/1", "http_requests"},
		{zone1, "", https, "http_requests"},
		{zone1, "", https, "firewall_events"}, // a second job to the same destination
		{zone2, "", "file://" + dir + "/2", "http_requests"},
		{zone2, "", "r2://logs/x?account-id=" + acct + "&access-key-id=a&secret-access-key=b", "dns_logs"},
		{"", acct, "file://" + dir + "/3", "audit_logs"},
	}
	const challenged, noChallenge, scopes = 4, 3, 3
	csv := "zone_id,account_id,destination_conf,dataset,job_name,output_options\n"
	for i, r := range rows {
		csv += fmt.Sprintf("%s,%s,%s,%s,job-%d,\"{\"\"output_type\"\":\"\"ndjson\"\"}\"\n", r[0], r[1], r[2], r[3], i)
	}
	code, _, stderr := run(t, csv+"0000000000000000000000000000000a,,file:///tmp/x,,,\n", "enqueue", "--skip-preflight", "--create-job", "--redis", url, "-")
	if code != 2 || !strings.Contains(stderr, "line 9: dataset: required with --create-job") {
		t.Fatalf("enqueue without dataset = %d: %s", code, stderr)
	}
	code, out, stderr := run(t, csv, "enqueue", "--skip-preflight", "--create-job", "--redis", url, "-")
	if code != 0 || !strings.Contains(out, "7 enqueued, 0 not_required") {
		t.Fatalf("enqueue = %d: %s %s", code, out, stderr)
	}
	batch := strings.TrimSuffix(strings.Fields(out)[1], ":")
	st := e.wait(t, batch, time.Minute)
	if st.Counts[events.Validated] != challenged || st.Counts[events.NotRequired] != noChallenge {
		t.Fatalf("outcomes = %+v", st.Counts)
	}
	code, out, _ = run(t, "", "events", "--redis", url, "--batch", batch)
	if code != 0 || strings.Count(out, `"job_id":`) != len(rows) || strings.Contains(out, "job_existed") {
		t.Fatalf("events = %s", out)
	}
	sim := e.sim.Stats()
	if sim.JobsCreated != len(rows) || sim.Total(simulator.EndpointJobs) != scopes || sim.Total(simulator.EndpointDestinationExists) != 0 {
		t.Fatalf("jobs created %d, listings %d (want %d and one per zone or account): %s", sim.JobsCreated, sim.Total(simulator.EndpointJobs), len(rows), sim)
	}
	// At most 3 calls per challenged row (challenge, validate, create), 1
	// per row without a challenge, one listing per zone; a fresh challenge
	// (a token superseded in flight) costs 2 more.
	calls := sim.Calls()
	bound := 3*challenged + noChallenge + scopes + 2*(sim.ChallengesIssued-challenged)
	t.Logf("with --create-job: %d API calls for %d rows (%.2f per row; %d challenges)", calls, len(rows), float64(calls)/float64(len(rows)), sim.ChallengesIssued)
	if calls > bound {
		t.Fatalf("%d API calls, want at most %d: %s", calls, bound, sim)
	}

	// The same rows in a new batch: their jobs exist already; one listing
	// per zone finds them all.
	code, out, stderr = run(t, csv, "enqueue", "--skip-preflight", "--create-job", "--batch-id", "again", "--redis", url, "-")
	if code != 0 {
		t.Fatalf("second enqueue = %d: %s", code, stderr)
	}
	e.wait(t, "again", time.Minute)
	code, out, _ = run(t, "", "events", "--redis", url, "--batch", "again")
	if strings.Count(out, `"job_existed":true`) != len(rows) || e.sim.Stats().JobsCreated != len(rows) || e.sim.Stats().Total(simulator.EndpointJobs) != 2*scopes {
		t.Fatalf("second batch events = %s (%s)", out, e.sim.Stats())
	}

	// Without --create-job: two calls per challenged row, none for the rest.
	before := e.sim.Stats()
	plain := "zone_id,account_id,destination_conf\n"
	for i, r := range rows {
		if i != 3 { // the same destination as row 2 without its dataset
			plain += fmt.Sprintf("%s,%s,%s\n", r[0], r[1], strings.Replace(r[2], "/in?", "/in2?", 1))
		}
	}
	code, out, stderr = run(t, plain, "enqueue", "--skip-preflight", "--batch-id", "plain", "--redis", url, "-")
	if code != 0 {
		t.Fatalf("enqueue without --create-job = %d: %s", code, stderr)
	}
	e.wait(t, "plain", time.Minute)
	after := e.sim.Stats()
	calls = after.Calls() - before.Calls()
	fresh := after.ChallengesIssued - before.ChallengesIssued - challenged
	t.Logf("without --create-job: %d API calls for %d rows (%.2f per row)", calls, len(rows)-1, float64(calls)/float64(len(rows)-1))
	if calls > 2*challenged+2*fresh {
		t.Fatalf("%d API calls without --create-job, want %d", calls, 2*challenged)
	}
}

// awaitSumoToken waits until batch's one Sumo destination awaits its token
// and the source has received it.
func awaitSumoToken(t *testing.T, e *e2e, sumo *sumoSource, batch string) {
	t.Helper()
	deadline := time.Now().Add(hangAfter)
	for {
		st, _ := e.store.Batch(context.Background(), batch)
		sumo.mu.Lock()
		n := len(sumo.tokens)
		sumo.mu.Unlock()
		if st.Counts[events.AwaitingToken] == 1 && n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not awaiting a token: %+v", st.Counts)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestJobOutsideSchemaIsALineError: a --create-job row whose job
// Cloudflare's schema refuses (a dataset over 256 characters, a
// logpull_options with a space) is a line error naming its line and
// column, as CreateJob would refuse it only after the row's challenge and
// validate calls were spent: enqueue enqueues nothing, and run makes no API
// call at all.
func TestJobOutsideSchemaIsALineError(t *testing.T) {
	t.Parallel()
	rdb, opt := testutil.Redis(t)
	url := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	var calls atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "no call expected", http.StatusTeapot)
	}))
	t.Cleanup(api.Close)
	csv := "zone_id,account_id,destination_conf,dataset,logpull_options\n" +
		"023e105f4ecef8ad9ca31a8372d0c353,,s3://mybucket/a?region=us-east-1,http_requests,fields=RayID\n" +
		"023e105f4ecef8ad9ca31a8372d0c353,,s3://mybucket/b?region=us-east-1," + strings.Repeat("d", 300) + ",\n" +
		"023e105f4ecef8ad9ca31a8372d0c353,,s3://mybucket/c?region=us-east-1,http_requests,fields=RayID &timestamps=rfc3339\n"
	wantErrs := []string{"line 3: dataset:", "line 4: logpull_options:"}
	code, _, stderr := run(t, csv, "enqueue", "--skip-preflight", "--create-job", "--redis", url, "-")
	if code != 2 {
		t.Fatalf("enqueue = %d, want 2:\n%s", code, stderr)
	}
	for _, want := range append(wantErrs, "2 of 3 lines invalid; nothing was enqueued") {
		if !strings.Contains(stderr, want) {
			t.Errorf("enqueue: stderr lacks %q:\n%s", want, stderr)
		}
	}
	if n, _ := rdb.DBSize(context.Background()).Result(); n != 0 {
		t.Errorf("enqueue of bad input wrote %d keys", n)
	}
	file := filepath.Join(t.TempDir(), "jobs.csv")
	if err := os.WriteFile(file, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CLOUDFLARE_API_TOKEN": strings.Repeat("t", 40)}
	code, _, stderr = runEnv(t, env, "", "run", "--create-job", "--cloudflare-api-url", api.URL, file)
	if code != 2 {
		t.Fatalf("run = %d, want 2:\n%s", code, stderr)
	}
	for _, want := range wantErrs {
		if !strings.Contains(stderr, want) {
			t.Errorf("run: stderr lacks %q:\n%s", want, stderr)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("run made %d API calls, want none", n)
	}
}
