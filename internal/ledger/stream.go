package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/keys"
)

// Emit appends a fleet event (queue paused or resumed) to the stream.
func (s *Store) Emit(ctx context.Context, ev events.Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	err = s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys.Events, MaxLen: s.cfg.StreamMaxLen, Approx: true, Values: []any{"event", string(b)}}).Err()
	if err != nil {
		return fmt.Errorf("emit %s event: %w", ev.Event, err)
	}
	return nil
}

// Entry is one event read back from the stream with its stream id.
type Entry struct {
	ID    string
	Event events.Event
	Raw   string
}

// Last returns the newest n events, oldest first.
func (s *Store) Last(ctx context.Context, n int64) ([]Entry, error) {
	msgs, err := s.rdb.XRevRangeN(ctx, keys.Events, "+", "-", n).Result()
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
	res, err := s.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{keys.Events, after}, Count: count, Block: block}).Result()
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
