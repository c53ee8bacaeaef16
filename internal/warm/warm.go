// Package warm runs functions on long-lived goroutines, whose stacks have
// already grown to what the functions need.
//
// A goroutine starts with a small stack and copies it to one twice the size
// each time a call goes deeper than it has room for. asynq starts a
// goroutine per task, and a task's call chain (the AWS SDK's middleware
// stack above all, its frames tens of KiB deep) grows every new stack
// several times: 4-9% of a worker's CPU went to runtime.newstack. A
// goroutine of a Pool keeps its stack from one function to the next (the
// garbage collector halves a stack at most once per cycle when little of it
// is used), so the growth is paid about once per collection instead of once
// per task. gRPC's server does the same for its streams (NumStreamWorkers).
package warm

import (
	"errors"
	"runtime"
	"runtime/debug"
)

// Pool runs functions on at most n goroutines (New), started as they are first
// needed and kept for the next function. The zero Pool is not usable: use
// New.
type Pool struct {
	// OnPanic, when set, is called with what a function panicked with and
	// the stack where it did, before Run raises the panic again in its
	// caller: a recover there sees the stack of Run, not of the panic.
	OnPanic func(value any, stack []byte)

	work  chan *job
	slots chan struct{}
	quit  chan struct{}
}

type job struct {
	f    func()
	done chan any // the function's panic value, or nil
}

// New returns a Pool of at most n goroutines (at least 1).
func New(n int) *Pool {
	return &Pool{work: make(chan *job), slots: make(chan struct{}, max(n, 1)), quit: make(chan struct{})}
}

// Run calls f on one of the pool's goroutines and returns when f has
// returned. A panic in f is raised again in the caller's goroutine, with
// its value, and a runtime.Goexit in f ends the caller's goroutine too.
// When all n goroutines are busy, Run calls f itself: it never waits for
// another function (asynq, for one, starts the next task when a task's
// deadline passes, without waiting for its handler to return).
func (p *Pool) Run(f func()) {
	j := &job{f: f, done: make(chan any, 1)}
	select {
	case p.work <- j: // an idle goroutine took it
	default:
		select {
		case p.slots <- struct{}{}:
			go p.loop(j)
		default:
			f()
			return
		}
	}
	switch r := <-j.done; r {
	case nil:
	case errGoexit:
		runtime.Goexit()
	default:
		panic(r)
	}
}

// Close ends the idle goroutines, and each busy one once its function has
// returned. Run still works after Close, each call on a goroutine of its
// own.
func (p *Pool) Close() { close(p.quit) }

// loop runs j and then every job it is handed, until Close. A
// runtime.Goexit in a job's function ends it early, and frees its slot.
func (p *Pool) loop(j *job) {
	defer func() { <-p.slots }()
	for {
		p.run(j)
		select {
		case j = <-p.work:
		case <-p.quit:
			return
		}
	}
}

// errGoexit is what a job's done gets when its function called
// runtime.Goexit.
var errGoexit = errors.New("warm: runtime.Goexit")

// run calls j.f and hands j.done what it panicked with, if anything. When
// f calls runtime.Goexit, run hands it errGoexit and the goroutine goes on
// exiting.
func (p *Pool) run(j *job) {
	returned := false
	defer func() {
		r := recover()
		switch {
		case r != nil && p.OnPanic != nil:
			p.OnPanic(r, debug.Stack())
		case r == nil && !returned:
			r = errGoexit
		}
		j.done <- r
	}()
	j.f()
	returned = true
}
