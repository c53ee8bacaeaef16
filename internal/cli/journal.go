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

// openJournal opens the journal at path, creating it, and reads what it
// holds. A last line cut short (the process was killed while writing it)
// is dropped; any other line that is not an event is an error naming it.
func openJournal(path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("-journal: %w", err)
	}
	j := &journal{f: f, path: path, done: map[string]events.Event{}}
	r := bufio.NewReader(f)
	var good int64 // bytes up to the end of the last whole line
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			break // a line without its newline was cut short: dropped below
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("read journal %s: %w", path, err)
		}
		good += int64(len(line))
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e events.Event
		if err := json.Unmarshal(line, &e); err != nil || !outcome(e) {
			f.Close()
			return nil, fmt.Errorf("journal %s: line %d is not a result event; give another --journal or move the file away", path, n)
		}
		j.done[eventKey(e)] = e
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	return j, nil
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

// jobHealth reports whether s is the outcome of a watched job.
func jobHealth(s events.State) bool {
	return s == events.Flowing || s == events.JobFailing || s == events.NoDataYet
}

// has reports whether the journal has an outcome for the destination.
func (j *journal) has(key string) bool {
	_, ok := j.done[key]
	return ok
}

// append writes the events of destinations the journal does not have yet
// and syncs the file: once it returns, they survive a crash. A job's health
// outcome (flowing, job_failing, no_data_yet) is journaled after the
// validated or not_required event of its job stage, and wins on reading.
func (j *journal) append(evs []events.Event) error {
	var buf bytes.Buffer
	for _, e := range evs {
		k := eventKey(e)
		if prev, ok := j.done[k]; ok && !(jobHealth(e.Event) && !jobHealth(prev.Event)) {
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

func (j *journal) close() error { return j.f.Close() }
