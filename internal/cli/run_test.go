package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/johannesboyne/gofakes3"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/location"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

const runToken = "run-test-token"

// runSim is a simulator writing file:// destinations that records which
// scope ids were challenged.
type runSim struct {
	url string
	sim *simulator.Simulator
	mu  sync.Mutex
	ids []string // scope ids of POST .../ownership, in order
}

func newRunSim(t *testing.T, cfg simulator.Config) *runSim {
	t.Helper()
	if cfg.Write == nil {
		cfg.Write = writeFunc(&destination.File{})
	}
	cfg.APIToken = runToken
	sim, err := simulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	rs := &runSim{sim: sim}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/"); r.Method == http.MethodPost && len(parts) == 4 && parts[3] == "ownership" {
			rs.mu.Lock()
			rs.ids = append(rs.ids, parts[1])
			rs.mu.Unlock()
		}
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	rs.url = srv.URL
	return rs
}

func (rs *runSim) challenged() []string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]string(nil), rs.ids...)
}

// runArgs are the flags of a quick run against rs.
func (rs *runSim) runArgs(extra ...string) []string {
	return append([]string{"run", "--cloudflare-api-url", rs.url, "--api-rate", "0", "--poll-first", "0", "--poll-interval", "100ms",
		"--progress-interval", "100ms"}, extra...)
}

// readJournal returns the journal's events.
func readJournal(t *testing.T, path string) []events.Event {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []events.Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e events.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue // a line cut short by kill -9
		}
		if e.Event == "" {
			continue // a challenge record
		}
		evs = append(evs, e)
	}
	return evs
}

// TestRunFile onboards a file of file:// and no-challenge destinations
// with run on its embedded Redis: preflight, plain progress lines (stdout
// is not a terminal), the summary, the report beside the input, the
// journal, exit 0. Run again, it finishes at once without a call.
func TestRunFile(t *testing.T) {
	t.Parallel()
	rs := newRunSim(t, simulator.Config{WriteDelay: 50 * time.Millisecond, WriteJitter: 300 * time.Millisecond, ErrorRate: 0.1})
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("zone_id,account_id,destination_conf\n")
	for i := range 30 {
		fmt.Fprintf(&b, "%032x,,file://%s/d/%d\n", i+1, dir, i)
	}
	for i := range 5 {
		fmt.Fprintf(&b, ",%032x,https://logs.example.com/in/%d?header_Authorization=Basic%%20SECRETHEADER\n", 0x100+i, i)
	}
	in := filepath.Join(dir, "dests.csv")
	if err := os.WriteFile(in, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CLOUDFLARE_API_TOKEN": runToken}
	code, out, stderr := runEnv(t, env, "", rs.runArgs("--skip-preflight", "--api-rate", "100000/1m", in)...)
	if code != 0 {
		t.Fatalf("run = %d:\n%s\n%s", code, out, stderr)
	}
	for _, want := range []string{"calls retried: ", "35 rows, 30 enqueued, 5 not_required", "done (", "35/35 done (100%)", "report: " + filepath.Join(dir, "dests.results.csv")} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The embedded budget says what it does not count.
	warning, rest, _ := strings.Cut(stderr, "\n")
	if !strings.Contains(warning, "run: warning: the API budget") || !strings.Contains(warning, "are not counted; give --redis") {
		t.Errorf("stderr = %q, want the embedded budget's warning first", stderr)
	}
	if rest != "" {
		t.Errorf("stderr = %q, want nothing else (retries are counted in the view)", stderr)
	}
	if got := summaryRow(out, "file"); got != "30 0" {
		t.Errorf("summary row file = %q, want 30 validated, 0 not_required:\n%s", got, out)
	}
	if got := summaryRow(out, "https"); got != "0 5" {
		t.Errorf("summary row https = %q, want 0 validated, 5 not_required:\n%s", got, out)
	}
	rep, err := os.ReadFile(filepath.Join(dir, "dests.results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(string(rep))).ReadAll()
	if err != nil || len(recs) != 36 || recs[0][0] != "line" || recs[1][0] != "2" || recs[1][5] != string(events.Validated) || recs[35][5] != string(events.NotRequired) {
		t.Fatalf("report (%v):\n%s", err, rep)
	}
	journal := readJournal(t, filepath.Join(dir, "dests.journal.jsonl"))
	if len(journal) != 35 {
		t.Fatalf("journal has %d events, want 35", len(journal))
	}
	jb, _ := os.ReadFile(filepath.Join(dir, "dests.journal.jsonl"))
	for _, f := range []string{string(rep), out, string(jb)} {
		if strings.Contains(f, "SECRETHEADER") {
			t.Fatalf("a secret leaked:\n%s", f)
		}
	}
	before := len(rs.challenged())
	code, out, stderr = runEnv(t, env, "", rs.runArgs(in)...)
	if code != 0 || !strings.Contains(out, "every destination of "+in+" is finished already") || len(rs.challenged()) != before {
		t.Fatalf("second run = %d (%d new challenges):\n%s\n%s", code, len(rs.challenged())-before, out, stderr)
	}
}

// TestRunExitCodes: a failed destination is exit 1 with its reason in the
// report; usage errors are exit 2; flags may follow FILE.
func TestRunExitCodes(t *testing.T) {
	t.Parallel()
	rs := newRunSim(t, simulator.Config{WriteDelay: 10 * time.Millisecond})
	dir := t.TempDir()
	blocked := filepath.Join(dir, "blocked")
	if err := os.WriteFile(blocked, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "in.csv")
	csv := fmt.Sprintf("zone_id,account_id,destination_conf\n%032x,,file://%s/ok\n%032x,,file://%s/x\n", 1, dir, 2, blocked)
	if err := os.WriteFile(in, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CLOUDFLARE_API_TOKEN": runToken}
	report := filepath.Join(dir, "r.csv")
	// Flags after FILE work too.
	code, out, stderr := runEnv(t, env, "", append(rs.runArgs(in), "--report", report)...)
	if code != 2 || !strings.Contains(stderr, "preflight: line 3") || !strings.Contains(stderr, "preflight found 1 problem;") {
		t.Fatalf("run with an unreadable bucket = %d:\n%s\n%s", code, out, stderr)
	}
	logFile := filepath.Join(dir, "run.log")
	code, out, stderr = runEnv(t, env, "", append(rs.runArgs(in), "--skip-preflight", "--report", report, "--log-file", logFile, "--log-json")...)
	if logs, _ := os.ReadFile(logFile); !strings.Contains(string(logs), `"msg":"destination failed"`) || strings.Contains(stderr, "level=") {
		t.Errorf("--log-file has not the full log, or the terminal has it:\n%s\nstderr: %s", logs, stderr)
	}
	if code != 1 || !strings.Contains(stderr, "1 destination failed: see "+report) || !strings.Contains(out, "failed: line 3 file://") {
		t.Fatalf("run with a failure = %d:\n%s\n%s", code, out, stderr)
	}
	if rep, _ := os.ReadFile(report); !strings.Contains(string(rep), ",failed,") {
		t.Fatalf("report:\n%s", rep)
	}
	// Without the cause, --retry-failed redoes the failed row only.
	if err := os.Remove(blocked); err != nil {
		t.Fatal(err)
	}
	before := len(rs.challenged())
	code, out, stderr = runEnv(t, env, "", append(rs.runArgs(in), "--skip-preflight", "--report", report, "--retry-failed")...)
	if code != 0 || len(rs.challenged()) != before+1 {
		t.Fatalf("run --retry-failed = %d (%d challenges):\n%s\n%s", code, len(rs.challenged())-before, out, stderr)
	}
	if rep, _ := os.ReadFile(report); strings.Count(string(rep), ",validated,") != 2 {
		t.Fatalf("report after --retry-failed:\n%s", rep)
	}
	if code, out, _ := runEnv(t, env, "", append(rs.runArgs(in), "--skip-preflight", "--report", report)...); code != 0 || !strings.Contains(out, "finished already") {
		t.Fatalf("run after the retry = %d:\n%s", code, out)
	}
	for _, args := range [][]string{
		{"run"},
		{"run", in, in},
		{"run", "--concurrency", "0", in},
		{"run", "--max-retry", "-1", in},
		{"run", "--poll-deadline", "0s", in},
		{"run", "--no-such-flag", in},
		{"run", "--progress-interval", "0s", in},
	} {
		code, _, stderr := runEnv(t, env, "", args...)
		if code != 2 {
			t.Errorf("%v = %d, want 2: %s", args, code, stderr)
		}
		if len(args) > 1 && args[1] == "--concurrency" && !strings.Contains(stderr, "-concurrency 0: must be positive") {
			t.Errorf("%v: %s", args, stderr)
		}
	}
	empty := filepath.Join(dir, "empty.csv")
	os.WriteFile(empty, []byte("zone_id,account_id,destination_conf\n"), 0o600)
	if code, _, stderr := runEnv(t, env, "", "run", empty); code != 2 || !strings.Contains(stderr, "no destinations") {
		t.Errorf("run of a header-only file = %d: %s", code, stderr)
	}
}

// TestRunResumeAfterKill kills a run with SIGKILL in the middle of its
// batch, destinations on shared paths and on their own, and runs it again,
// in every token mode of the simulator: the re-run challenges none of the
// destinations the journal had, takes up the challenges that were in flight
// (their tokens are in their files) rather than asking again, at most 1.1
// challenges per destination over both runs, no validate call carries
// another destination's token or a stale one, and every destination ends
// exactly once in the journal.
func TestRunResumeAfterKill(t *testing.T) {
	t.Parallel()
	for _, m := range tokenModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			testRunResumeAfterKill(t, m)
		})
	}
}

func testRunResumeAfterKill(t *testing.T, m tokenMode) {
	const own, paths, perPath = 80, 4, 10
	const n = own + paths*perPath
	rs := newRunSim(t, m.apply(simulator.Config{WriteDelay: 200 * time.Millisecond, WriteJitter: 800 * time.Millisecond}))
	dir := t.TempDir()
	in := filepath.Join(dir, "batch.csv")
	var b strings.Builder
	b.WriteString("zone_id,account_id,destination_conf\n")
	for i := range n {
		p := filepath.Join(dir, "dest", fmt.Sprint(i))
		if i%3 == 0 && i/3 < paths*perPath {
			p = filepath.Join(dir, "shared", fmt.Sprint(i/3%paths))
		}
		fmt.Fprintf(&b, "%032x,,file://%s\n", i+1, p)
	}
	if err := os.WriteFile(in, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	journal := filepath.Join(dir, "batch.journal.jsonl")
	args := rs.runArgs("--skip-preflight", "--concurrency", "4", in)
	c := startChildEnv(t, filepath.Join(dir, "run1.log"), []string{"CLOUDFLARE_API_TOKEN=" + runToken}, args...)
	deadline := time.Now().Add(hangAfter)
	for len(readJournal(t, journal)) < n/4 {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "run1.log"))
			t.Fatalf("journal has %d events after %s:\n%s", len(readJournal(t, journal)), hangAfter, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.done
	first := readJournal(t, journal)
	if len(first) >= n {
		t.Fatalf("the run finished before the kill (%d events): make the batch longer", len(first))
	}
	// As if the kill cut a line short.
	f, _ := os.OpenFile(journal, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"event":"valid`)
	f.Close()
	finished := map[string]bool{}
	for _, e := range first {
		finished[e.ScopeID] = true
	}
	// Cloudflare writes the files of the challenges in flight whether the
	// run lives or not: the re-run comes after them.
	for st := rs.sim.Stats(); st.FilesWritten+st.WriteErrors < st.ChallengesIssued; st = rs.sim.Stats() {
		if time.Now().After(deadline.Add(time.Minute)) {
			t.Fatalf("simulator: %d challenges, %d files written", st.ChallengesIssued, st.FilesWritten)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The challenges to take up: the last recorded at each location, of a
	// destination the journal has not finished, whose file holds a new
	// write since the recorded fingerprint. A challenge recorded without
	// the read before it ("unread") whose file is not there was never
	// asked: the kill came between the record and the call (every file of
	// a call is written by now); the re-run asks it, after EarlierWriteWait.
	hashes := map[string]string{} // destination hash -> scope id
	confs := map[string]string{}  // scope id -> conf
	for i := range n {
		id := fmt.Sprintf("%032x", i+1)
		conf := "file://" + filepath.Join(dir, "dest", fmt.Sprint(i))
		if i%3 == 0 && i/3 < paths*perPath {
			conf = "file://" + filepath.Join(dir, "shared", fmt.Sprint(i/3%paths))
		}
		hashes[tasks.DestHash(tasks.ScopeZone, id, conf, "")] = id
		confs[id] = conf
	}
	last := map[string]ledger.Challenge{}
	jb, _ := os.ReadFile(journal)
	for _, line := range strings.Split(string(jb), "\n") {
		var l journalLine
		if json.Unmarshal([]byte(line), &l) == nil && l.Challenge != nil {
			last[l.Challenge.Location] = *l.Challenge
		}
	}
	toTakeUp := map[string]bool{}
	for _, c := range last {
		id := hashes[c.Dest]
		if id == "" {
			t.Fatalf("a challenge record of an unknown destination: %+v", c)
		}
		seen := location.Absent
		if b, err := os.ReadFile("/" + c.Filename); err == nil {
			sum := sha256.Sum256(b)
			seen = hex.EncodeToString(sum[:])
		}
		if !finished[id] && seen != c.Before && seen != location.Absent {
			toTakeUp[id] = true
		}
	}
	already := len(rs.challenged())

	code, out, stderr := runEnv(t, map[string]string{"CLOUDFLARE_API_TOKEN": runToken}, "", args...)
	if code != 0 {
		t.Fatalf("re-run = %d:\n%s\n%s", code, out, stderr)
	}
	if want := fmt.Sprintf("resuming: %d destinations finished already", len(first)); !strings.Contains(out, want) {
		t.Errorf("re-run output lacks %q:\n%s", want, out)
	}
	// A challenge to take up is asked again only once another destination
	// of its path was challenged first (its outcome lost with the kill):
	// the file no longer holds its token.
	pathChallenged := map[string]bool{}
	for _, id := range rs.challenged()[already:] {
		if finished[id] {
			t.Errorf("the re-run challenged %s, which the journal had finished", id)
		}
		if toTakeUp[id] && !pathChallenged[confs[id]] {
			t.Errorf("the re-run challenged %s again, whose token the killed run's challenge had written", id)
		}
		pathChallenged[confs[id]] = true
	}
	per := map[string]int{}
	takenUp := 0
	for _, e := range readJournal(t, journal) {
		per[e.DestinationID]++
		if e.Event != events.Validated {
			t.Errorf("journal: %s %s", e.ScopeID, e.Event)
		}
		if e.Attempts.Challenge == 0 {
			takenUp++
		}
	}
	if len(per) != n {
		t.Fatalf("journal has %d destinations, want %d", len(per), n)
	}
	for k, c := range per {
		if c != 1 {
			t.Errorf("%s is %d times in the journal", k, c)
		}
	}
	st := rs.sim.Stats()
	checkTokens(t, st)
	if perDest := float64(st.ChallengesIssued) / n; perDest > 1.1 {
		t.Errorf("%.2f challenges per destination over both runs (%d for %d), want at most 1.1", perDest, st.ChallengesIssued, n)
	}
	jb, _ = os.ReadFile(journal)
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == cloudflare.ChallengeFileName {
			if tok, _ := os.ReadFile(path); len(tok) > 0 && strings.Contains(string(jb), strings.TrimSpace(string(tok))) {
				t.Errorf("the journal holds the token of %s", path)
			}
		}
		return nil
	})
	t.Logf("killed with %d of %d journaled, %d challenges to take up; the re-run challenged %d and took up %d; %d challenges in all",
		len(first), n, len(toTakeUp), len(rs.challenged())-already, takenUp, st.ChallengesIssued)
}

// TestRunS3 onboards S3 destinations with run in a child process, whose AWS
// SDK reaches an in-process S3 server through the environment, and on a
// shared Redis: the batch is there after the run.
func TestRunS3(t *testing.T) {
	t.Parallel()
	s3srv := httptest.NewServer(gofakes3.New(demoS3Backend()).Server())
	t.Cleanup(s3srv.Close)
	s3w, err := destination.NewS3(context.Background(), destination.S3Options{Endpoint: s3srv.URL, UsePathStyle: true,
		Credentials: awscreds.NewStaticCredentialsProvider("AKIARUNTEST", "run-secret", "")})
	if err != nil {
		t.Fatal(err)
	}
	rs := newRunSim(t, simulator.Config{Write: writeFunc(s3w), WriteDelay: 50 * time.Millisecond})
	rdb, opt := testutil.Redis(t)
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("zone_id,account_id,destination_conf\n")
	for i := range 20 {
		fmt.Fprintf(&b, "%032x,,s3://%s/run/%d?region=us-east-1\n", i+1, demoBucket, i)
	}
	in := filepath.Join(dir, "s3.csv")
	os.WriteFile(in, []byte(b.String()), 0o600)
	logPath := filepath.Join(dir, "run.log")
	c := startChildEnv(t, logPath, []string{"AWS_ENDPOINT_URL_S3=" + s3srv.URL, "AWS_ACCESS_KEY_ID=AKIARUNTEST",
		"AWS_SECRET_ACCESS_KEY=run-secret", "AWS_REGION=us-east-1", "CLOUDFLARE_API_TOKEN=" + runToken},
		rs.runArgs("--redis", fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB), in)...)
	select {
	case err := <-c.done:
		out, _ := os.ReadFile(logPath)
		if err != nil || !strings.Contains(string(out), "20/20 done (100%)") || summaryRow(string(out), "s3") != "20" {
			t.Fatalf("run: %v\n%s", err, out)
		}
	case <-time.After(hangAfter):
		t.Fatalf("run not done after %s", hangAfter)
	}
	ids, _ := ledger.NewStore(rdb, ledger.Config{}).Batches(context.Background(), 10)
	if len(ids) != 1 {
		t.Fatalf("batches on the shared Redis: %v", ids)
	}
}

// summaryRow returns the counts of the summary's row for a destination
// type, space-separated.
func summaryRow(out, typ string) string {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == typ {
			return strings.Join(f[1:], " ")
		}
	}
	return ""
}

// TestResumeCommand: the command that continues a run quotes what a shell
// would split and hides a Redis password.
func TestResumeCommand(t *testing.T) {
	t.Parallel()
	got := resumeCommand([]string{"--redis", "redis://:s3cret@h:6379/0", "--report", "my results.csv", "in.csv"})
	if want := "logpush-onboard run --redis redis://REDACTED@h:6379/0 --report 'my results.csv' in.csv"; got != want {
		t.Fatalf("resumeCommand = %q, want %q", got, want)
	}
}

// TestRunLineCheckBeforeCredentials: the file's own problems are shown even
// without credentials, and missing credentials on a good file are a usage
// error (exit 2) that says what to set.
func TestRunLineCheckBeforeCredentials(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(bad, []byte(fmt.Sprintf("zone_id,account_id,destination_conf\n%031x,,file://%s/x\n", 1, dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runEnv(t, map[string]string{}, "", "run", bad)
	if code != 2 || !strings.Contains(stderr, "line 2: zone_id: must be 32 hex characters, got 31") {
		t.Fatalf("run of a bad file without credentials = %d:\n%s", code, stderr)
	}
	good := filepath.Join(dir, "good.csv")
	if err := os.WriteFile(good, []byte(fmt.Sprintf("zone_id,account_id,destination_conf\n%032x,,file://%s/x\n", 1, dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runEnv(t, map[string]string{}, "", "run", good)
	if code != 2 || !strings.Contains(stderr, "set CLOUDFLARE_API_TOKEN") {
		t.Fatalf("run without credentials = %d:\n%s", code, stderr)
	}
}

// TestRunReadsInputTwice: run (without preflight) reads its input in two
// passes, one that checks it and lists its destinations for the journal and
// the report, and one that enqueues it; the report still has one row per
// destination.
func TestRunReadsInputTwice(t *testing.T) {
	t.Parallel()
	rs := newRunSim(t, simulator.Config{})
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("zone_id,account_id,destination_conf\n")
	for i := range 3 {
		fmt.Fprintf(&b, ",%032x,https://logs.example.com/in/%d\n", 0x100+i, i)
	}
	in := filepath.Join(dir, "dests.csv")
	if err := os.WriteFile(in, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	passes := 0
	var out, errb bytes.Buffer
	env := Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string { return map[string]string{"CLOUDFLARE_API_TOKEN": runToken}[k] },
		Open: func(name string) (io.ReadCloser, error) {
			f, err := os.Open(name)
			if err != nil {
				return nil, err
			}
			return &passCounter{ReadCloser: f, pass: func() { mu.Lock(); passes++; mu.Unlock() }}, nil
		}}
	if code := Run(context.Background(), rs.runArgs("--skip-preflight", in), env); code != 0 {
		t.Fatalf("run = %d:\n%s\n%s", code, out.String(), errb.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if passes != 2 {
		t.Errorf("run read its input in %d passes, want 2 (check, enqueue)", passes)
	}
	rep, err := os.ReadFile(filepath.Join(dir, "dests.results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if recs, err := csv.NewReader(bytes.NewReader(rep)).ReadAll(); err != nil || len(recs) != 4 {
		t.Fatalf("report (%v):\n%s", err, rep)
	}
}

// passCounter calls pass on the first Read of an opened input: one pass
// over it (an open that only checks the file reads nothing).
type passCounter struct {
	io.ReadCloser
	pass func()
	read bool
}

func (p *passCounter) Read(b []byte) (int, error) {
	if !p.read {
		p.read = true
		p.pass()
	}
	return p.ReadCloser.Read(b)
}
