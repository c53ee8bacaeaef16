package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/logpush-onboard/logpush-onboard/events"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Stream is the Redis Stream that carries one JSON entry per outcome.
const Stream = "logpush:events"

// Defaults of Config.
const (
	DefaultStreamMaxLen int64 = 200000
	DefaultStateTTL           = 7 * 24 * time.Hour
)

// Config sets where and for how long the store keeps state.
type Config struct {
	// Prefix of every key but the stream. Default "logpush:".
	Prefix string
	// Stream is the event stream's key. Default Stream (logpush:events).
	Stream string
	// StreamMaxLen caps the event stream (approximate trimming). Default
	// DefaultStreamMaxLen.
	StreamMaxLen int64
	// StateTTL is how long a finished destination's state is kept. Default
	// DefaultStateTTL.
	StateTTL time.Duration
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = "logpush:"
	}
	if c.Stream == "" {
		c.Stream = Stream
	}
	if c.StreamMaxLen <= 0 {
		c.StreamMaxLen = DefaultStreamMaxLen
	}
	if c.StateTTL <= 0 {
		c.StateTTL = DefaultStateTTL
	}
	return c
}

// Store reads and writes destination state, batch counters and events.
type Store struct {
	rdb redis.UniversalClient
	cfg Config
}

// NewStore returns a Store on rdb.
func NewStore(rdb redis.UniversalClient, cfg Config) *Store {
	return &Store{rdb: rdb, cfg: cfg.WithDefaults()}
}

// Key names one destination of one batch.
type Key struct {
	Batch string
	Hash  string
}

// The batch id is a hash tag, so a batch's keys share a Redis Cluster slot.
func (s *Store) destKey(k Key) string      { return s.cfg.Prefix + "dest:{" + k.Batch + "}:" + k.Hash }
func (s *Store) batchKey(id string) string { return s.cfg.Prefix + "batch:{" + id + "}" }
func (s *Store) batchesKey() string        { return s.cfg.Prefix + "batches" }

// errorsKey is the hash of a batch's in-flight destinations' last errors,
// field the destination's hash (see NoteError).
func (s *Store) errorsKey(batch string) string { return s.cfg.Prefix + "errors:{" + batch + "}" }

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

// registerScript records a destination of a batch once. It returns
// {1, "", ""} when it was new, or {0, state, line} when the batch already has
// it. A destination whose task ran before the producer registered it (the
// producer enqueues first, so that no registered destination lacks a task)
// was registered on the way without a line: it gets its line and metadata
// now and counts as new.
var registerScript = redis.NewScript(`
if redis.call('HSETNX', KEYS[1], 'state', 'queued') == 0 then
  if redis.call('HEXISTS', KEYS[1], 'line') == 1 then
    return {0, redis.call('HGET', KEYS[1], 'state'), redis.call('HGET', KEYS[1], 'line')}
  end
  for i = 1, #ARGV, 2 do
    redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
  end
  return {1, '', ''}
end
for i = 1, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('HINCRBY', KEYS[2], 'total', 1)
redis.call('HINCRBY', KEYS[2], 'state:queued', 1)
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
}

// Existing says what a batch already knows of a destination.
type Existing struct {
	State events.State
	Line  int
}

// CreateBatch records a batch's creation; it is idempotent.
func (s *Store) CreateBatch(ctx context.Context, id, source string, now time.Time) error {
	pipe := s.rdb.TxPipeline()
	pipe.HSetNX(ctx, s.batchKey(id), "created_at", now.UTC().Format(time.RFC3339Nano))
	pipe.HSetNX(ctx, s.batchKey(id), "source", source)
	pipe.ZAddNX(ctx, s.batchesKey(), redis.Z{Score: float64(now.Unix()), Member: id})
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("create batch %s: %w", id, err)
	}
	return nil
}

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

// Emit appends a fleet event (queue paused or resumed) to the stream.
func (s *Store) Emit(ctx context.Context, ev events.Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	err = s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: s.cfg.Stream, MaxLen: s.cfg.StreamMaxLen, Approx: true, Values: []any{"event", string(b)}}).Err()
	if err != nil {
		return fmt.Errorf("emit %s event: %w", ev.Event, err)
	}
	return nil
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

// Dests calls fn for every destination of a batch, in no order.
func (s *Store) Dests(ctx context.Context, batch string, fn func(hash string, st DestState) error) error {
	prefix := s.destKey(Key{Batch: batch})
	iter := s.rdb.Scan(ctx, 0, escapeGlob(prefix)+"*", 1000).Iterator()
	var keys []string
	flush := func() error {
		if len(keys) == 0 {
			return nil
		}
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(keys))
		for i, k := range keys {
			cmds[i] = pipe.HGetAll(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("read destinations of batch %s: %w", batch, err)
		}
		for i, c := range cmds {
			if len(c.Val()) == 0 {
				continue
			}
			if err := fn(strings.TrimPrefix(keys[i], prefix), parseDestState(c.Val())); err != nil {
				return err
			}
		}
		keys = keys[:0]
		return nil
	}
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 500 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("list destinations of batch %s: %w", batch, err)
	}
	return flush()
}

// escapeGlob escapes the characters SCAN MATCH treats as patterns.
func escapeGlob(s string) string {
	r := strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`, "]", `\]`)
	return r.Replace(s)
}

// ErrNoBatch is returned for an unknown batch id.
var ErrNoBatch = errors.New("no such batch")

// Batch reads one batch's counters.
func (s *Store) Batch(ctx context.Context, id string) (events.BatchStatus, error) {
	m, err := s.rdb.HGetAll(ctx, s.batchKey(id)).Result()
	if err != nil {
		return events.BatchStatus{}, fmt.Errorf("read batch %s: %w", id, err)
	}
	if len(m) == 0 {
		return events.BatchStatus{}, fmt.Errorf("batch %q: %w", id, ErrNoBatch)
	}
	b := events.BatchStatus{ID: id, Source: m["source"], Counts: map[events.State]int64{}}
	b.CreatedAt, _ = time.Parse(time.RFC3339Nano, m["created_at"])
	b.Total, _ = strconv.ParseInt(m["total"], 10, 64)
	for _, st := range events.States() {
		b.Counts[st], _ = strconv.ParseInt(m["state:"+string(st)], 10, 64)
	}
	return b, nil
}

// Batches lists batch ids, newest first, at most n.
func (s *Store) Batches(ctx context.Context, n int64) ([]string, error) {
	ids, err := s.rdb.ZRevRange(ctx, s.batchesKey(), 0, n-1).Result()
	if err != nil {
		return nil, fmt.Errorf("list batches: %w", err)
	}
	return ids, nil
}

// Entry is one event read back from the stream with its stream id.
type Entry struct {
	ID    string
	Event events.Event
	Raw   string
}

// Last returns the newest n events, oldest first.
func (s *Store) Last(ctx context.Context, n int64) ([]Entry, error) {
	msgs, err := s.rdb.XRevRangeN(ctx, s.cfg.Stream, "+", "-", n).Result()
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	out := make([]Entry, 0, len(msgs))
	for i := len(msgs) - 1; i >= 0; i-- {
		e, err := entry(msgs[i])
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, nil
}

func entry(m redis.XMessage) (Entry, error) {
	raw, _ := m.Values["event"].(string)
	e := Entry{ID: m.ID, Raw: raw}
	if err := json.Unmarshal([]byte(raw), &e.Event); err != nil {
		return e, fmt.Errorf("decode event %s: %w", m.ID, err)
	}
	return e, nil
}

// Read returns up to count events after stream id after ("0" for the
// beginning, "$" for only new ones), waiting up to block for the first one
// when block > 0.
func (s *Store) Read(ctx context.Context, after string, count int64, block time.Duration) ([]Entry, error) {
	if block <= 0 {
		block = -1 // go-redis: no BLOCK argument
	}
	res, err := s.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{s.cfg.Stream, after}, Count: count, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	var out []Entry
	for _, st := range res {
		for _, m := range st.Messages {
			e, err := entry(m)
			if err != nil {
				return out, err
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// Batched variants of Get and Transition, and the registration, for the producer's
// chunked enqueue: each call is one pipelined round trip for many
// destinations (plus one SCRIPT LOAD when the server lacks a script).

// StatesOf reads the state and line of each of keys in one round trip. A
// destination the batch does not have gets nil, and so does one that no
// producer registered yet (no line: a worker recorded it on the way), so
// that registering it decides, as registerScript says. errs is nil when
// every read succeeded, else it holds each key's error (nil for those that
// succeeded).
func (s *Store) StatesOf(ctx context.Context, keys []Key) (states []*Existing, errs []error) {
	states = make([]*Existing, len(keys))
	if len(keys) == 0 {
		return states, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.HMGet(ctx, s.destKey(k), "state", "line")
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	for i, c := range cmds {
		vals, err := c.Result()
		if err != nil {
			if errs == nil {
				errs = make([]error, len(keys))
			}
			errs[i] = fmt.Errorf("read destination state: %w", err)
			continue
		}
		if _, ok := vals[1].(string); !ok {
			continue // not registered
		}
		states[i] = existing(vals[0], vals[1])
	}
	return states, errs
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
		calls[i] = scriptCall{keys: []string{s.destKey(r.Key), s.batchKey(r.Key.Batch)},
			args: []any{"line", m.Line, "scope", m.Scope, "scope_id", m.ScopeID, "destination", m.Destination,
				"type", m.Type, "enqueued_at", m.EnqueuedAt.UnixNano()}}
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
	// Event, when not nil, is appended to the stream if the state changed.
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
func (s *Store) evalMany(ctx context.Context, script *redis.Script, calls []scriptCall) []*redis.Cmd {
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

// attemptField is the destination hash field counting stage's runs; "" for
// no stage.
func attemptField(stage events.Stage) string {
	if stage == "" {
		return ""
	}
	return "att_" + string(stage)
}
