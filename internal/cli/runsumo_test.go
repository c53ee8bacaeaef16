package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
)

// TestRunSumoWithoutRedis: on its embedded Redis, run leaves Sumo Logic
// rows out before any call (no challenge spent on a token that
// submit-token could never bring), says so first and counts them in the
// summary; a file of Sumo rows only starts nothing (exit 2).
func TestRunSumoWithoutRedis(t *testing.T) {
	t.Parallel()
	rs := newRunSim(t, simulator.Config{WriteDelay: 10 * time.Millisecond})
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("zone_id,account_id,destination_conf\n")
	for i := range 2 {
		fmt.Fprintf(&b, "%032x,,file://%s/d/%d\n", i+1, dir, i)
	}
	sumoIDs := map[string]bool{}
	for i := range 3 {
		sumoIDs[fmt.Sprintf("%032x", 0x100+i)] = true
		fmt.Fprintf(&b, "%032x,,sumo://endpoint1.collection.sumologic.com/receiver/v1/http/Code%04d\n", 0x100+i, i)
	}
	in := filepath.Join(dir, "mixed.csv")
	if err := os.WriteFile(in, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CLOUDFLARE_API_TOKEN": runToken}
	const msg = "3 sumo rows left out: submit-token needs a shared Redis: run with --redis"
	code, out, stderr := runEnv(t, env, "", rs.runArgs(in)...)
	if code != 0 || !strings.HasPrefix(stderr, "run: "+msg) || !strings.Contains(out, msg) {
		t.Fatalf("run = %d, want 0, the sumo rows said left out first on stderr and in the summary:\n%s\n%s", code, out, stderr)
	}
	for _, id := range rs.challenged() {
		if sumoIDs[id] {
			t.Errorf("sumo zone %s challenged", id)
		}
	}
	if n := len(rs.challenged()); n != 2 {
		t.Errorf("%d challenges, want 2 (the file rows only): %v", n, rs.challenged())
	}
	if got := summaryRow(out, "file"); got != "2" {
		t.Errorf("summary row file = %q, want 2 validated:\n%s", got, out)
	}
	// Run again: the file rows are finished, the sumo rows are still left out.
	code, out, stderr = runEnv(t, env, "", rs.runArgs(in)...)
	if code != 0 || !strings.Contains(out, "is finished already") || !strings.Contains(out, msg) || len(rs.challenged()) != 2 {
		t.Fatalf("second run = %d (%d challenges):\n%s\n%s", code, len(rs.challenged()), out, stderr)
	}

	only := filepath.Join(dir, "sumo.csv")
	os.WriteFile(only, []byte(fmt.Sprintf("zone_id,account_id,destination_conf\n%032x,,sumo://endpoint1.collection.sumologic.com/receiver/v1/http/Code9\n", 0x200)), 0o600)
	code, out, stderr = runEnv(t, env, "", rs.runArgs(only)...)
	if code != 2 || !strings.Contains(stderr, "1 sumo row left out") || len(rs.challenged()) != 2 {
		t.Fatalf("run of sumo rows only = %d (%d challenges), want 2 and none:\n%s\n%s", code, len(rs.challenged()), out, stderr)
	}
}
