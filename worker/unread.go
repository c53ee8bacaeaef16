package worker

import "time"

// The read before a challenge (readBefore) tells a file already on the path
// from the one the challenge writes, however recent it looks: S3 and Azure
// date files to the second. It costs a storage read per destination. Where
// files are known to appear late enough after their challenge, a file's date
// tells alone: one dated at least ClockSkew after the request (on the
// storage's clock, to the second, so no later than it was written) was
// written after it. So a first challenge skips the read when even the
// fastest recent file, written that long after this request, would be so
// dated (skipRead); its poll then takes only a file so dated (undated). A
// file dated earlier is never taken, however new: it may be another tool's
// challenge written just before this one. The destination asks for a fresh
// challenge instead, which reads first.

// unread is PollPayload.Before, and the challenge record's, of a challenge
// whose path was not read before it.
const unread = "unread"

// skipMargin covers the time from skipRead's look at the clock to the
// request.
const skipMargin = 100 * time.Millisecond

// skipRead reports whether r's challenge may go without the read before it:
// a first challenge, on a path whose record (what its last holder saw
// there) is old enough for the poll to refuse that holder's file by its
// date, once the worker has seen files appear late enough.
func (h *handlers) skipRead(r *run, record string) bool {
	if r.d.Gen > 0 {
		return false
	}
	now := h.now()
	if _, at, ok := parseRecord(record); ok && !at.Before(now.Truncate(time.Second).Add(-h.cfg.ClockSkew-time.Second)) {
		return false // its holder's file may be dated within the poll's reach
	}
	least, ok := h.seen.least()
	if !ok {
		return false
	}
	// Observed delays of files dated to the second are at most a second
	// after the write (poll: appeared): it may have been a second earlier.
	earliest := now.Add(least - time.Second).Truncate(time.Second)
	return !earliest.Before(now.Add(h.cfg.ClockSkew + skipMargin))
}

// undated reports whether a file dated mod, found for a challenge that did
// not read its path first and was requested at requestedAt, may predate the
// request.
func (h *handlers) undated(mod, requestedAt time.Time) bool {
	return mod.Before(requestedAt.Add(h.cfg.ClockSkew))
}
