package ledger

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/keys"
)

// sinceScript returns when a destination's stage of one round and
// challenge generation first failed transiently, recording now when it had
// not (or when the record is of another stage, round or generation): the
// start of the deadline that bounds the stage's retries. The record is one
// field of the destination's hash, so it expires with it.
//
// KEYS[1] -> logpush:dest:{<batch>}:<hash>, the destination
// --
// ARGV[1] -> "<stage>|<round>|<gen>|"
// ARGV[2] -> now, Unix ms
//
// Output:
// Returns the recorded time, Unix ms; now when the destination is not
// registered (nothing is recorded then).
var sinceScript = newScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return tonumber(ARGV[2]) end
local v = redis.call('HGET', KEYS[1], 'failing_since')
if v and string.sub(v, 1, #ARGV[1]) == ARGV[1] then
  return tonumber(string.sub(v, #ARGV[1] + 1))
end
redis.call('HSET', KEYS[1], 'failing_since', ARGV[1] .. ARGV[2])
return tonumber(ARGV[2])
`)

// FailingSince returns when stage of the destination's round and gen first
// failed transiently, recording now if this is the first failure. A
// destination that is not registered yet gets now, unrecorded: register it
// first (Enter) for the time to hold across runs.
func (s *Store) FailingSince(ctx context.Context, k Key, stage string, round, gen int, now time.Time) (time.Time, error) {
	tag := stage + "|" + strconv.Itoa(round) + "|" + strconv.Itoa(gen) + "|"
	ms, err := sinceScript.Run(ctx, s.rdb, []string{keys.Dest(k.Batch, k.Hash)}, tag, now.UnixMilli()).Int64()
	if err != nil {
		return time.Time{}, fmt.Errorf("read when %s started failing: %w", stage, err)
	}
	return time.UnixMilli(ms), nil
}
