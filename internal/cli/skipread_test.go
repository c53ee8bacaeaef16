package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// TestSkipReadEndToEnd: where files come late, a warm worker's first
// challenges go without the read before them (worker skipRead), and their
// polls take only files dated late enough, in the simulator's least
// forgiving token modes (opaque tokens, only the latest validates), on S3.
//
// A first batch of 8 destinations, each on its own S3 path, warms the
// worker: 8 appearance delays seen. Files are written a fixed 4 s after
// their challenge, so every delay learnt is at least 3.5 s (S3 dates are
// whole seconds: the worker learns the middle of the date's second, from
// the request on, and the end of the read that found it, which was 4 s
// after the request at least). skipRead needs the least delay seen to be
// at least ClockSkew (1 s) + skipMargin (0.1 s) + 2 s (the second it takes
// off, and up to a second lost truncating to the second), 3.1 s, whatever
// the fraction of the second at the challenge. And its poll refuses no file
// of its own: written 4 s after the challenge, none is dated before the
// request plus ClockSkew (undated), so no fresh challenge is asked.
// A second batch of 8 other zones on the same paths, each holding a token
// of the first batch (another destination's, unexpired, opaque: only its
// date tells it from a new one), then skips every read before its
// challenge. Its storage reads that find a file are then exactly one per
// destination, the poll that takes its own file; with the read they would
// be two (the read finds the first batch's file). Every destination is
// validated exactly once, with one challenge, and no validate call carries
// another destination's token or a stale one.
func TestSkipReadEndToEnd(t *testing.T) {
	t.Parallel()
	const n = 8 // the appearance delays skipRead needs before it trusts them
	rdb, _ := testutil.Redis(t)
	opaqueLatest := tokenMode{name: "opaque+latest", opaque: true, latest: true}
	e := newE2E(t, rdb, e2eConfig{sim: opaqueLatest.flags(simFlags{writeDelay: 4 * time.Second})})
	// batch writes a batch of n destinations, zone ids from first, one
	// per path, and enqueues it.
	batch := func(name string, first int) string {
		var b strings.Builder
		b.WriteString("zone_id,account_id,destination_conf\n")
		for i := range n {
			fmt.Fprintf(&b, "%032x,,s3://%s/skipread/%d?region=us-east-1\n", first+i, demoBucket, i)
		}
		path := filepath.Join(e.dir, name)
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		res := e.enqueueFile(t, path)
		if res.Enqueued != n {
			t.Fatalf("%s: enqueued %+v, want %d", name, res, n)
		}
		return res.BatchID
	}
	done := func(id string) {
		t.Helper()
		st := e.wait(t, id, 2*time.Minute)
		if st.Counts[events.Validated] != n || st.Counts[events.Failed] != 0 {
			t.Fatalf("batch %s: %+v, want %d validated", id, st.Counts, n)
		}
		checkOneTerminalEvent(t, e.store, id, n)
	}
	found := func() float64 {
		return gatherSum(t, e.worker, "logpush_onboard_storage_requests_total",
			map[string]string{"type": "s3", "op": destination.OpRead, "outcome": destination.OutcomeOK})
	}

	done(batch("warm.csv", 1))
	// The first batch's holders left on each path a record dated by their
	// last read, and their files, which the second batch's polls would read
	// (not refuse as stale) while dated at or after the request, to the
	// second, less ClockSkew: such a file would be refused by its date, with
	// a fresh challenge. A record dated at or after that less another
	// second keeps skipRead off. Both are older than that ClockSkew + 2 s
	// after the first batch is done.
	time.Sleep(worker.ClockSkewDefault + 2*time.Second)
	before := found()
	done(batch("late.csv", 0x100))

	if reads := found() - before; reads != n {
		t.Errorf("the second batch's reads that found a file: %v, want %d (its polls' own files): with the read before each challenge, %d",
			reads, n, 2*n)
	}
	st := e.sim.Stats()
	checkTokens(t, st)
	if st.ChallengesIssued != 2*n || st.ValidationsOK != 2*n || st.ValidationsFailed != 0 {
		t.Errorf("simulator: %d challenges, %d validations ok, %d failed; want %d, %d, 0", st.ChallengesIssued, st.ValidationsOK, st.ValidationsFailed, 2*n, 2*n)
	}
	t.Logf("simulator: %s", st)
}
