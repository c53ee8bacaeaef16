package ledger

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/internal/keys"
)

// AppearanceTTL is how long the fleet's appearance delays are kept after
// the last one shared: files of a batch an hour earlier say little about
// today's.
const AppearanceTTL = time.Hour

// appearancesKept is how many shared delays keys.Appearances keeps.
const appearancesKept = 64

// ShareAppearance adds d, how long after its challenge a challenge file
// had appeared (by the read that found it, at the latest), to the fleet's
// (keys.Appearances), in one round trip.
func (s *Store) ShareAppearance(ctx context.Context, d time.Duration) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, keys.Appearances, d.Milliseconds())
		p.LTrim(ctx, keys.Appearances, 0, appearancesKept-1)
		p.PExpire(ctx, keys.Appearances, AppearanceTTL)
		return nil
	})
	return err
}

// Appearances returns the appearance delays the fleet shared, newest
// first; none when nobody did within AppearanceTTL.
func (s *Store) Appearances(ctx context.Context) ([]time.Duration, error) {
	vals, err := s.rdb.LRange(ctx, keys.Appearances, 0, appearancesKept-1).Result()
	if err != nil {
		return nil, err
	}
	out := make([]time.Duration, 0, len(vals))
	for _, v := range vals {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms >= 0 {
			out = append(out, time.Duration(ms)*time.Millisecond)
		}
	}
	return out, nil
}
