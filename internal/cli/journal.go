package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/words"
)

// journal is run's record of the destinations that have an outcome: one
// result event (redacted, as on the stream) per line, appended and fsync'd
// as the outcomes come, and read back on start, so that a re-run after
// Ctrl-C, a crash or kill -9 skips what is finished. A destination is
// known by its event's DestinationID (tasks.Dest.Hash: scope, id, full
// conf and dataset), so that two rows whose redacted confs are equal (they
// differ in a secret, or only in the dataset of their job) are two
// entries. Each destination is in it once, unless run --retry-failed redid
// a failed one: its latest line wins. Rows deleted from the input stay in
// it; the report shows the current input's rows only.
//
// It is also the worker's ChallengeLog: a line {"challenge":{...}} per
// challenge, fsync'd before the call is made (no token: where it is
// written and what the path held before), so that a re-run takes up the
// challenges that were in flight rather than asking again.
type journal struct {
	mu   sync.Mutex
	f    *os.File
	path string
	done map[string]events.Event // by DestinationID
	// prior is the last challenge recorded at each location by earlier
	// runs; touched the locations challenged by this one.
	prior   map[string]ledger.Challenge
	touched map[string]bool
	// challenges counts, by destination id, the challenges recorded since
	// its last outcome in an earlier run (those of earlier runs and this
	// one's); finished those recorded before that outcome. The ledger of
	// an embedded Redis dies with its run: the report takes these.
	challenges map[string]int
	finished   map[string]int
}

// journalLine is a line of the journal: a challenge record, or else an
// event.
type journalLine struct {
	Challenge *ledger.Challenge `json:"challenge,omitempty"`
}

// openJournal opens the journal at path, creating it, takes its lock (a
// second run of the same journal is refused with exit 2, naming the
// running one's pid), and reads what it holds. A last line cut short (the
// process was killed while writing it) is dropped; a last whole line that
// is not an event (two runs wrote at once before the lock) is set aside in
// path.damaged with a warning on warn; any other line that is not an event
// is an error naming it. An event without a DestinationID (written before
// events carried one) cannot be told apart from another destination with
// the same redacted conf: it stays in the file but counts as unknown, its
// destination done again, with a warning.
func openJournal(path string, warn io.Writer) (*journal, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("-journal: %w", err)
	}
	if err := lockJournal(f, path); err != nil {
		f.Close()
		return nil, err
	}
	j := &journal{f: f, path: path, done: map[string]events.Event{}, prior: map[string]ledger.Challenge{}, touched: map[string]bool{},
		challenges: map[string]int{}, finished: map[string]int{}}
	r := bufio.NewReader(f)
	var good int64 // bytes up to the end of the last good whole line
	var damaged []byte
	damagedAt, unkeyed := 0, 0
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			break // a line without its newline was cut short: dropped below
		}
		if err != nil {
			j.close()
			return nil, fmt.Errorf("read journal %s: %w", path, err)
		}
		if damaged != nil {
			j.close()
			return nil, fmt.Errorf("journal %s: line %d is not a result event; give another --journal or move the file away", path, damagedAt)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			good += int64(len(line))
			continue
		}
		var c journalLine
		if json.Unmarshal(line, &c) == nil && c.Challenge != nil && c.Challenge.Location != "" {
			j.prior[c.Challenge.Location] = *c.Challenge
			j.challenges[c.Challenge.Dest]++
			good += int64(len(line))
			continue
		}
		var e events.Event
		if err := json.Unmarshal(line, &e); err != nil || !outcome(e) {
			damaged, damagedAt = line, n
			continue
		}
		good += int64(len(line))
		if e.DestinationID == "" {
			unkeyed++
			continue
		}
		j.done[e.DestinationID] = e
		if !isHealthOutcome(e.Event) { // a health outcome follows its validated event: same challenges
			j.finished[e.DestinationID] = j.challenges[e.DestinationID]
			delete(j.challenges, e.DestinationID)
		}
	}
	if unkeyed > 0 {
		fmt.Fprintf(warn, "run: warning: journal %s has %s without a destination_id (written by an older version): their destinations are done again\n",
			path, words.Plural(int64(unkeyed), "outcome"))
	}
	if damaged != nil {
		aside := path + ".damaged"
		if err := appendFile(aside, damaged); err != nil {
			j.close()
			return nil, fmt.Errorf("journal %s: set its damaged line %d aside: %w", path, damagedAt, err)
		}
		fmt.Fprintf(warn, "run: warning: the last line (%d) of journal %s is not a result event (two runs wrote it at once?): set aside in %s; its destination is done again if it is not finished\n",
			damagedAt, path, aside)
	}
	if err := f.Truncate(good); err != nil {
		j.close()
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		j.close()
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	return j, nil
}

// appendFile appends b to the file at path, creating it.
func appendFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// pidFile is where the run holding a journal's lock writes its pid.
func pidFile(path string) string { return path + ".pid" }

// errJournalBusy is wrapped by openJournal's error when another run holds
// the journal.
var errJournalBusy = errors.New("journal in use")

// busyJournal is the error of a journal another run holds.
func busyJournal(path string) error {
	pid := "unknown"
	if b, err := os.ReadFile(pidFile(path)); err == nil && len(bytes.TrimSpace(b)) > 0 {
		pid = string(bytes.TrimSpace(b))
	}
	return &exitError{code: 2, err: fmt.Errorf("%w: journal %s is held by another run (pid %s) of the same file: wait for it to end, or give this one another --journal (two runs at once would challenge every destination twice and spend two budgets)",
		errJournalBusy, path, pid)}
}

// forgetFailed drops the failed destinations, so that run redoes them and
// journals their new outcome.
func (j *journal) forgetFailed() {
	for k, e := range j.done {
		if e.Event == events.Failed {
			delete(j.done, k)
			delete(j.finished, k)
		}
	}
}

// isHealthOutcome reports whether s is the outcome of a watched job.
func isHealthOutcome(s events.State) bool {
	return s == events.Flowing || s == events.JobFailing || s == events.NoDataYet
}

// unwatched returns the outcome of the destination of id (tasks.Dest.Hash)
// when it is its job stage's (validated or not_required, naming the job)
// and no health outcome followed: a run stopped while the job was watched.
func (j *journal) unwatched(id string) (events.Event, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.done[id]
	return e, ok && e.JobID > 0 && (e.Event == events.Validated || e.Event == events.NotRequired)
}

// has reports whether the journal has an outcome for the destination of
// id (tasks.Dest.Hash).
func (j *journal) has(id string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	_, ok := j.done[id]
	return ok
}

// Record writes the challenge about to be made and syncs the file, for
// worker.ChallengeLog: from now on no earlier run's challenge at its
// location is taken up (the file will hold this one's token).
func (j *journal) Record(_ context.Context, c ledger.Challenge) error {
	b, err := json.Marshal(journalLine{Challenge: &c})
	if err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.touched[c.Location] = true
	j.challenges[c.Dest]++
	return j.write(append(b, '\n'))
}

// challenged returns the challenges the journal recorded for the
// destination of id (tasks.Dest.Hash): those since its last outcome of an
// earlier run, or, when none, those before that outcome. A destination
// whose challenges are not recorded (no readable token) has none.
func (j *journal) challenged(id string) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	if n := j.challenges[id]; n > 0 {
		return n
	}
	return j.finished[id]
}

// Prior returns the last challenge earlier runs recorded at loc, when it
// was dest's and this run has challenged nothing there, for
// worker.ChallengeLog.
func (j *journal) Prior(dest, loc string) (ledger.Challenge, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	c, ok := j.prior[loc]
	if !ok || c.Dest != dest || j.touched[loc] {
		return ledger.Challenge{}, false
	}
	return c, true
}

// Pending returns the last challenge earlier runs recorded at loc, when its
// destination has no outcome and this run has challenged nothing there, for
// worker.ChallengeLog.
func (j *journal) Pending(loc string) (ledger.Challenge, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	c, ok := j.prior[loc]
	if !ok || j.touched[loc] {
		return ledger.Challenge{}, false
	}
	if _, done := j.done[c.Dest]; done {
		return ledger.Challenge{}, false
	}
	return c, true
}

// append writes the events of destinations the journal does not have yet
// and syncs the file: once it returns, they survive a crash. A job's health
// outcome (flowing, job_failing, no_data_yet) is journaled after the
// validated or not_required event of its job stage, and wins on reading.
func (j *journal) append(evs []events.Event) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	var buf bytes.Buffer
	for _, e := range evs {
		k := e.DestinationID
		if prev, ok := j.done[k]; ok && !(isHealthOutcome(e.Event) && !isHealthOutcome(prev.Event)) {
			continue
		}
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
		j.done[k] = e
	}
	if buf.Len() == 0 {
		return nil
	}
	return j.write(buf.Bytes())
}

// write appends b and syncs the file; the caller holds j.mu.
func (j *journal) write(b []byte) error {
	if _, err := j.f.Write(b); err != nil {
		return fmt.Errorf("write journal %s: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync journal %s: %w", j.path, err)
	}
	return nil
}

// close releases the journal's lock (closing the file does) and removes
// the pid file.
func (j *journal) close() error {
	os.Remove(pidFile(j.path))
	return j.f.Close()
}
