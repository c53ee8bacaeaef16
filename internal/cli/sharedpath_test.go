package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/location"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// TestSharedPaths: 150 destinations push to 3 shared paths (zones, accounts,
// and both; two paths already hold an hour-old challenge file) and 50 to
// their own, through 3 worker processes on a real Redis under 20% injected
// 5xx/429, with every worker killed with SIGKILL mid-batch. Each destination
// is validated exactly once, none with another destination's token, with at
// most 1.2 challenges per destination, and no location stays leased; in
// every token mode of the simulator, with no validate call carrying a stale
// token either.
func TestSharedPaths(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute or two: three shared paths onboard one destination at a time, and asynq recovers killed workers' tasks")
	}
	t.Parallel()
	for _, m := range tokenModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			testSharedPaths(t, m)
		})
	}
}

func testSharedPaths(t *testing.T, m tokenMode) {
	const shared, own = 150, 50
	rdb, opt := testutil.Redis(t)
	dir := t.TempDir()
	sim, err := simulator.New(m.apply(simulator.Config{
		Write: writeFunc(&destination.File{}), WriteDelay: 100 * time.Millisecond, WriteJitter: 200 * time.Millisecond,
		APIToken: "crash-test-token", ErrorRate: 0.1, RateLimitRate: 0.1,
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	simsrv := httptest.NewServer(sim)
	t.Cleanup(simsrv.Close)

	paths := []string{filepath.Join(dir, "logs", "http"), filepath.Join(dir, "logs", "firewall"), filepath.Join(dir, "logs", "dns")}
	// An hour-old challenge file of an earlier run, with a token of the
	// right shape, on two of the shared paths.
	for _, p := range paths[:2] {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(p, cloudflare.ChallengeFileName)
		if err := os.WriteFile(f, []byte("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.b2xk"), 0o644); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-time.Hour)
		if err := os.Chtimes(f, old, old); err != nil {
			t.Fatal(err)
		}
	}
	csv := filepath.Join(dir, "batch.csv")
	f, err := os.Create(csv)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "zone_id,account_id,destination_conf")
	for i := range shared {
		id := fmt.Sprintf("%032x", i+1)
		switch i % 3 {
		case 0: // zones
			fmt.Fprintf(w, "%s,,file://%s\n", id, paths[0])
		case 1: // accounts
			fmt.Fprintf(w, ",%s,file://%s\n", id, paths[1])
		default: // zones and accounts
			if i%2 == 0 {
				fmt.Fprintf(w, "%s,,file://%s\n", id, paths[2])
			} else {
				fmt.Fprintf(w, ",%s,file://%s\n", id, paths[2])
			}
		}
	}
	for i := range own {
		fmt.Fprintf(w, "%032x,,file://%s\n", 1000+i, filepath.Join(dir, "own", fmt.Sprint(i)))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()

	store := ledger.NewStore(rdb, ledger.Config{})
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { client.Close() })
	p := newProducer(t, rdb, producer.ClientConfig{Format: tasks.FormatCSV})
	res, err := p.Enqueue(context.Background(), func() (io.ReadCloser, error) { return os.Open(csv) })
	if err != nil {
		t.Fatal(err)
	}
	const n = shared + own
	if res.Enqueued != n {
		t.Fatalf("enqueued %d, want %d", res.Enqueued, n)
	}
	args := []string{"worker", "--redis", fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB), "--cloudflare-api-url", simsrv.URL,
		"--metrics-addr", "", "--concurrency", "10", "--api-rate", "0", "--poll-first", "300ms", "--poll-interval", "200ms",
		"--shutdown-timeout", "2s", "--log-level", childLogLevel()}
	logPath := filepath.Join(dir, "workers.log")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("worker logs:\n%s", b)
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			dumpStuck(t, rdb, store, res.BatchID)
		}
	})
	start := func() []*child {
		var cs []*child
		for range 3 {
			cs = append(cs, startChild(t, logPath, args...))
		}
		return cs
	}
	// Kill the whole fleet while every shared path has a challenge in
	// flight, then start a new one: the holders' tasks come back through
	// asynq's recovery and keep their leases.
	fleet := start()
	waitDone(t, store, res.BatchID, 90, 3*time.Minute)
	for _, c := range fleet {
		c.cmd.Process.Signal(syscall.SIGKILL)
		<-c.done
	}
	fleet = start()
	final := waitDone(t, store, res.BatchID, n, 6*time.Minute)
	for _, c := range fleet {
		c.cmd.Process.Signal(syscall.SIGTERM)
		<-c.done
	}
	if final.Counts[events.Validated] != n || final.Counts[events.Failed] != 0 {
		t.Fatalf("final = %+v, want %d validated", final.Counts, n)
	}
	checkOneTerminalEvent(t, store, res.BatchID, n)
	st := sim.Stats()
	checkTokens(t, st)
	if perDest := float64(st.ChallengesIssued) / n; perDest > 1.2 {
		t.Errorf("%.2f challenges per destination, want at most 1.2", perDest)
	}
	leases, err := location.New(rdb, location.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		id := location.ID("file://@/" + filepath.Join(p, cloudflare.ChallengeFileName)[1:])
		if h, _ := leases.Holder(context.Background(), id); h != "" {
			t.Errorf("%s still leased by %s", p, h)
		}
		if line, _ := leases.Line(context.Background(), id); len(line) != 0 {
			t.Errorf("%s has %d waiting", p, len(line))
		}
	}
	t.Logf("shared paths: %d destinations (%d on 3 paths), %d challenges, %d validations failed; simulator %s",
		n, shared, st.ChallengesIssued, st.ValidationsFailed, sim.Stats())
}
