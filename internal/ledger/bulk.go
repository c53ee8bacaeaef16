package ledger

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/keys"
	"github.com/logpush-onboard/logpush-onboard/internal/luascript"
)

// Batched variants of Get and Transition, and the registration, for the producer's
// chunked enqueue: each call is one pipelined round trip for many
// destinations (plus one SCRIPT LOAD when the server lacks a script).

// registerScript records a destination of a batch once, as queued. A
// destination whose task ran before the producer registered it (the
// producer enqueues first, so that no registered destination lacks a task)
// was registered on the way, with its line but without the rest of its
// metadata (enqueued_at marks the producer's registration): it gets them
// now, keeps its state, and counts as new.
//
// KEYS[1] -> logpush:dest:{<batch>}:<hash>, the destination
// KEYS[2] -> logpush:batch:{<batch>}, the batch's counters
// --
// ARGV[1 ..] -> the destination's metadata (Meta), name and value
//
// Output:
// Returns {1, "", ""} when the destination is new to the batch.
// Returns {0, state, line} when the batch already has it, and nothing changed.
var registerScript = newScript(`
if redis.call('HSETNX', KEYS[1], 'state', QUEUED) == 0 then
  if redis.call('HEXISTS', KEYS[1], 'enqueued_at') == 1 then
    return {0, redis.call('HGET', KEYS[1], 'state'), redis.call('HGET', KEYS[1], 'line')}
  end
  for i = 1, #ARGV, 2 do
    redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
  end
  return {1, '', ''}
end
if #ARGV > 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV))
end
redis.call('HINCRBY', KEYS[2], 'total', 1)
redis.call('HINCRBY', KEYS[2], 'state:' .. QUEUED, 1)
return {1, '', ''}
`)

// Meta describes a destination when it is registered. It holds no secret.
type Meta struct {
	Line    int
	Scope   string
	ScopeID string
	// Destination is the redacted destination_conf, for reports.
	Destination string
	Type        string
	EnqueuedAt  time.Time
	// Credential names the row's credential ("" for the default one), for
	// submit-token; a name, never a token.
	Credential string
}

// Existing says what a batch already knows of a destination.
type Existing struct {
	State events.State
	Line  int
}

// StatesOf reads the state and line of each of ks in one round trip. A
// destination the batch does not have gets nil, and so does one that no
// producer registered yet (no enqueued_at: a worker recorded it on the way), so
// that registering it decides, as registerScript says. errs is nil when
// every read succeeded, else it holds each key's error (nil for those that
// succeeded).
func (s *Store) StatesOf(ctx context.Context, ks []Key) (states []*Existing, errs []error) {
	states = make([]*Existing, len(ks))
	if len(ks) == 0 {
		return states, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ks))
	for i, k := range ks {
		cmds[i] = pipe.HMGet(ctx, keys.Dest(k.Batch, k.Hash), "state", "line", "enqueued_at")
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	for i, c := range cmds {
		vals, err := c.Result()
		if err != nil {
			if errs == nil {
				errs = make([]error, len(ks))
			}
			errs[i] = fmt.Errorf("read destination state: %w", err)
			continue
		}
		if _, ok := vals[2].(string); !ok {
			continue // not registered by a producer
		}
		states[i] = existing(vals[0], vals[1])
	}
	return states, errs
}

// Known reports, for each of ks, whether the ledger holds it: registered
// by a producer, or by a worker on the way (which StatesOf leaves out). One
// round trip.
func (s *Store) Known(ctx context.Context, ks []Key) ([]bool, error) {
	known := make([]bool, len(ks))
	if len(ks) == 0 {
		return known, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(ks))
	for i, k := range ks {
		cmds[i] = pipe.Exists(ctx, keys.Dest(k.Batch, k.Hash))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read destination states: %w", err)
	}
	for i, c := range cmds {
		known[i] = c.Val() > 0
	}
	return known, nil
}

// Registration is one destination for RegisterMany.
type Registration struct {
	Key  Key
	Meta Meta
}

// RegisterMany records destinations of batches in one round trip, in
// order. known[i] is nil when regs[i] was new to its batch. errs is nil
// when every registration succeeded, else it holds each one's error.
func (s *Store) RegisterMany(ctx context.Context, regs []Registration) (known []*Existing, errs []error) {
	known = make([]*Existing, len(regs))
	calls := make([]scriptCall, len(regs))
	for i, r := range regs {
		m := r.Meta
		calls[i] = scriptCall{keys: []string{keys.Dest(r.Key.Batch, r.Key.Hash), keys.Batch(r.Key.Batch)},
			args: []any{"line", m.Line, "scope", m.Scope, "scope_id", m.ScopeID, "destination", m.Destination,
				"type", m.Type, "enqueued_at", m.EnqueuedAt.UnixNano()}}
		if m.Credential != "" {
			calls[i].args = append(calls[i].args, "credential", m.Credential)
		}
	}
	for i, c := range s.evalMany(ctx, registerScript, calls) {
		res, err := c.Slice()
		if err == nil && len(res) < 3 {
			err = fmt.Errorf("unexpected reply %v", res)
		}
		if err != nil {
			if errs == nil {
				errs = make([]error, len(regs))
			}
			errs[i] = fmt.Errorf("register destination: %w", err)
			continue
		}
		if n, _ := res[0].(int64); n == 1 {
			continue
		}
		known[i] = existing(res[1], res[2])
	}
	return known, errs
}

// existing is what a script or HMGET answered for a known destination.
func existing(state, line any) *Existing {
	ex := &Existing{}
	st, _ := state.(string)
	ex.State = events.State(st)
	if l, ok := line.(string); ok {
		ex.Line, _ = strconv.Atoi(l)
	}
	return ex
}

// Move is one destination's Transition, for TransitionMany.
type Move struct {
	Key   Key
	State events.State
	// Event, when not nil, is appended to the stream if the state changed,
	// its DestinationID set to Key.Hash (Transition).
	Event *events.Event
}

// TransitionMany is Transition (without attempt or fields) for many
// destinations in one round trip, in order. changed[i] reports whether
// moves[i] changed the state. errs is nil when every move succeeded, else
// it holds each one's error.
func (s *Store) TransitionMany(ctx context.Context, moves []Move) (changed []bool, errs []error) {
	changed = make([]bool, len(moves))
	fail := func(i int, err error) {
		if errs == nil {
			errs = make([]error, len(moves))
		}
		errs[i] = fmt.Errorf("move destination to %s: %w", moves[i].State, err)
	}
	calls := make([]scriptCall, 0, len(moves))
	idx := make([]int, 0, len(moves))
	for i, m := range moves {
		c, err := s.transitionCall(m.Key, m.State, m.Event, "", nil)
		if err != nil {
			fail(i, err)
			continue
		}
		calls = append(calls, c)
		idx = append(idx, i)
	}
	for j, c := range s.evalMany(ctx, transitionScript, calls) {
		res, err := c.Slice()
		if err == nil && len(res) < 1 {
			err = fmt.Errorf("unexpected reply %v", res)
		}
		if err != nil {
			fail(idx[j], err)
			continue
		}
		n, _ := res[0].(int64)
		changed[idx[j]] = n == 1
	}
	return changed, errs
}

// scriptCall is one run of a script: its keys and arguments.
type scriptCall struct {
	keys []string
	args []any
}

// evalMany runs script once per call, in order, in one pipeline of
// EVALSHA. When the server does not have the script (NOSCRIPT: a fresh
// server or a flushed script cache), it loads it and runs the calls that
// failed so again: a NOSCRIPT call did not run, so running it again is safe.
// Errors are per command.
func (s *Store) evalMany(ctx context.Context, script *luascript.Script, calls []scriptCall) []*redis.Cmd {
	cmds := make([]*redis.Cmd, len(calls))
	if len(calls) == 0 {
		return cmds
	}
	run := func(which []int) {
		pipe := s.rdb.Pipeline()
		for _, i := range which {
			cmds[i] = script.EvalSha(ctx, pipe, calls[i].keys, calls[i].args...)
		}
		_, _ = pipe.Exec(ctx) // errors are per command
	}
	all := make([]int, len(calls))
	for i := range all {
		all[i] = i
	}
	run(all)
	var again []int
	for i, c := range cmds {
		if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return cmds
	}
	if err := script.Load(ctx, s.rdb).Err(); err != nil {
		return cmds // the NOSCRIPT errors stand
	}
	run(again)
	return cmds
}
