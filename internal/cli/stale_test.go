package cli

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
)

// TestRunStaleFilesAndRetry, in every token mode: each destination's file
// already holds an earlier token of that very destination (a challenge of
// an earlier attempt, still unexpired), on their own paths and on a shared
// one, and one destination fails until its cause is fixed and run
// --retry-failed redoes it. No validate call carries a stale token or
// another destination's: the fingerprint taken before each challenge, not
// the token's claims, tells the earlier file from the new one.
func TestRunStaleFilesAndRetry(t *testing.T) {
	t.Parallel()
	for _, m := range tokenModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			testRunStaleFilesAndRetry(t, m)
		})
	}
}

func testRunStaleFilesAndRetry(t *testing.T, m tokenMode) {
	rs := newRunSim(t, m.apply(simulator.Config{WriteDelay: 20 * time.Millisecond, WriteJitter: 100 * time.Millisecond}))
	dir := t.TempDir()
	blocked := filepath.Join(dir, "blocked")
	if err := os.WriteFile(blocked, []byte("a file where a directory should be"), 0o644); err != nil {
		t.Fatal(err)
	}
	var confs []string
	for i := range 12 {
		p := filepath.Join(dir, "own", fmt.Sprint(i))
		if i%2 == 0 {
			p = filepath.Join(dir, "shared")
		}
		confs = append(confs, "file://"+p)
	}
	// The earlier challenges, by another tool: every destination's token
	// lands in its file (on the shared path the last one stays).
	for i, conf := range confs {
		body := strings.NewReader(fmt.Sprintf(`{"destination_conf":%q}`, conf))
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/zones/%032x/logpush/ownership", rs.url, i+1), body)
		req.Header.Set("Authorization", "Bearer "+runToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("challenge of line %d: %s", i+2, resp.Status)
		}
		for st := rs.sim.Stats(); st.FilesWritten < i+1; st = rs.sim.Stats() {
			time.Sleep(10 * time.Millisecond)
		}
	}
	var csv strings.Builder
	csv.WriteString("zone_id,account_id,destination_conf\n")
	for i, conf := range confs {
		fmt.Fprintf(&csv, "%032x,,%s\n", i+1, conf)
	}
	fmt.Fprintf(&csv, "%032x,,file://%s/x\n", 0xf1, blocked)
	in := filepath.Join(dir, "in.csv")
	if err := os.WriteFile(in, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CLOUDFLARE_API_TOKEN": runToken}
	code, out, stderr := runEnv(t, env, "", rs.runArgs("--skip-preflight", in)...)
	if code != 1 || !strings.Contains(stderr, "1 destination failed") {
		t.Fatalf("run = %d, want 1 with one failure:\n%s\n%s", code, out, stderr)
	}
	if err := os.Remove(blocked); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = runEnv(t, env, "", rs.runArgs("--skip-preflight", "--retry-failed", in)...)
	if code != 0 {
		t.Fatalf("run --retry-failed = %d:\n%s\n%s", code, out, stderr)
	}
	validated := map[string]bool{}
	for _, e := range readJournal(t, filepath.Join(dir, "in.journal.jsonl")) {
		if e.Event == events.Validated {
			validated[e.ScopeID] = true
		}
	}
	if len(validated) != len(confs)+1 {
		t.Fatalf("%d destinations validated, want %d", len(validated), len(confs)+1)
	}
	st := rs.sim.Stats()
	checkTokens(t, st)
	t.Logf("%s: %d challenges (%d before the run), %d validations ok, %d failed", m.name, st.ChallengesIssued, len(confs), st.ValidationsOK, st.ValidationsFailed)
}
