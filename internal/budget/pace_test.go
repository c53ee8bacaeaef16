package budget

import (
	"context"
	"testing"
	"time"
)

func TestPacer(t *testing.T) {
	t.Parallel()
	tb := setup(t)
	ctx := context.Background()
	if _, err := NewPacer(tb.client(t), Config{Rate: Rate{Limit: 0, Window: time.Second}, Key: "k"}); err == nil {
		t.Error("NewPacer accepted a zero limit")
	}
	if _, err := NewPacer(tb.client(t), Config{}); err == nil {
		t.Error("NewPacer accepted no key")
	}
	p, err := NewPacer(tb.client(t), Config{Rate: Rate{Limit: 1200, Window: 5 * time.Minute}, Prefix: tb.prefix, Key: "cred"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Interval() != 500*time.Millisecond {
		t.Fatalf("Interval = %s, want 500ms (two calls of 1200/5m)", p.Interval())
	}
	// Idle: the first slots start Lead in the past, so they are due at once.
	t0 := time.Now()
	off, err := p.Reserve(ctx, 10)
	if err != nil || off > -Lead+time.Second || off < -Lead {
		t.Fatalf("first Reserve = %s, %v; want about -%s", off, err, Lead)
	}
	// The next reservation continues where the first ended: its offset is
	// that end less the time between the two, which the test measures
	// around them (Redis counts milliseconds).
	off2, err := p.Reserve(ctx, 1)
	between := time.Since(t0)
	if want := off + 10*p.Interval(); err != nil || off2 > want || off2 < want-between-time.Millisecond {
		t.Fatalf("second Reserve = %s, %v; want %s less at most the %s between them", off2, err, want, between)
	}
	if off, err := p.Reserve(ctx, 0); off != 0 || err != nil {
		t.Fatalf("Reserve(0) = %s, %v", off, err)
	}
}
