package worker

import (
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/destination"
)

// TestClockBounds: a store's clock is what all its recent responses allow,
// widened by clockDrift; responses that disagree (the clock was set) or
// are older than clockAge tell nothing.
func TestClockBounds(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	c := newClocks(func() time.Time { return now })
	// A response sent at local on this host's clock, answered 5 ms later by
	// a storage whose clock is behind by lag.
	at := func(local, lag time.Duration) destination.ClockSample {
		sent := now.Add(local)
		return destination.ClockSample{Date: sent.Add(2*time.Millisecond - lag).Truncate(time.Second), Sent: sent,
			Received: sent.Add(5 * time.Millisecond), Resolution: time.Second}
	}
	if _, ok := c.bounds("s3|||b"); ok {
		t.Fatal("bounds without responses")
	}
	// This host's clock 300 ms ahead of the storage's: responses across
	// the storage's seconds narrow it down.
	for _, local := range []time.Duration{-900, -700, -310, -290, 100, 280, 320} {
		c.add("s3|||b", at(local*time.Millisecond, 300*time.Millisecond))
	}
	b, ok := c.bounds("s3|||b")
	lo, hi := b.lo+clockDrift, b.hi-clockDrift
	if !ok || lo > -300*time.Millisecond || hi < -300*time.Millisecond || hi-lo > 50*time.Millisecond || b.res != time.Second {
		t.Fatalf("bounds %+v (%v): want -300ms within at most 50ms, res 1s", b, ok)
	}
	if _, ok := c.bounds("s3|||other"); ok {
		t.Fatal("another bucket's clock was measured by this one's responses")
	}
	// The clock set 5 s ahead: its next response disagrees.
	c.add("s3|||b", at(500*time.Millisecond, -5*time.Second))
	if b, ok := c.bounds("s3|||b"); ok {
		t.Fatalf("bounds %+v after disagreeing responses, want none", b)
	}
	now = now.Add(clockAge + time.Minute)
	c.add("s3|||b", at(0, -5*time.Second))
	if b, ok := c.bounds("s3|||b"); !ok || b.lo < 4*time.Second {
		t.Fatalf("bounds %+v (%v) once the old responses aged out, want the new clock's", b, ok)
	}
}
