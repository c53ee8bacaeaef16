package cli

import (
	"cmp"
	"context"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/johannesboyne/gofakes3"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// e2e is a whole pipeline on one Redis: an S3 server, the simulator, a
// worker started the way the worker command starts it, and the producer.
type e2e struct {
	rdb    redis.UniversalClient
	sim    *simulator.Simulator
	store  *ledger.Store
	worker *runningWorker
	// bad are the workers of e2eConfig.badWorkers.
	bad    []*runningWorker
	simURL string
	// s3URL and s3creds reach the in-process S3 server.
	s3URL   string
	s3creds aws.CredentialsProvider
	gcs     *destination.GCS
	azure   *destination.Azure
	dir     string
	log     *slog.Logger
}

// e2eConfig varies a pipeline.
type e2eConfig struct {
	sim   simFlags
	creds cloudflare.Credentials // default: an API token
	logw  io.Writer              // worker log; default discard (stderr at warn with -v)
	// workers is the number of worker instances sharing the Redis; default 1.
	workers int
	// apiRate is the shared API budget; default effectively none.
	apiRate string
	// writers adds simulator writers by scheme (a Sumo HTTP source, say).
	writers destination.WriterMux
	// webUI serves /ui.
	webUI bool
	// azureKey gives the worker azurite's account key: a read identity of
	// its own beside the write-only SAS of the destination_conf.
	azureKey bool
	// named are the workers' named credentials (--credentials); the
	// simulator then accepts any token but revoked ones.
	named *credentials.Set
	// revoked tokens get 403 code 10000; tokenLimits are per-token rate
	// limits over rateWindow.
	revoked     []string
	tokenLimits map[string]int
	rateWindow  time.Duration
	// authPause is --auth-pause-after; default 10.
	authPause int
	// healthDeadline and healthInterval are --health-deadline (default 0:
	// no watching) and --health-interval (default 1s).
	healthDeadline, healthInterval time.Duration
	// badWorkers are started after the others with a wrong API token
	// (one the simulator does not accept); bad are those workers.
	badWorkers int
	// concurrency is each worker's --concurrency; default 20.
	concurrency int
	// holdGood, when set, holds every Cloudflare API call of the workers
	// with the right token (not those of badWorkers) until it is closed:
	// started and known to the fleet as holding a working copy of the
	// credential, they take no row further than its first call.
	holdGood <-chan struct{}
}

func newE2E(t *testing.T, rdb redis.UniversalClient, c e2eConfig) *e2e {
	t.Helper()
	ctx := context.Background()
	s3srv := httptest.NewServer(gofakes3.New(demoS3Backend()).Server())
	t.Cleanup(s3srv.Close)
	s3opts := destination.S3Options{Endpoint: s3srv.URL, UsePathStyle: true,
		Credentials: awscreds.NewStaticCredentialsProvider("AKIAE2E", "e2e-secret", "")}
	s3c, err := destination.NewS3(ctx, s3opts)
	if err != nil {
		t.Fatal(err)
	}
	gcsrv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", PublicHost: "127.0.0.1", Writer: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gcsrv.Stop)
	gcsrv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: demoBucket})
	gcsOpts := destination.GCSOptions{Endpoint: gcsrv.URL()}
	// Azure goes to azurite's development account (started by the tests that
	// use it); with its key, the simulator writes as Cloudflare would.
	azOpts := destination.AzureOptions{Endpoint: azuriteEndpoint}
	if c.azureKey {
		azOpts.AccountName, azOpts.AccountKey = azuriteAccount, azuriteKey
	}
	azw, err := destination.NewAzure(ctx, destination.AzureOptions{Endpoint: azuriteEndpoint, AccountName: azuriteAccount, AccountKey: azuriteKey})
	if err != nil {
		t.Fatal(err)
	}
	gcs, err := destination.NewGCS(ctx, gcsOpts)
	if err != nil {
		t.Fatal(err)
	}
	var log *slog.Logger
	switch {
	case c.logw != nil:
		log = slog.New(slog.NewJSONHandler(c.logw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	case testing.Verbose():
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	default:
		log = slog.New(slog.DiscardHandler)
	}
	if c.creds == (cloudflare.Credentials{}) {
		c.creds = cloudflare.Credentials{APIToken: "e2e-api-token"}
	}
	wm := destination.WriterMux{"s3": s3c, "gs": gcs, "azure": azw, "file": &destination.File{}}
	maps.Copy(wm, c.writers)
	cfg, err := c.sim.config(wm, c.creds.APIToken, log)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Email, cfg.APIKey = c.creds.Email, c.creds.APIKey
	if c.named != nil {
		cfg.APIToken, cfg.Email, cfg.APIKey = "", "", ""
		cfg.RevokedTokens, cfg.TokenRateLimits = c.revoked, c.tokenLimits
		cfg.RateWindow = cmp.Or(c.rateWindow, cfg.RateWindow)
		cfg.Penalty = cmp.Or(cfg.Penalty, 10*time.Second)
	}
	s, err := simulator.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	simsrv := httptest.NewServer(s)
	t.Cleanup(simsrv.Close)

	f := workerFlags{apiURL: simsrv.URL, concurrency: cmp.Or(c.concurrency, 20), apiRate: cmp.Or(c.apiRate, "100000/1m"), pollDeadline: 2 * time.Minute, pollFirst: 4 * time.Second,
		shutdown: 5 * time.Second, maxRetry: 12, authPause: cmp.Or(c.authPause, 10), metricsAddr: "127.0.0.1:0", webUI: c.webUI, webAddr: "127.0.0.1:0",
		named: c.named, healthDeadline: c.healthDeadline, healthInterval: cmp.Or(c.healthInterval, time.Second)}
	storage := credentials.Storage{S3Endpoint: s3srv.URL, S3UsePathStyle: true, S3AccessKeyID: "AKIAE2E", S3SecretAccessKey: "e2e-secret",
		GCSEndpoint: gcsOpts.Endpoint, AzureEndpoint: azOpts.Endpoint, AzureAccountName: azOpts.AccountName, AzureAccountKey: azOpts.AccountKey}
	store := ledger.NewStore(rdb, ledger.Config{})
	f.ui = store
	good := f
	if c.holdGood != nil {
		held := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			select {
			case <-c.holdGood:
				s.ServeHTTP(rw, r)
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(held.Close)
		good.apiURL = held.URL
	}
	var w *runningWorker
	for range max(c.workers, 1) {
		w, err = startWorker(ctx, rdb, good, c.creds, storage, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.stop)
	}
	var bad []*runningWorker
	for range c.badWorkers {
		bw, err := startWorker(ctx, rdb, f, cloudflare.Credentials{APIToken: "wrong-token"}, storage, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(bw.stop)
		bad = append(bad, bw)
	}
	return &e2e{bad: bad, rdb: rdb, sim: s, store: store, worker: w, simURL: simsrv.URL,
		s3URL: s3srv.URL, s3creds: s3opts.Credentials, gcs: gcs, azure: azw, dir: t.TempDir(), log: log}
}

func (e *e2e) enqueue(t *testing.T, n int) producer.Result {
	t.Helper()
	path := filepath.Join(e.dir, "destinations.csv")
	if err := writeDemoCSV(path, e.dir, n); err != nil {
		t.Fatal(err)
	}
	return e.enqueueFile(t, path)
}

// newProducer is producer.NewClient for a test, closed at its end.
func newProducer(t *testing.T, rdb redis.UniversalClient, cfg producer.ClientConfig) *producer.Client {
	t.Helper()
	p, err := producer.NewClient(rdb, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func (e *e2e) enqueueFile(t *testing.T, path string) producer.Result {
	t.Helper()
	p := newProducer(t, e.rdb, producer.ClientConfig{Source: path, Format: tasks.FormatCSV, Logger: e.log})
	res, err := p.Enqueue(context.Background(), func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// hangAfter is the least time a test waits for an outcome before it
// fails as hung. It is a guard against a hang, never what a test asserts:
// CI's machine runs many packages at once, and a batch that finishes is
// correct however long it took (time is measured in benchmarks).
const hangAfter = 10 * time.Minute

// hangBound is the bound of a wait a test gives as d: at least hangAfter.
func hangBound(d time.Duration) time.Duration { return max(d, hangAfter) }

// wait waits until batch is done; timeout (at least hangAfter) fails a
// hang.
func (e *e2e) wait(t *testing.T, batch string, timeout time.Duration) events.BatchStatus {
	t.Helper()
	timeout = hangBound(timeout)
	deadline := time.Now().Add(timeout)
	for {
		st, err := e.store.Batch(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		if st.Done() >= st.Total {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch %s not done after %s: %+v", batch, timeout, st.Counts)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestEndToEnd onboards 200 destinations on a real Redis with 20% of the
// API calls failing (5xx and 429): every destination is validated or
// not_required, each with exactly one event.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Redis(t)
	e := newE2E(t, rdb, e2eConfig{sim: simFlags{writeDelay: 200 * time.Millisecond, writeJitter: time.Second, errorRate: 0.1, rateLimitRate: 0.1}})
	res := e.enqueue(t, 200)
	if res.Rows != 200 || res.Enqueued+res.NotRequired != 200 {
		t.Fatalf("enqueue = %+v", res)
	}
	st := e.wait(t, res.BatchID, 3*time.Minute)
	if st.Counts[events.Validated] != int64(res.Enqueued) || st.Counts[events.NotRequired] != int64(res.NotRequired) || st.Counts[events.Failed] != 0 {
		t.Fatalf("outcomes = %+v, want %d validated and %d not_required", st.Counts, res.Enqueued, res.NotRequired)
	}
	seen := map[string]int{}
	entries, err := e.store.Read(context.Background(), "0", 10000, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		if en.Event.BatchID == res.BatchID {
			seen[en.Event.Scope+en.Event.ScopeID+en.Event.Destination]++
		}
	}
	if len(seen) != 200 {
		t.Fatalf("events for %d destinations, want 200", len(seen))
	}
	for d, n := range seen {
		if n != 1 {
			t.Errorf("%d events for %s, want 1", n, d)
		}
	}
	stats := e.sim.Stats()
	t.Logf("simulator: %+v", stats)

	// Re-running the same file adds nothing.
	again := e.enqueue(t, 200)
	if again.BatchID != res.BatchID || again.Enqueued != 0 || again.NotRequired != 0 || again.Known != 200 {
		t.Fatalf("re-run = %+v, want the same batch with 200 known rows", again)
	}
}

// TestEndToEndEmbedded runs a smaller batch on the embedded Redis, as the
// demo does.
func TestEndToEndEmbedded(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Mini(t)
	e := newE2E(t, rdb, e2eConfig{sim: simFlags{writeDelay: 100 * time.Millisecond, errorRate: 0.05}})
	res := e.enqueue(t, 40)
	st := e.wait(t, res.BatchID, 2*time.Minute)
	if st.Counts[events.Failed] != 0 || st.Done() != 40 {
		t.Fatalf("outcomes = %+v", st.Counts)
	}
}

// TestSharedBudgetNo429 runs three workers against a simulator that
// enforces Cloudflare's limit (scaled to 40 requests per 5s, with a
// penalty) as a sliding window: sharing the budget in Redis, the fleet gets
// no 429 and no window holds more than the limit.
func TestSharedBudgetNo429(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Redis(t)
	e := newE2E(t, rdb, e2eConfig{workers: 3, apiRate: "40/5s",
		sim: simFlags{writeDelay: 100 * time.Millisecond, rateLimit: "40/5s", penalty: 10 * time.Second}})
	res := e.enqueue(t, 60) // 48 need a challenge: 96 calls, at least 12s at 40/5s
	start := time.Now()
	st := e.wait(t, res.BatchID, 2*time.Minute)
	if st.Counts[events.Validated] != int64(res.Enqueued) {
		t.Fatalf("outcomes = %+v", st.Counts)
	}
	stats := e.sim.Stats()
	if stats.RateLimitedLimit != 0 || stats.MaxInWindow > 40 {
		t.Fatalf("429s from the limit: %d, max requests in a 5s window: %d (limit 40)", stats.RateLimitedLimit, stats.MaxInWindow)
	}
	t.Logf("3 workers, %d API calls in %s: 0 rate-limit 429s, at most %d requests in any 5s window (limit 40)",
		stats.Total("ownership")+stats.Total("ownership_validate"), time.Since(start).Round(time.Millisecond), stats.MaxInWindow)
}
