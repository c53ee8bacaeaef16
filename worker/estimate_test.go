package worker

import (
	"testing"
	"time"
)

func TestAppearanceFirstPoll(t *testing.T) {
	t.Parallel()
	a := newAppearance(64)
	if d := a.firstPoll(2*time.Second, 15*time.Second); d != 2*time.Second {
		t.Fatalf("before 8 observations = %v, want the default", d)
	}
	for i := range 100 {
		a.observe(time.Duration(1+i%4) * time.Second) // 1s..4s
	}
	if d := a.firstPoll(2*time.Second, 15*time.Second); d != 4*time.Second {
		t.Fatalf("p75 of 1..4s = %v, want 4s", d)
	}
	for range 64 {
		a.observe(200 * time.Millisecond) // written with the challenge answer
	}
	if d := a.firstPoll(2*time.Second, 15*time.Second); d != 0 {
		t.Fatalf("files there at once: first poll after %v, want 0", d)
	}
	for range 64 {
		a.observe(time.Hour)
	}
	if d := a.firstPoll(2*time.Second, 15*time.Second); d != 15*time.Second {
		t.Fatalf("clamped = %v, want 15s", d)
	}
}
