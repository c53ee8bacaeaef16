package worker

import (
	"testing"
	"time"
)

// missSchedule is the poll schedule after a miss, as pollDelay's defaults: 1 s,
// then half as long again each time.
func missSchedule(n int) time.Duration {
	d := time.Second
	for i := 1; i < n; i++ {
		d += d / 2
	}
	return d
}

func TestAppearanceFirstPoll(t *testing.T) {
	t.Parallel()
	a := newAppearance(64)
	if d := a.firstPoll(2*time.Second, 15*time.Second, missSchedule); d != 2*time.Second {
		t.Fatalf("before any observation = %v, want the default", d)
	}
	// A cold fleet: the first files set the first poll of the next ones,
	// the longest seen so far and a scout's look (a quarter of the first
	// miss's delay), never past the default.
	a.observe(time.Second)
	a.observe(1200 * time.Millisecond)
	if d := a.firstPoll(4*time.Second, 15*time.Second, missSchedule); d != 1450*time.Millisecond {
		t.Fatalf("after 2 observations of 1-1.2s = %v, want 1.45s", d)
	}
	// A file found 1.03 s after its challenge, its look before on another
	// worker: the middle of what the looks left open is 0.59 s; the first
	// polls wait until it had appeared by.
	early := newAppearance(64)
	early.observe(590 * time.Millisecond)
	early.observeBy(1030 * time.Millisecond)
	if d := early.firstPoll(4*time.Second, 15*time.Second, missSchedule); d != 1030*time.Millisecond {
		t.Fatalf("a file learnt at 0.59 s, there by 1.03 s = %v, want 1.03s", d)
	}
	a.observe(9 * time.Second)
	if d := a.firstPoll(4*time.Second, 15*time.Second, missSchedule); d != 4*time.Second {
		t.Fatalf("after a 9s observation = %v, want the default 4s at most", d)
	}
	slow := newAppearance(64)
	for _, d := range []time.Duration{5200 * time.Millisecond, 7500 * time.Millisecond, 6 * time.Second} {
		slow.observe(d)
	}
	if d := slow.firstPoll(4*time.Second, 15*time.Second, missSchedule); d != 6250*time.Millisecond {
		t.Fatalf("after 3 files at 5.2-7.5s = %v, want their median and a scout's look, 6.25s: a look at the default 4s misses them all", d)
	}
	for i := range 100 {
		a.observe(time.Duration(1+i%4) * time.Second) // 1s..4s
	}
	if d := a.firstPoll(2*time.Second, 15*time.Second, missSchedule); d != 4*time.Second {
		t.Fatalf("p75 of 1..4s = %v, want 4s", d)
	}
	for i := range 64 {
		a.observe(time.Second + time.Duration(i%11)*10*time.Millisecond) // 1.00-1.10s
	}
	if d := a.firstPoll(2*time.Second, 15*time.Second, missSchedule); d != 1100*time.Millisecond {
		t.Fatalf("files after 1.00-1.10s = %v, want 1.1s: the p75 would miss one in four, each a second late", d)
	}
	for i := range 64 {
		a.observe(time.Second + time.Duration(i)*time.Second/63) // 1-2s
	}
	if d := a.firstPoll(2*time.Second, 15*time.Second, missSchedule); d != 2*time.Second {
		t.Fatalf("files after 1-2s = %v, want 2s: at the p75 one in four misses, a read each, to save a quarter second on average", d)
	}
	for i := range 64 {
		a.observe(time.Duration(1+i%5) * time.Second) // 1s..5s
	}
	if d := a.firstPoll(2*time.Second, 15*time.Second, missSchedule); d != 4*time.Second {
		t.Fatalf("files after 1-5s = %v, want the p75, 4s: waiting for 5s costs more than the misses", d)
	}
	for range 64 {
		a.observe(200 * time.Millisecond) // written with the challenge answer
	}
	if d := a.firstPoll(2*time.Second, 15*time.Second, missSchedule); d != 0 {
		t.Fatalf("files there at once: first poll after %v, want 0", d)
	}
	for range 64 {
		a.observe(time.Hour)
	}
	if d := a.firstPoll(2*time.Second, 15*time.Second, missSchedule); d != 15*time.Second {
		t.Fatalf("clamped = %v, want 15s", d)
	}
}

// TestCheapestEndsOnAFlatSchedule: a miss schedule that does not grow
// (--poll-interval 1ns: half of it is 0) still gives an answer for files
// that took an hour.
func TestCheapestEndsOnAFlatSchedule(t *testing.T) {
	t.Parallel()
	a := newAppearance(64)
	for range 7 {
		a.observe(time.Second)
	}
	a.observe(time.Hour)
	if d := a.firstPoll(2*time.Second, 15*time.Second, func(int) time.Duration { return time.Nanosecond }); d != time.Second {
		t.Fatalf("7 files after 1s and one after an hour, polls every 1ns = %v, want 1s", d)
	}
}
