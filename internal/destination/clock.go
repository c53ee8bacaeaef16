package destination

import (
	"context"
	"net/http"
	"time"
)

// A ClockSample is what one storage response tells of the storage's clock,
// the clock that dates its objects: its Date, to Resolution (a second for
// HTTP dates), and when the request was sent and the response received on
// this host's clock. So the storage's clock was ahead of this host's by at
// least Date-Received and at most Date+Resolution-Sent.
type ClockSample struct {
	Date, Sent, Received time.Time
	// Resolution is also that of the objects' dates (Object.ModTime): whole
	// seconds for S3 and Azure, a kernel tick for a local file.
	Resolution time.Duration
}

// Offset returns the bounds of the storage clock's lead over this host's
// that s tells.
func (s ClockSample) Offset() (lo, hi time.Duration) {
	return s.Date.Sub(s.Received), s.Date.Add(s.Resolution).Sub(s.Sent)
}

type clockKey struct{}

// WithClock returns a context whose reads report each storage response's
// ClockSample to fn (S3, Azure and file readers; GCS reports none). fn is
// called on the reading goroutine, once per response, retries included.
func WithClock(ctx context.Context, fn func(ClockSample)) context.Context {
	return context.WithValue(ctx, clockKey{}, fn)
}

// ReportClock tells the context's WithClock function, if any, of s: what
// a Reader calls for each response.
func ReportClock(ctx context.Context, s ClockSample) {
	if fn, _ := ctx.Value(clockKey{}).(func(ClockSample)); fn != nil {
		fn(s)
	}
}

// reportClock reports a response sent at sent, received at received, with
// h its headers: nothing without a Date. Its callers time the request only
// where the context has a WithClock function.
func reportClock(ctx context.Context, sent, received time.Time, h http.Header) {
	date, err := http.ParseTime(h.Get("Date"))
	if err != nil {
		return
	}
	ReportClock(ctx, ClockSample{Date: date, Sent: sent, Received: received, Resolution: time.Second})
}

// localResolution is a local file's: the kernel dates files from a coarse
// clock, up to a tick (1-10 ms) behind the time a program reads.
const localResolution = 10 * time.Millisecond

// reportLocalClock tells the context's WithClock function that the storage
// is this host's file system: its clock is this host's, to a tick.
func reportLocalClock(ctx context.Context) {
	if ctx.Value(clockKey{}) != nil {
		now := time.Now()
		ReportClock(ctx, ClockSample{Date: now.Add(-localResolution), Sent: now, Received: now, Resolution: localResolution})
	}
}
