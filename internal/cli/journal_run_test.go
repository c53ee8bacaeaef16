package cli

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
)

// reportRecords reads a run's CSV report, header first.
func reportRecords(t *testing.T, path string) [][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil || len(recs) == 0 || recs[0][0] != "line" {
		t.Fatalf("report %s (%v):\n%s", path, err, b)
	}
	return recs
}

// summaryTotal is the sum of the summary's total row.
func summaryTotal(t *testing.T, out string) int {
	t.Helper()
	n := 0
	for _, f := range strings.Fields(summaryRow(out, "total")) {
		v, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("summary total row %q:\n%s", summaryRow(out, "total"), out)
		}
		n += v
	}
	return n
}

// writeInput writes a CSV of the header and rows into dir/name.
func writeInput(t *testing.T, dir, name, header string, rows ...string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(header+"\n"+strings.Join(rows, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRunReportFollowsEditedInput: a file run to the end, then edited (two
// rows deleted, one added) and run again: the view, the summary and the
// report count the current input's 5 rows, each report row at its current
// line, and only the added row is challenged.
func TestRunReportFollowsEditedInput(t *testing.T) {
	t.Parallel()
	rs := newRunSim(t, simulator.Config{})
	dir := t.TempDir()
	env := map[string]string{"CLOUDFLARE_API_TOKEN": runToken}
	row := func(i int) string { return fmt.Sprintf("%032x,,file://%s/d/%d", i, dir, i) }
	const header = "zone_id,account_id,destination_conf"
	in := writeInput(t, dir, "dests.csv", header, row(1), row(2), row(3), row(4), row(5), row(6))
	if code, out, stderr := runEnv(t, env, "", rs.runArgs("--skip-preflight", in)...); code != 0 {
		t.Fatalf("first run = %d:\n%s\n%s", code, out, stderr)
	}
	before := len(rs.challenged())

	writeInput(t, dir, "dests.csv", header, row(3), row(4), row(5), row(6), row(7))
	code, out, stderr := runEnv(t, env, "", rs.runArgs("--skip-preflight", in)...)
	if code != 0 {
		t.Fatalf("second run = %d:\n%s\n%s", code, out, stderr)
	}
	if !strings.Contains(out, "5/5 done") {
		t.Errorf("the view does not count 5 of 5:\n%s", out)
	}
	if n := summaryTotal(t, out); n != 5 {
		t.Errorf("summary total %d, want 5:\n%s", n, out)
	}
	if got := rs.challenged()[before:]; len(got) != 1 || got[0] != fmt.Sprintf("%032x", 7) {
		t.Errorf("the second run challenged %v, want the added row only", got)
	}
	recs := reportRecords(t, filepath.Join(dir, "dests.results.csv"))
	if len(recs) != 6 {
		t.Fatalf("report has %d rows, want 5:\n%v", len(recs)-1, recs)
	}
	for i, r := range recs[1:] {
		line, zone := i+2, i+3 // the kept rows moved up two lines; the added one is last
		if r[0] != strconv.Itoa(line) || r[2] != fmt.Sprintf("%032x", zone) || r[5] != "validated" {
			t.Errorf("report row %d = %v; want line %d, zone %032x, validated", i+1, r, line, zone)
		}
	}
}

// TestRunJournalTwoDatasetsOneConf: two jobs of one zone onto one conf
// (datasets differ, the conf does not) are two destinations of the
// journal: a run of the first, then of both, finishes the second only;
// each has its own journal entry and report row.
func TestRunJournalTwoDatasetsOneConf(t *testing.T) {
	t.Parallel()
	rs := newRunSim(t, simulator.Config{})
	dir := t.TempDir()
	env := map[string]string{"CLOUDFLARE_API_TOKEN": runToken}
	const header = "zone_id,account_id,destination_conf,dataset"
	zone := fmt.Sprintf("%032x", 1)
	row := func(dataset string) string { return fmt.Sprintf("%s,,file://%s/logs,%s", zone, dir, dataset) }
	in := writeInput(t, dir, "jobs.csv", header, row("http_requests"))
	args := rs.runArgs("--skip-preflight", "--create-job", "--health-deadline", "0", in)
	if code, out, stderr := runEnv(t, env, "", args...); code != 0 {
		t.Fatalf("first run = %d:\n%s\n%s", code, out, stderr)
	}
	before := len(rs.challenged())
	writeInput(t, dir, "jobs.csv", header, row("http_requests"), row("firewall_events"))
	code, out, stderr := runEnv(t, env, "", args...)
	if code != 0 || !strings.Contains(out, "1 destination finished already") || !strings.Contains(out, "1 to go") {
		t.Fatalf("second run = %d, want it to resume with 1 to go:\n%s\n%s", code, out, stderr)
	}
	if n := len(rs.challenged()) - before; n != 1 {
		t.Errorf("the second run made %d challenges, want 1 (the new dataset's)", n)
	}
	if code, out, stderr := runEnv(t, env, "", args...); code != 0 || !strings.Contains(out, "every destination of "+in+" is finished already") {
		t.Fatalf("third run = %d, want every destination finished:\n%s\n%s", code, out, stderr)
	}
	if n := rs.sim.Stats().JobsCreated; n != 2 {
		t.Errorf("%d jobs created, want 2", n)
	}
	ids := map[string]bool{}
	for _, e := range readJournal(t, filepath.Join(dir, "jobs.journal.jsonl")) {
		ids[e.DestinationID] = true
	}
	if len(ids) != 2 || ids[""] {
		t.Errorf("journal destination ids %v, want two", ids)
	}
	if recs := reportRecords(t, filepath.Join(dir, "jobs.results.csv")); len(recs) != 3 || recs[1][0] != "2" || recs[2][0] != "3" {
		t.Errorf("report = %v, want rows of lines 2 and 3", recs)
	}
}

// TestRunJournalRowsDifferingInASecret: two rows whose confs differ only
// in a secret (redacted alike) are two journal entries: the second is done
// on the run after the first, not taken as finished.
func TestRunJournalRowsDifferingInASecret(t *testing.T) {
	t.Parallel()
	rs := newRunSim(t, simulator.Config{})
	dir := t.TempDir()
	env := map[string]string{"CLOUDFLARE_API_TOKEN": runToken}
	const header = "zone_id,account_id,destination_conf"
	row := func(secret string) string {
		return fmt.Sprintf("%032x,,https://logs.example.com/in?header_Authorization=Basic%%20%s", 1, secret)
	}
	in := writeInput(t, dir, "https.csv", header, row("SECRETONE"))
	if code, out, stderr := runEnv(t, env, "", rs.runArgs("--skip-preflight", in)...); code != 0 {
		t.Fatalf("first run = %d:\n%s\n%s", code, out, stderr)
	}
	writeInput(t, dir, "https.csv", header, row("SECRETONE"), row("SECRETTWO"))
	code, out, stderr := runEnv(t, env, "", rs.runArgs("--skip-preflight", in)...)
	if code != 0 || !strings.Contains(out, "1 destination finished already") || !strings.Contains(out, "1 to go") {
		t.Fatalf("second run = %d, want it to resume with 1 to go:\n%s\n%s", code, out, stderr)
	}
	journal := filepath.Join(dir, "https.journal.jsonl")
	ids := map[string]bool{}
	for _, e := range readJournal(t, journal) {
		ids[e.DestinationID] = true
	}
	if len(ids) != 2 || ids[""] {
		t.Errorf("journal destination ids %v, want two", ids)
	}
	if recs := reportRecords(t, filepath.Join(dir, "https.results.csv")); len(recs) != 3 || recs[1][5] != "not_required" || recs[2][5] != "not_required" {
		t.Errorf("report = %v, want two not_required rows", recs)
	}
	jb, _ := os.ReadFile(journal)
	if strings.Contains(string(jb), "SECRET") {
		t.Errorf("a secret leaked into the journal:\n%s", jb)
	}
}

// TestRunStdinJournalPerInput: two different inputs piped to run in one
// folder get a journal and a report each, named by their batch ids, each
// report with as many rows as its input.
func TestRunStdinJournalPerInput(t *testing.T) {
	// Not parallel: standard input's files go to the working directory.
	rs := newRunSim(t, simulator.Config{})
	dir := t.TempDir()
	t.Chdir(dir)
	env := map[string]string{"CLOUDFLARE_API_TOKEN": runToken}
	input := func(from, n int) string {
		var b strings.Builder
		b.WriteString("zone_id,account_id,destination_conf\n")
		for i := from; i < from+n; i++ {
			fmt.Fprintf(&b, "%032x,,https://logs.example.com/in/%d\n", i, i)
		}
		return b.String()
	}
	for _, in := range []string{input(1, 3), input(10, 5)} {
		if code, out, stderr := runEnv(t, env, in, rs.runArgs("--skip-preflight", "-")...); code != 0 {
			t.Fatalf("run - = %d:\n%s\n%s", code, out, stderr)
		}
	}
	journals, _ := filepath.Glob(filepath.Join(dir, "stdin-b-*.journal.jsonl"))
	reports, _ := filepath.Glob(filepath.Join(dir, "stdin-b-*.results.csv"))
	if len(journals) != 2 || len(reports) != 2 {
		t.Fatalf("journals %v, reports %v; want two of each", journals, reports)
	}
	rows := map[int]bool{}
	for _, r := range reports {
		rows[len(reportRecords(t, r))-1] = true
	}
	if !rows[3] || !rows[5] {
		t.Errorf("report row counts %v, want 3 and 5", rows)
	}
}
