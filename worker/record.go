package worker

import (
	"strconv"
	"strings"
)

// A path's record (location.Grant.Record) is what its previous holder read
// there last, "<digest or location.Absent>@<Unix ms of the read>", so that
// the next holder can take it for its read before the challenge. It does
// only while the record is at most ClockSkew old at the challenge: a file
// written before that is refused by its date (the poll takes nothing older
// than the request less ClockSkew), so the record then covers what a read
// would; an older record would let a file someone else wrote in between
// (another tool's challenge on the path) pass for this one's.

// pathRecord is what r leaves for the next holder of its path.
func pathRecord(r *run) string {
	if r.seen == "" {
		return ""
	}
	return r.seen + "@" + strconv.FormatInt(r.seenAt.UnixMilli(), 10)
}

// trustRecord returns what record says the path holds, or "" when the
// record is unknown, malformed or older than ClockSkew: the path must be
// read before the challenge.
func (h *handlers) trustRecord(record string) string {
	seen, _, _ := strings.Cut(record, "@")
	at, ok := recordAt(record)
	if !ok || seen == "" {
		return ""
	}
	if age := h.now().Sub(at); age < 0 || age > h.cfg.ClockSkew {
		return ""
	}
	return seen
}
