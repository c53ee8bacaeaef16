package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/keys"
)

// CreateBatch records a batch's creation; it is idempotent.
func (s *Store) CreateBatch(ctx context.Context, id, source string, now time.Time) error {
	pipe := s.rdb.TxPipeline()
	pipe.HSetNX(ctx, keys.Batch(id), "created_at", now.UTC().Format(time.RFC3339Nano))
	pipe.HSetNX(ctx, keys.Batch(id), "source", source)
	pipe.ZAddNX(ctx, keys.Batches, redis.Z{Score: float64(now.Unix()), Member: id})
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("create batch %s: %w", id, err)
	}
	return nil
}

// Dests calls fn for every destination of a batch, in no order.
func (s *Store) Dests(ctx context.Context, batch string, fn func(hash string, st DestState) error) error {
	prefix := keys.Dest(batch, "")
	iter := s.rdb.Scan(ctx, 0, escapeGlob(prefix)+"*", 1000).Iterator()
	var found []string
	flush := func() error {
		if len(found) == 0 {
			return nil
		}
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(found))
		for i, k := range found {
			cmds[i] = pipe.HGetAll(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("read destinations of batch %s: %w", batch, err)
		}
		for i, c := range cmds {
			if len(c.Val()) == 0 {
				continue
			}
			if err := fn(strings.TrimPrefix(found[i], prefix), parseDestState(c.Val())); err != nil {
				return err
			}
		}
		found = found[:0]
		return nil
	}
	for iter.Next(ctx) {
		found = append(found, iter.Val())
		if len(found) == 500 {
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
	m, err := s.rdb.HGetAll(ctx, keys.Batch(id)).Result()
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
	ids, err := s.rdb.ZRevRange(ctx, keys.Batches, 0, n-1).Result()
	if err != nil {
		return nil, fmt.Errorf("list batches: %w", err)
	}
	return ids, nil
}
