package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/keys"
	"github.com/logpush-onboard/logpush-onboard/internal/luascript"
)

// transitionScript moves a destination to a state and, only when the state
// actually changes, appends its event to the stream: so a handler that runs
// twice emits one event. A terminal state never changes again; reaching one
// starts the destination's expiry and drops its last error. A destination
// not yet registered (the worker ran before the producer recorded it) is
// registered on the way, as queued, at its event's line.
//
// KEYS[1] -> logpush:dest:{<batch>}:<hash>, the destination
// KEYS[2] -> logpush:batch:{<batch>}, the batch's counters
// KEYS[3] -> logpush:events, the event stream
// KEYS[4] -> logpush:errors:{<batch>}, the batch's last errors
// --
// ARGV[1] -> the new state
// ARGV[2] -> the attempt counter to add one to (att_<stage>), "" for none
// ARGV[3] -> the event's JSON, "" for none
// ARGV[4] -> the stream's approximate maximum length
// ARGV[5] -> how long a finished destination is kept, in seconds (0: forever)
// ARGV[6] -> the destination's hash, its field in KEYS[4]
// ARGV[7] -> the destination's line, recorded if it registers it (0: none)
// ARGV[8] -> n, the number of fields to set
// ARGV[9 .. 8+2n] -> the fields to set, name and value
//
// Output:
// Returns {1, previous state} when the state changed.
// Returns {0, state} when it did not: the destination was in that state
// already (the counter and fields are still written) or is finished
// (nothing is written).
var transitionScript = newScript(`
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then
  cur = register(KEYS[1], KEYS[2], ARGV[7])
end
if TERMINAL[cur] then
  return {0, cur}
end
if ARGV[2] ~= '' then
  redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
end
local n = tonumber(ARGV[8])
if n > 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 9, 8 + 2 * n))
end
local changed = 0
if cur ~= ARGV[1] then
  changed = 1
  redis.call('HSET', KEYS[1], 'state', ARGV[1])
  redis.call('HINCRBY', KEYS[2], 'state:' .. cur, -1)
  redis.call('HINCRBY', KEYS[2], 'state:' .. ARGV[1], 1)
  if ARGV[3] ~= '' then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[3])
  end
end
if TERMINAL[ARGV[1]] then
  if tonumber(ARGV[5]) > 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[5])
  end
  redis.call('HDEL', KEYS[4], ARGV[6])
end
return {changed, cur}
`)

// Transition moves a destination to state. stage, when not empty, is the
// stage whose attempt counter goes up by one (one of events.Stages());
// fields are extra hash fields to set, name and value. ev, when not nil, is
// appended to the stream if and only if the state changed, its
// DestinationID set to k.Hash. It reports
// whether the state changed; a terminal destination never changes.
func (s *Store) Transition(ctx context.Context, k Key, state events.State, ev *events.Event, stage events.Stage, fields ...any) (bool, error) {
	c, err := s.transitionCall(k, state, ev, stage, fields)
	if err != nil {
		return false, err
	}
	res, err := transitionScript.Run(ctx, s.rdb, c.keys, c.args...).Result()
	if err != nil {
		return false, fmt.Errorf("move destination to %s: %w", state, err)
	}
	return transitioned(state, res)
}

// transitioned reads transitionScript's reply: whether the state changed.
func transitioned(state events.State, reply any) (bool, error) {
	res, _ := reply.([]any)
	if len(res) == 0 {
		return false, fmt.Errorf("move destination to %s: unexpected reply %v", state, reply)
	}
	n, _ := res[0].(int64)
	return n == 1, nil
}

// TransitionThen is Transition followed, in the same script run, by then:
// a script of another package whose change must follow the transition at
// once, such as the release of the destination's challenge location. One
// round trip; then runs only once the transition is written, and not when
// it fails. It returns then's result.
func (s *Store) TransitionThen(ctx context.Context, k Key, state events.State, ev *events.Event, stage events.Stage, then luascript.Call, fields ...any) (changed bool, thenRes any, err error) {
	c, err := s.transitionCall(k, state, ev, stage, fields)
	if err != nil {
		return false, nil, err
	}
	first, thenRes, err := luascript.Then(ctx, s.rdb, luascript.Call{Script: transitionScript, Keys: c.keys, Args: c.args}, then)
	if err != nil {
		return false, nil, fmt.Errorf("move destination to %s: %w", state, err)
	}
	changed, err = transitioned(state, first)
	return changed, thenRes, err
}

// jobFields are the hash fields that keep the Logpush job an event names
// (DestState.JobID, NewJobID), so that the job of a destination outlives
// the stream's trimming: export-terraform --batch reads them.
func jobFields(ev *events.Event) []any {
	var f []any
	if ev.JobID > 0 {
		f = append(f, "job_id", ev.JobID)
	}
	if ev.NewJobID > 0 {
		f = append(f, "new_job_id", ev.NewJobID)
	}
	return f
}

// transitionCall is transitionScript's keys and arguments for Transition.
func (s *Store) transitionCall(k Key, state events.State, ev *events.Event, stage events.Stage, fields []any) (scriptCall, error) {
	if len(fields)%2 != 0 {
		return scriptCall{}, fmt.Errorf("move destination to %s: odd number of fields", state)
	}
	payload, line := "", 0
	if ev != nil {
		// The event names its destination by the key the ledger keeps it
		// under: whoever built the event (worker, producer) need not.
		e := *ev
		e.DestinationID = k.Hash
		b, err := json.Marshal(e)
		if err != nil {
			return scriptCall{}, fmt.Errorf("encode event: %w", err)
		}
		payload, line = string(b), e.Line
		fields = append(slices.Clip(fields), jobFields(ev)...)
	}
	args := make([]any, 0, 8+len(fields))
	args = append(args, string(state), AttemptField(stage), payload, s.cfg.StreamMaxLen, int64(s.cfg.StateTTL/time.Second), k.Hash, line, len(fields)/2)
	args = append(args, fields...)
	return scriptCall{keys: []string{keys.Dest(k.Batch, k.Hash), keys.Batch(k.Batch), keys.Events, keys.Errors(k.Batch)}, args: args}, nil
}

// enterScript moves a destination into a stage in one round trip: unless
// it is finished or a newer round or challenge generation took it over, it
// counts an attempt, sets the fields and moves the state, and it reads the
// destination back either way. A destination not yet registered is
// registered on the way, as queued, at the task's line.
//
// KEYS[1] -> logpush:dest:{<batch>}:<hash>, the destination
// KEYS[2] -> logpush:batch:{<batch>}, the batch's counters
// --
// ARGV[1] -> the new state
// ARGV[2] -> the attempt counter to add one to (att_<stage>), "" for none
// ARGV[3] -> the task's round
// ARGV[4] -> the task's challenge generation
// ARGV[5] -> the task's line, recorded if it registers the destination
// ARGV[6] -> n, the number of fields to set
// ARGV[7 .. 6+2n] -> the fields to set, name and value
// ARGV[7+2n ..] -> the fields to read back (stateFields)
//
// Output:
// Returns {1, values} when it entered, values those of the fields read
// back, after the change.
// Returns {0, values} when the destination is finished or superseded (a
// newer round or generation, or a token stage of this generation once its
// token was accepted: events.JobStates), and nothing changed.
var enterScript = newScript(`
local h = redis.call('HMGET', KEYS[1], 'state', 'round', 'gen')
local cur = h[1]
local round = tonumber(h[2] or '0') or 0
local gen = tonumber(h[3] or '0') or 0
local myround, mygen = tonumber(ARGV[3]), tonumber(ARGV[4])
local n = tonumber(ARGV[6])
local same = round == myround and gen == mygen
if TERMINAL[cur] or round > myround or (round == myround and gen > mygen) or (same and JOBSTAGE[cur] and TOKENSTAGE[ARGV[1]]) then
  return {0, redis.call('HMGET', KEYS[1], unpack(ARGV, 7 + 2 * n))}
end
if not cur then
  cur = register(KEYS[1], KEYS[2], ARGV[5])
end
if ARGV[2] ~= '' then
  redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
end
if n > 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 7, 6 + 2 * n))
end
if cur ~= ARGV[1] then
  redis.call('HSET', KEYS[1], 'state', ARGV[1])
  redis.call('HINCRBY', KEYS[2], 'state:' .. cur, -1)
  redis.call('HINCRBY', KEYS[2], 'state:' .. ARGV[1], 1)
end
return {1, redis.call('HMGET', KEYS[1], unpack(ARGV, 7 + 2 * n))}
`)

// stateFields are the hash fields Enter reads back: those of DestState its
// callers, the worker's stages, read (State, Line, Gen, Round, RequestedAt
// and the attempt counters of events.Stages()); the rest their task carries.
var stateFields = append([]string{"state", "line", "gen", "round", "requested_at"}, attemptFields()...)

// stateArgs are stateFields as script arguments, boxed once rather than on
// every Enter.
var stateArgs = func() []any {
	a := make([]any, len(stateFields))
	for i, f := range stateFields {
		a[i] = f
	}
	return a
}()

// ErrSuperseded is returned by Enter for a destination that finished, that
// a newer round or challenge generation took over, or whose token was
// accepted when a token stage of its generation enters (events.JobStates).
var ErrSuperseded = errors.New("destination superseded")

// Enter moves a destination into state for a task of round and gen in one
// round trip, counting an attempt of stage (when not empty) and setting
// fields (name, value pairs). It returns the state after the change
// (State, Line, Gen, Round, RequestedAt and Attempts: Get reads the rest),
// or the current state and ErrSuperseded when the destination
// finished, moved to a newer round or generation, or, for a token stage's
// state, has its token accepted already, in which case nothing changes. A destination not yet registered (its task ran before the
// producer registered it) is registered on the way at line, the task's
// row (0: none), so that its state and events have it from the start.
func (s *Store) Enter(ctx context.Context, k Key, line int, state events.State, round, gen int, stage events.Stage, fields ...any) (DestState, error) {
	if len(fields)%2 != 0 {
		return DestState{}, fmt.Errorf("enter %s: odd number of fields", state)
	}
	args := make([]any, 0, 6+len(fields)+len(stateArgs))
	args = append(args, string(state), AttemptField(stage), round, gen, line, len(fields)/2)
	args = append(args, fields...)
	args = append(args, stateArgs...)
	res, err := enterScript.Run(ctx, s.rdb, []string{keys.Dest(k.Batch, k.Hash), keys.Batch(k.Batch)}, args...).Slice()
	if err != nil {
		return DestState{}, fmt.Errorf("move destination to %s: %w", state, err)
	}
	vals, _ := res[1].([]any)
	m := make(map[string]string, len(stateFields))
	for i, f := range stateFields {
		if i < len(vals) {
			if v, ok := vals[i].(string); ok {
				m[f] = v
			}
		}
	}
	st := parseDestState(m)
	if n, _ := res[0].(int64); n != 1 {
		return st, ErrSuperseded
	}
	return st, nil
}

// LastError is the latest error of a destination still in flight: one
// that is retried, or a challenge file that cannot be read yet. Message is
// redacted.
type LastError struct {
	Line       int          `json:"line,omitempty"`
	State      events.State `json:"state"`
	HTTPStatus int          `json:"http_status,omitempty"`
	Message    string       `json:"message"`
	// Worker names the worker process whose call failed, as host:pid.
	Worker string    `json:"worker,omitempty"`
	Time   time.Time `json:"time"`
}

// noteErrorScript records the last error of a destination still in
// flight; a finished destination keeps none.
//
// KEYS[1] -> logpush:dest:{<batch>}:<hash>, the destination
// KEYS[2] -> logpush:errors:{<batch>}, the batch's last errors
// --
// ARGV[1] -> the destination's hash, its field in KEYS[2]
// ARGV[2] -> the error's JSON (LastError)
//
// Output:
// Returns 1 when it recorded the error, 0 when the destination is finished.
var noteErrorScript = newScript(`
if TERMINAL[redis.call('HGET', KEYS[1], 'state')] then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
`)

// NoteError keeps e as the last error of an in-flight destination, for
// status, report and the web UI; its outcome drops it.
func (s *Store) NoteError(ctx context.Context, k Key, e LastError) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode last error: %w", err)
	}
	if err := noteErrorScript.Run(ctx, s.rdb, []string{keys.Dest(k.Batch, k.Hash), keys.Errors(k.Batch)}, k.Hash, string(b)).Err(); err != nil {
		return fmt.Errorf("note last error: %w", err)
	}
	return nil
}

// LastErrors returns the last errors of a batch's in-flight destinations,
// by destination hash.
func (s *Store) LastErrors(ctx context.Context, batch string) (map[string]LastError, error) {
	m, err := s.rdb.HGetAll(ctx, keys.Errors(batch)).Result()
	if err != nil {
		return nil, fmt.Errorf("read last errors of batch %s: %w", batch, err)
	}
	out := make(map[string]LastError, len(m))
	for h, v := range m {
		var e LastError
		if json.Unmarshal([]byte(v), &e) == nil {
			out[h] = e
		}
	}
	return out, nil
}

// reopenScript moves a failed destination back to queued for a new
// round: it forgets what the failed round recorded (its error, challenge
// file and generation) and its expiry, and keeps its registration and
// attempt counters.
//
// KEYS[1] -> logpush:dest:{<batch>}:<hash>, the destination
// KEYS[2] -> logpush:batch:{<batch>}, the batch's counters
// --
// ARGV[1] -> the new round
//
// Output:
// Returns 1 when it reopened the destination, 0 when the destination is
// not failed (or unknown), and nothing changed.
var reopenScript = newScript(`
if redis.call('HGET', KEYS[1], 'state') ~= FAILED then
  return 0
end
redis.call('HSET', KEYS[1], 'state', QUEUED, 'round', ARGV[1], 'gen', 0)
redis.call('HDEL', KEYS[1], 'error_status', 'error_codes', 'error_message', 'error_worker', 'filename', 'requested_at')
redis.call('PERSIST', KEYS[1])
redis.call('HINCRBY', KEYS[2], 'state:' .. FAILED, -1)
redis.call('HINCRBY', KEYS[2], 'state:' .. QUEUED, 1)
return 1
`)

// Reopen moves a failed destination back to queued for round, so that its
// new tasks run and it emits a new terminal event. It reports false when
// the destination is not failed.
func (s *Store) Reopen(ctx context.Context, k Key, round int) (bool, error) {
	n, err := reopenScript.Run(ctx, s.rdb, []string{keys.Dest(k.Batch, k.Hash), keys.Batch(k.Batch)}, round).Int()
	if err != nil {
		return false, fmt.Errorf("reopen destination: %w", err)
	}
	return n == 1, nil
}

// DestState is what the store knows of one destination. Enter, on the
// workers' path, reads State, Line, Gen, Round, RequestedAt and Attempts
// only.
type DestState struct {
	State       events.State
	Line        int
	Scope       string
	ScopeID     string
	Destination string // redacted
	Type        string
	Gen         int
	Round       int
	Filename    string
	RequestedAt time.Time
	EnqueuedAt  time.Time
	Attempts    events.Attempts
	// Error is why the destination failed, if it did.
	Error *events.Error
	// Credential is the credential its producer enqueued it under ("" for
	// the default one, and for destinations registered before the ledger
	// recorded it). Get reads it; Enter, on the workers' path, does not.
	Credential string
	// JobID is the Logpush job of the destination, as the last event that
	// named one said (enqueue --create-job, migrate); 0 for none. NewJobID
	// is the second job of a copied job (migrate --copy). Get and Dests
	// read them; Enter does not.
	JobID, NewJobID int
}

// ErrorFields are the hash fields that record why a destination failed,
// for Transition.
func ErrorFields(e *events.Error) []any {
	if e == nil {
		return nil
	}
	codes := make([]string, len(e.Codes))
	for i, c := range e.Codes {
		codes[i] = strconv.Itoa(c)
	}
	return []any{"error_status", e.HTTPStatus, "error_codes", strings.Join(codes, ","), "error_message", e.Message, "error_worker", e.Worker}
}

// ErrNotFound is returned for a destination the batch does not have.
var ErrNotFound = errors.New("destination not found in batch")

// Get reads one destination's state.
func (s *Store) Get(ctx context.Context, k Key) (DestState, error) {
	m, err := s.rdb.HGetAll(ctx, keys.Dest(k.Batch, k.Hash)).Result()
	if err != nil {
		return DestState{}, fmt.Errorf("read destination state: %w", err)
	}
	if len(m) == 0 {
		return DestState{}, ErrNotFound
	}
	return parseDestState(m), nil
}

func parseDestState(m map[string]string) DestState {
	n := func(f string) int { v, _ := strconv.Atoi(m[f]); return v }
	t := func(f string) time.Time {
		v, err := strconv.ParseInt(m[f], 10, 64)
		if err != nil || v == 0 {
			return time.Time{}
		}
		return time.Unix(0, v)
	}
	var e *events.Error
	if msg, ok := m["error_message"]; ok {
		e = &events.Error{HTTPStatus: n("error_status"), Message: msg, Worker: m["error_worker"]}
		for _, c := range strings.Split(m["error_codes"], ",") {
			if v, err := strconv.Atoi(c); err == nil {
				e.Codes = append(e.Codes, v)
			}
		}
	}
	return DestState{
		State:       events.State(m["state"]),
		Line:        n("line"),
		Scope:       m["scope"],
		ScopeID:     m["scope_id"],
		Destination: m["destination"],
		Error:       e,
		Type:        m["type"],
		Gen:         n("gen"),
		Round:       n("round"),
		Filename:    m["filename"],
		RequestedAt: t("requested_at"),
		EnqueuedAt:  t("enqueued_at"),
		Attempts:    attempts(n),
		Credential:  m["credential"],
		JobID:       n("job_id"),
		NewJobID:    n("new_job_id"),
	}
}

// AttemptField is the destination hash field counting stage's runs; "" for
// no stage.
func AttemptField(stage events.Stage) string {
	if stage == "" {
		return ""
	}
	return "att_" + string(stage)
}

// attemptFields are the hash fields of every stage's counter, in flow order.
func attemptFields() []string {
	fs := make([]string, 0, len(events.Stages()))
	for _, st := range events.Stages() {
		fs = append(fs, AttemptField(st))
	}
	return fs
}

// attempts reads every stage's counter with field, which reads a hash field
// as a number.
func attempts(field func(name string) int) events.Attempts {
	var a events.Attempts
	for _, st := range events.Stages() {
		if c := counter(&a, st); c != nil {
			*c = field(AttemptField(st))
		}
	}
	return a
}

// counter is stage's counter in a, nil for an unknown stage.
func counter(a *events.Attempts, stage events.Stage) *int {
	switch stage {
	case events.StageChallenge:
		return &a.Challenge
	case events.StagePoll:
		return &a.Poll
	case events.StageValidate:
		return &a.Validate
	case events.StageJob:
		return &a.Job
	}
	return nil
}

// luaNames starts every script of the store (newScript): the state names
// the scripts compare with, written from package events once, so that no
// script spells a state of its own (a Go-quoted ASCII string reads the same
// in Lua), and register, which counts a new destination as queued.
//
//	local QUEUED, FAILED = "queued", "failed"
//	local TERMINAL = {["validated"] = true, ...} -- events.TerminalStates()
//	local TOKENSTAGE = {...} -- events.TokenStates()
//	local JOBSTAGE = {...} -- events.JobStates()
//	local function register(dest, batch, line) ... end
var luaNames = luaNamesSource()

func luaNamesSource() string {
	var b strings.Builder
	fmt.Fprintf(&b, "local QUEUED, FAILED = %q, %q\n", events.Queued, events.Failed)
	b.WriteString("local TERMINAL = {")
	for i, st := range events.TerminalStates() {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "[%q] = true", st)
	}
	b.WriteString("}\n")
	for _, set := range []struct {
		name   string
		states []events.State
	}{{"TOKENSTAGE", events.TokenStates()}, {"JOBSTAGE", events.JobStates()}} {
		fmt.Fprintf(&b, "local %s = {", set.name)
		for i, st := range set.states {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "[%q] = true", st)
		}
		b.WriteString("}\n")
	}
	// register counts a destination the batch did not have yet, as queued,
	// at line when one is given: a worker's, before the producer's
	// registration (registerScript) adds the rest of its metadata.
	b.WriteString(`local function register(dest, batch, line)
  redis.call('HSET', dest, 'state', QUEUED)
  if tonumber(line) > 0 then
    redis.call('HSET', dest, 'line', line)
  end
  redis.call('HINCRBY', batch, 'total', 1)
  redis.call('HINCRBY', batch, 'state:' .. QUEUED, 1)
  return QUEUED
end
`)
	return b.String()
}

// newScript is a script of the store: luaNames, then body.
func newScript(body string) *luascript.Script { return luascript.New(luaNames + body) }
