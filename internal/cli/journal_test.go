package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestJournalLock: a second run of the same journal is refused with exit 2
// naming the pid of the one that holds it; once that one closed it, the
// journal opens again.
func TestJournalLock(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "x.journal.jsonl")
	var warn bytes.Buffer
	j, err := openJournal(path, &warn)
	if err != nil {
		t.Fatal(err)
	}
	_, err = openJournal(path, &warn)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || !errors.Is(err, errJournalBusy) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("second open = %v; want exit 2 naming pid %d", err, os.Getpid())
	}
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	j2, err := openJournal(path, &warn)
	if err != nil {
		t.Fatalf("open after the holder closed it: %v", err)
	}
	j2.close()
}

// TestJournalDamagedLastLine: a journal whose last whole line is not an
// event (two runs wrote at once) opens with a warning, the line set aside;
// a damaged line before the last is still an error naming it.
func TestJournalDamagedLastLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := `{"event":"validated","destination_id":"d1","scope":"zone","scope_id":"z1","destination":"s3://b/p","attempts":{"challenge":1,"poll":1,"validate":1},"duration_seconds":1,"time":"2026-12-06T00:00:00Z"}` + "\n"
	frag := `,"scope_id":"z2","destination":"s3://b/q"}` + "\n"
	path := filepath.Join(dir, "a.journal.jsonl")
	if err := os.WriteFile(path, []byte(good+frag), 0o600); err != nil {
		t.Fatal(err)
	}
	var warn bytes.Buffer
	j, err := openJournal(path, &warn)
	if err != nil {
		t.Fatalf("open with a damaged last line: %v", err)
	}
	j.close()
	if len(j.done) != 1 || !strings.Contains(warn.String(), "last line (2)") || !strings.Contains(warn.String(), path+".damaged") {
		t.Fatalf("done %d, warning %q; want the good line kept and the last set aside", len(j.done), warn.String())
	}
	if b, _ := os.ReadFile(path + ".damaged"); string(b) != frag {
		t.Fatalf("set aside %q, want %q", b, frag)
	}
	if b, _ := os.ReadFile(path); string(b) != good {
		t.Fatalf("journal after = %q, want the good line only", b)
	}

	mid := filepath.Join(dir, "b.journal.jsonl")
	if err := os.WriteFile(mid, []byte(good+frag+good), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openJournal(mid, &warn); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("line %d is not a result event", 2)) {
		t.Fatalf("open with a damaged middle line = %v; want an error naming line 2", err)
	}
}

// TestJournalKeepsChallengeLines: a journal whose challenge records stand
// between its events opens whole: neither the records nor the events after
// them are cut off when the journal is truncated to its last good line.
func TestJournalKeepsChallengeLines(t *testing.T) {
	t.Parallel()
	ev := func(zone string) string {
		return `{"event":"validated","destination_id":"` + zone + `","scope":"zone","scope_id":"` + zone + `","destination":"s3://b/p","attempts":{"challenge":1,"poll":1,"validate":1},"duration_seconds":1,"time":"2026-12-06T00:00:00Z"}` + "\n"
	}
	challenge := `{"challenge":{"location":"s3://b/p/ownership-challenge.txt","filename":"p/ownership-challenge.txt","time":"2026-12-06T00:00:00Z"}}` + "\n"
	body := ev("z1") + challenge + ev("z2") + challenge + ev("z3")
	path := filepath.Join(t.TempDir(), "c.journal.jsonl")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	var warn bytes.Buffer
	j, err := openJournal(path, &warn)
	if err != nil {
		t.Fatal(err)
	}
	done, prior := len(j.done), len(j.prior)
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	if done != 3 || prior != 1 || warn.Len() != 0 {
		t.Errorf("done %d, challenge records %d, warning %q; want 3, 1, none", done, prior, warn.String())
	}
	if b, _ := os.ReadFile(path); string(b) != body {
		t.Errorf("journal after open = %q, want it unchanged", b)
	}
}

// TestJournalWithoutDestinationID: outcomes an older version wrote without
// a destination_id open with a warning and count as unknown (their
// destinations are done again); the lines stay in the file.
func TestJournalWithoutDestinationID(t *testing.T) {
	t.Parallel()
	old := `{"event":"validated","scope":"zone","scope_id":"z1","destination":"s3://b/p","attempts":{"challenge":1,"poll":1,"validate":1},"duration_seconds":1,"time":"2026-12-06T00:00:00Z"}` + "\n"
	keyed := `{"event":"validated","destination_id":"d2","scope":"zone","scope_id":"z2","destination":"s3://b/q","attempts":{"challenge":1,"poll":1,"validate":1},"duration_seconds":1,"time":"2026-12-06T00:00:00Z"}` + "\n"
	path := filepath.Join(t.TempDir(), "o.journal.jsonl")
	if err := os.WriteFile(path, []byte(old+keyed+old), 0o600); err != nil {
		t.Fatal(err)
	}
	var warn bytes.Buffer
	j, err := openJournal(path, &warn)
	if err != nil {
		t.Fatalf("open a journal of an older version: %v", err)
	}
	j.close()
	if len(j.done) != 1 || !j.has("d2") || !strings.Contains(warn.String(), "2 outcomes without a destination_id") {
		t.Errorf("done %v, warning %q; want d2 only and a warning naming 2 outcomes", j.done, warn.String())
	}
	if b, _ := os.ReadFile(path); string(b) != old+keyed+old {
		t.Errorf("journal after open = %q, want it unchanged", b)
	}
}
