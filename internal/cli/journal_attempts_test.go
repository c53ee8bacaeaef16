package cli

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

// TestReportCountsEarlierRunsChallenges: the report's attempts_challenge
// of a destination counts the challenges of the runs killed before its
// outcome (the journal recorded them; the embedded Redis of those runs is
// gone) with this run's, and a destination finished by an earlier run keeps
// the count of its outcome, not one more per journaled challenge.
func TestReportCountsEarlierRunsChallenges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "j.jsonl")
	const inFlight, finished, batch = "a1", "b2", "batch-1"
	challenge := func(dest string) string {
		b, _ := json.Marshal(journalLine{Challenge: &ledger.Challenge{Dest: dest, Location: "loc-" + dest, Filename: "f.txt", Time: time.Now().UTC()}})
		return string(b) + "\n"
	}
	done, _ := json.Marshal(events.Event{Event: events.Validated, DestinationID: finished, Scope: "zone", ScopeID: "00000000000000000000000000000002",
		Destination: "file:///b", Attempts: events.Attempts{Challenge: 1, Validate: 1}, Line: 3})
	// Two runs killed while inFlight was challenged; finished validated in
	// the first of them.
	earlier := challenge(inFlight) + challenge(finished) + string(done) + "\n" + challenge(inFlight)
	if err := os.WriteFile(path, []byte(earlier), 0o600); err != nil {
		t.Fatal(err)
	}
	j, err := openJournal(path, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	// This run, on a fresh embedded Redis: one more challenge of inFlight,
	// counted by the ledger too.
	rdb, _ := testutil.Mini(t)
	store := ledger.NewStore(rdb, ledger.Config{})
	if err := j.Record(ctx, ledger.Challenge{Dest: inFlight, Location: "loc-" + inFlight, Time: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Enter(ctx, ledger.Key{Batch: batch, Hash: inFlight}, 0, events.Polling, 0, 0, events.StageChallenge); err != nil {
		t.Fatal(err)
	}
	env := Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(string) string { return "" }}
	dests := []inputDest{
		{line: 2, id: inFlight, scope: "zone", scopeID: "00000000000000000000000000000001", destination: "file:///a", destType: "file"},
		{line: 3, id: finished, scope: "zone", scopeID: "00000000000000000000000000000002", destination: "file:///b", destType: "file"},
	}
	report := filepath.Join(dir, "r.csv")
	if err := finishRun(env, store, batch, j, dests, report, path, true, nil); err == nil {
		t.Fatal("an interrupted run's finishRun = nil, want exit 1")
	}
	recs := reportRecords(t, report)
	col := slices.Index(recs[0], "attempts_challenge")
	if col < 0 || len(recs) != 3 {
		t.Fatalf("report %v", recs)
	}
	if got := recs[1][col]; got != "3" {
		t.Errorf("in-flight destination: attempts_challenge %s, want 3 (two earlier runs and this one)", got)
	}
	if got := recs[2][col]; got != "1" {
		t.Errorf("destination finished earlier: attempts_challenge %s, want 1 (its outcome's)", got)
	}
}
