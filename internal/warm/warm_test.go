package warm

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestRunRunsEachFunctionOnceAndWaits(t *testing.T) {
	p := New(3)
	defer p.Close()
	var n atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			done := false
			p.Run(func() { n.Add(1); done = true })
			if !done {
				t.Error("Run returned before its function did")
			}
		})
	}
	wg.Wait()
	if n.Load() != 50 {
		t.Fatalf("ran %d functions, want 50", n.Load())
	}
}

func TestRunWhenAllAreBusyRunsInTheCaller(t *testing.T) {
	p := New(1)
	defer p.Close()
	hold, held := make(chan struct{}), make(chan struct{})
	go p.Run(func() { close(held); <-hold })
	<-held
	ran := false
	p.Run(func() { ran = true }) // the only goroutine is busy: it must not wait for it
	close(hold)
	if !ran {
		t.Fatal("Run returned before its function ran")
	}
}

func TestRunAfterClose(t *testing.T) {
	p := New(2)
	p.Run(func() {})
	p.Close()
	for range 3 {
		ran := false
		p.Run(func() { ran = true })
		if !ran {
			t.Fatal("Run after Close did not run its function")
		}
	}
}

// TestRunReusesGoroutines: a pool of one starts one goroutine, and every
// function runs there or, when that goroutine is not back at its receive
// yet (Run never waits), in the caller's: never on a goroutine of its own.
// (Which of the two a function gets depends on the scheduler; how often the
// pool's stacks are reused is measured in a profile, bench --profile.)
func TestRunReusesGoroutines(t *testing.T) {
	p := New(1)
	defer p.Close()
	self := goroutineID()
	ids := map[string]bool{}
	for range 5 {
		p.Run(func() { ids[goroutineID()] = true })
	}
	delete(ids, self)
	if len(ids) != 1 {
		t.Fatalf("5 functions ran on %d goroutines besides the caller's, want the pool's 1: %v", len(ids), ids)
	}
}

// goroutineID is "goroutine N ", the calling goroutine's.
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	// "goroutine N [running]:": the goroutine's id.
	for i, c := range buf {
		if c == '[' {
			return string(buf[:i])
		}
	}
	return string(buf)
}

func TestRunRaisesThePanicInTheCaller(t *testing.T) {
	p := New(1)
	defer p.Close()
	got := func() (r any) {
		defer func() { r = recover() }()
		p.Run(func() { panic("boom") })
		return nil
	}()
	if got != "boom" {
		t.Fatalf("recovered %v, want boom", got)
	}
	ran := false
	p.Run(func() { ran = true }) // the pool goes on after a panic
	if !ran {
		t.Fatal("the pool did not run a function after a panic")
	}
}

func TestOnPanicGetsTheStackOfThePanic(t *testing.T) {
	p := New(1)
	defer p.Close()
	var stack []byte
	p.OnPanic = func(v any, s []byte) {
		if v != "boom" {
			t.Errorf("OnPanic got %v, want boom", v)
		}
		stack = s
	}
	func() {
		defer func() { _ = recover() }()
		p.Run(panicsHere)
	}()
	if !strings.Contains(string(stack), "warm.panicsHere") {
		t.Fatalf("OnPanic's stack does not show where the panic was:\n%s", stack)
	}
}

func panicsHere() { panic("boom") }

func TestRunPassesGoexitOn(t *testing.T) {
	p := New(1)
	defer p.Close()
	after := make(chan bool, 1)
	go func() {
		defer func() { after <- false }()
		p.Run(runtime.Goexit)
		after <- true
	}()
	if <-after {
		t.Fatal("Run returned after its function called runtime.Goexit")
	}
	ran := false
	p.Run(func() { ran = true }) // the slot the exited goroutine held is free
	if !ran {
		t.Fatal("the pool did not run a function after a Goexit")
	}
}
