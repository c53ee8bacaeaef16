package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/events"
)

// transitionScript moves a destination to ARGV[1] and, only when the state
// actually changes, appends the event ARGV[2] to the stream: so a handler
// that runs twice emits one event. A terminal state never changes again,
// and drops the destination's (ARGV[6]) last error from KEYS[4].
// A destination not yet registered (the worker ran before the producer
// recorded it) is registered on the way.
var transitionScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then
  cur = 'queued'
  redis.call('HSET', KEYS[1], 'state', cur)
  redis.call('HINCRBY', KEYS[2], 'total', 1)
  redis.call('HINCRBY', KEYS[2], 'state:' .. cur, 1)
end
if cur == 'validated' or cur == 'failed' or cur == 'not_required' then
  return {0, cur}
end
if ARGV[5] ~= '' then
  redis.call('HINCRBY', KEYS[1], ARGV[5], 1)
end
for i = 7, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
local changed = 0
if cur ~= ARGV[1] then
  changed = 1
  redis.call('HSET', KEYS[1], 'state', ARGV[1])
  redis.call('HINCRBY', KEYS[2], 'state:' .. cur, -1)
  redis.call('HINCRBY', KEYS[2], 'state:' .. ARGV[1], 1)
  if ARGV[2] ~= '' then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[2])
  end
end
if ARGV[1] == 'validated' or ARGV[1] == 'failed' or ARGV[1] == 'not_required' then
  if tonumber(ARGV[4]) > 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[4])
  end
  redis.call('HDEL', KEYS[4], ARGV[6])
end
return {changed, cur}
`)

// Transition moves a destination to state. attempt, when not empty, is the
// stage whose attempt counter goes up by one ("challenge", "poll",
// "validate"); fields are extra hash fields to set. ev, when not nil, is
// appended to the stream if and only if the state changed. It reports
// whether the state changed; a terminal destination never changes.
func (s *Store) Transition(ctx context.Context, k Key, state events.State, ev *events.Event, stage events.Stage, fields ...any) (bool, error) {
	c, err := s.transitionCall(k, state, ev, stage, fields)
	if err != nil {
		return false, err
	}
	res, err := transitionScript.Run(ctx, s.rdb, c.keys, c.args...).Slice()
	if err != nil {
		return false, fmt.Errorf("move destination to %s: %w", state, err)
	}
	changed, _ := res[0].(int64)
	return changed == 1, nil
}

// transitionCall is transitionScript's keys and arguments for Transition.
func (s *Store) transitionCall(k Key, state events.State, ev *events.Event, stage events.Stage, fields []any) (scriptCall, error) {
	payload := ""
	if ev != nil {
		b, err := json.Marshal(ev)
		if err != nil {
			return scriptCall{}, fmt.Errorf("encode event: %w", err)
		}
		payload = string(b)
	}
	attempt := attemptField(stage)
	return scriptCall{keys: []string{s.destKey(k), s.batchKey(k.Batch), s.cfg.Stream, s.errorsKey(k.Batch)},
		args: append([]any{string(state), payload, s.cfg.StreamMaxLen, int64(s.cfg.StateTTL / time.Second), attempt, k.Hash}, fields...)}, nil
}

// enterScript moves a destination into a stage in one round trip: unless
// it is finished or a newer round or challenge generation (ARGV[2], ARGV[3])
// took it over, it counts an attempt (field ARGV[4]), sets the fields from
// ARGV[5] on and moves the state to ARGV[1]. It returns {entered, fields}
// with fields as in stateFields, read after the change.
var enterScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'state')
local round = tonumber(redis.call('HGET', KEYS[1], 'round') or '0') or 0
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0') or 0
local myround, mygen = tonumber(ARGV[2]), tonumber(ARGV[3])
if cur == 'validated' or cur == 'failed' or cur == 'not_required' or round > myround or (round == myround and gen > mygen) then
  return {0, redis.call('HMGET', KEYS[1], unpack(ARGV, 5 + 2 * tonumber(ARGV[5]) + 1))}
end
if not cur then
  cur = 'queued'
  redis.call('HSET', KEYS[1], 'state', cur)
  redis.call('HINCRBY', KEYS[2], 'total', 1)
  redis.call('HINCRBY', KEYS[2], 'state:' .. cur, 1)
end
if ARGV[4] ~= '' then
  redis.call('HINCRBY', KEYS[1], ARGV[4], 1)
end
local n = tonumber(ARGV[5])
for i = 6, 5 + 2 * n, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
if cur ~= ARGV[1] then
  redis.call('HSET', KEYS[1], 'state', ARGV[1])
  redis.call('HINCRBY', KEYS[2], 'state:' .. cur, -1)
  redis.call('HINCRBY', KEYS[2], 'state:' .. ARGV[1], 1)
end
return {1, redis.call('HMGET', KEYS[1], unpack(ARGV, 5 + 2 * n + 1))}
`)

// stateFields are the hash fields Enter returns, in DestState.
var stateFields = []string{"state", "line", "scope", "scope_id", "destination", "type", "gen", "round",
	"filename", "requested_at", "enqueued_at", "att_challenge", "att_poll", "att_validate", "att_job"}

// ErrSuperseded is returned by Enter for a destination that finished, or
// that a newer round or challenge generation took over.
var ErrSuperseded = errors.New("destination superseded")

// Enter moves a destination into state for a task of round and gen in one
// round trip, counting an attempt of stage attempt (when not empty) and
// setting fields (name, value pairs). It returns the state after the
// change, or the current state and ErrSuperseded when the destination
// finished or moved to a newer round or generation, in which case nothing
// changes. A destination not yet registered is registered on the way.
func (s *Store) Enter(ctx context.Context, k Key, state events.State, round, gen int, stage events.Stage, fields ...any) (DestState, error) {
	if len(fields)%2 != 0 {
		return DestState{}, fmt.Errorf("enter %s: odd number of fields", state)
	}
	attempt := attemptField(stage)
	args := make([]any, 0, 5+len(fields)+len(stateFields))
	args = append(args, string(state), round, gen, attempt, len(fields)/2)
	args = append(args, fields...)
	for _, f := range stateFields {
		args = append(args, f)
	}
	res, err := enterScript.Run(ctx, s.rdb, []string{s.destKey(k), s.batchKey(k.Batch)}, args...).Slice()
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
	Time       time.Time    `json:"time"`
}

// noteErrorScript records ARGV[2] as the last error of the destination
// KEYS[1] under field ARGV[1] of KEYS[2], unless it finished meanwhile.
var noteErrorScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'state')
if cur == 'validated' or cur == 'failed' or cur == 'not_required' then
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
	if err := noteErrorScript.Run(ctx, s.rdb, []string{s.destKey(k), s.errorsKey(k.Batch)}, k.Hash, string(b)).Err(); err != nil {
		return fmt.Errorf("note last error: %w", err)
	}
	return nil
}

// LastErrors returns the last errors of a batch's in-flight destinations,
// by destination hash.
func (s *Store) LastErrors(ctx context.Context, batch string) (map[string]LastError, error) {
	m, err := s.rdb.HGetAll(ctx, s.errorsKey(batch)).Result()
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

// reopenScript moves a failed destination back to queued for a new round.
var reopenScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'state') ~= 'failed' then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'queued', 'round', ARGV[1], 'gen', 0)
redis.call('HDEL', KEYS[1], 'error_status', 'error_codes', 'error_message', 'filename', 'requested_at')
redis.call('PERSIST', KEYS[1])
redis.call('HINCRBY', KEYS[2], 'state:failed', -1)
redis.call('HINCRBY', KEYS[2], 'state:queued', 1)
return 1
`)

// Reopen moves a failed destination back to queued for round, so that its
// new tasks run and it emits a new terminal event. It reports false when
// the destination is not failed.
func (s *Store) Reopen(ctx context.Context, k Key, round int) (bool, error) {
	n, err := reopenScript.Run(ctx, s.rdb, []string{s.destKey(k), s.batchKey(k.Batch)}, round).Int()
	if err != nil {
		return false, fmt.Errorf("reopen destination: %w", err)
	}
	return n == 1, nil
}

// DestState is what the store knows of one destination.
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
	return []any{"error_status", e.HTTPStatus, "error_codes", strings.Join(codes, ","), "error_message", e.Message}
}

// ErrNotFound is returned for a destination the batch does not have.
var ErrNotFound = errors.New("destination not found in batch")

// Get reads one destination's state.
func (s *Store) Get(ctx context.Context, k Key) (DestState, error) {
	m, err := s.rdb.HGetAll(ctx, s.destKey(k)).Result()
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
		e = &events.Error{HTTPStatus: n("error_status"), Message: msg}
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
		Attempts:    events.Attempts{Challenge: n("att_challenge"), Poll: n("att_poll"), Validate: n("att_validate"), Job: n("att_job")},
	}
}

// attemptField is the destination hash field counting stage's runs; "" for
// no stage.
func attemptField(stage events.Stage) string {
	if stage == "" {
		return ""
	}
	return "att_" + string(stage)
}
