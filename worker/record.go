package worker

import (
	"strconv"
	"strings"
	"time"
)

// A path's record (location.Grant.Record) is what its previous holder read
// there last, "<digest or location.Absent>@<Unix ms of the read>", so that
// the next holder can take it for its read before the challenge. It does
// only while the record is at most ClockSkew old at the challenge: a file
// written before that is refused by its date (the poll takes nothing older
// than the request less ClockSkew), so the record then covers what a read
// would; an older record would let a file someone else wrote in between
// (another tool's challenge on the path) pass for this one's.

// pathRecord is what r leaves for the next holder of its path. A holder
// that read nothing there leaves "@<now>": someone used the path just
// now, and what it holds is unknown, so the next holder reads it (a
// listing from before may not show what this holder's challenge wrote).
func (h *handlers) pathRecord(r *run) string {
	if r.seen == "" {
		return "@" + strconv.FormatInt(h.now().UnixMilli(), 10)
	}
	return r.seen + "@" + strconv.FormatInt(r.seenAt.UnixMilli(), 10)
}

// trustRecord returns what record says the path holds, or "" when the
// record is unknown, malformed or older than ClockSkew: the path must be
// read before the challenge.
func (h *handlers) trustRecord(record string) string {
	seen, at, ok := parseRecord(record)
	if !ok || seen == "" {
		return ""
	}
	if age := h.now().Sub(at); age < 0 || age > h.cfg.ClockSkew {
		return ""
	}
	return seen
}

// parseRecord splits a path's record (see pathRecord) into what its holder
// saw there ("" for unknown) and when; ok is false for no record, or a
// malformed one.
func parseRecord(record string) (seen string, at time.Time, ok bool) {
	seen, ms, ok := strings.Cut(record, "@")
	if !ok {
		return "", time.Time{}, false
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return "", time.Time{}, false
	}
	return seen, time.UnixMilli(n), true
}
