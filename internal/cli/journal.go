package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/input"
)

// journal is run's record of the destinations that have an outcome: one
// result event (redacted, as on the stream) per line, appended and fsync'd
// as the outcomes come, and read back on start, so that a re-run after
// Ctrl-C, a crash or kill -9 skips what is finished. Each destination is in
// it once, unless run --retry-failed redid a failed one: its latest line
// wins.
type journal struct {
	f    *os.File
	path string
	done map[string]events.Event // by destKey
}

// destKey identifies a destination in the journal: scope, id and the
// redacted conf (the journal holds no secret, so not the conf itself).
func destKey(scope, scopeID, redacted string) string {
	return scope + " " + scopeID + " " + redacted
}

func rowKey(r input.Row) string      { return destKey(r.Scope, r.ScopeID, r.Conf.Redacted()) }
func eventKey(e events.Event) string { return destKey(e.Scope, e.ScopeID, e.Destination) }

// openJournal opens the journal at path, creating it, takes its lock (a
// second run of the same journal is refused with exit 2, naming the
// running one's pid), and reads what it holds. A last line cut short (the
// process was killed while writing it) is dropped; a last whole line that
// is not an event (two runs wrote at once before the lock) is set aside in
// path.damaged with a warning on warn; any other line that is not an event
// is an error naming it.
func openJournal(path string, warn io.Writer) (*journal, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("-journal: %w", err)
	}
	if err := lockJournal(f, path); err != nil {
		f.Close()
		return nil, err
	}
	j := &journal{f: f, path: path, done: map[string]events.Event{}}
	r := bufio.NewReader(f)
	var good int64 // bytes up to the end of the last good whole line
	var damaged []byte
	damagedAt := 0
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
		var e events.Event
		if err := json.Unmarshal(line, &e); err != nil || !outcome(e) {
			damaged, damagedAt = line, n
			continue
		}
		good += int64(len(line))
		j.done[eventKey(e)] = e
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
		}
	}
}

// has reports whether the journal has an outcome for the destination.
func (j *journal) has(key string) bool {
	_, ok := j.done[key]
	return ok
}

// append writes the events of destinations the journal does not have yet
// and syncs the file: once it returns, they survive a crash.
func (j *journal) append(evs []events.Event) error {
	var buf bytes.Buffer
	for _, e := range evs {
		k := eventKey(e)
		if j.has(k) {
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
	if _, err := j.f.Write(buf.Bytes()); err != nil {
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
