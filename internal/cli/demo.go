package cli

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/budget"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

const demoBucket = "logpush-demo"

// The demo S3 server's keys, which the worker signs with.
const (
	demoAccessKey = "demo-access-key"
	demoSecretKey = "demo-secret-key"
)

func runDemo(ctx context.Context, env Env, args []string) error {
	var f workerFlags
	var s simFlags
	var lf viewLog
	fs := newFlags("demo", env)
	lf.register(fs, env)
	f.registerTuning(fs, env)
	s.register(fs)
	n := fs.Int("n", 100, "number of generated destinations (60% S3, a third of them on 4 shared paths; 20% file://; 20% that need no challenge)")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up if the batch is not done by then")
	dir := fs.String("dir", "", "directory for the generated CSV and file:// destinations (default: a temporary one, removed after)")
	every := fs.Duration("progress-interval", 2*time.Second, "when standard output is not a terminal, print a progress line this often")
	accountZones := fs.Int("account-zones", 0, "instead of -n destinations, onboard an account of this many zones (e.g. 200) as plan and run --account do: the zones the simulator lists, the S3 template "+demoTemplate+", http_requests jobs created")
	// The demo's defaults show retries at work, keep the metrics port free
	// and give the local simulator a larger budget. It always runs on a
	// Redis of its own: REDIS_URL would send its fake destinations to the
	// real workers.
	setDefault(fs, "error-rate", "0.05")
	setDefault(fs, "rate-limit-rate", "0.02")
	setDefault(fs, "metrics-addr", "127.0.0.1:0")
	setDefault(fs, "api-rate", "1200/1m")
	// Files appear sooner than on Cloudflare, so that the shared paths (one
	// challenge at a time each) finish within the demo's half minute.
	setDefault(fs, "write-delay", "300ms")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *n <= 0 || *accountZones < 0 {
		return fmt.Errorf("-n must be positive, -account-zones not negative")
	}
	if *every <= 0 {
		return fmt.Errorf("-progress-interval %s: must be positive", *every)
	}
	log, closeLog, err := lf.logger(env)
	if err != nil {
		return err
	}
	defer closeLog()
	workDir := *dir
	if workDir == "" {
		if workDir, err = os.MkdirTemp("", "logpush-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(workDir)
	}

	// An S3 server in this process plays the customer's bucket.
	s3URL, stopS3, err := serve(gofakes3.New(demoS3Backend()).Server())
	if err != nil {
		return err
	}
	defer stopS3()
	s3opts := destination.S3Options{Endpoint: s3URL, UsePathStyle: true,
		Credentials: awscreds.NewStaticCredentialsProvider(demoAccessKey, demoSecretKey, "")}
	s3c, err := destination.NewS3(ctx, s3opts)
	if err != nil {
		return err
	}

	// The simulator plays Cloudflare.
	const token = "demo-api-token"
	simCfg, err := s.config(destination.WriterMux{"s3": s3c, "file": &destination.File{}}, token, log)
	if err != nil {
		return err
	}
	simCfg.Zones = demoZones(*accountZones)
	sim, err := simulator.New(simCfg)
	if err != nil {
		return err
	}
	defer sim.Close()
	simURL, stopSim, err := serve(http.StripPrefix("/client/v4", sim))
	if err != nil {
		return err
	}
	defer stopSim()
	f.apiURL = simURL + "/client/v4"

	rdb, closeRedis, err := embeddedRedis()
	if err != nil {
		return err
	}
	defer closeRedis()
	w, err := startWorker(ctx, rdb, f, cloudflare.Credentials{APIToken: token}, credentials.Storage{S3Endpoint: s3URL, S3UsePathStyle: true, S3AccessKeyID: demoAccessKey, S3SecretAccessKey: demoSecretKey}, log)
	if err != nil {
		return err
	}
	defer w.stop()

	csvPath := filepath.Join(workDir, "destinations.csv")
	bcfg, ok, err := f.budget.shared(ctx, rdb, f.apiRate, cloudflare.Credentials{APIToken: token}, log)
	if err != nil {
		return err
	}
	if *accountZones > 0 {
		// A few jobs made earlier (the dashboard, Terraform): plan leaves
		// them out.
		for i, z := range simCfg.Zones {
			if i%25 == 7 && z.Status == "active" {
				sim.AddJob("zone", z.ID, "http_requests", render(demoTemplate, map[string]string{"zone_name": z.Name, "dataset": "http_requests"}))
			}
		}
		if err := demoPlan(ctx, env, f.apiURL, token, rdb, bcfg, ok, csvPath); err != nil {
			return err
		}
	} else if err := writeDemoCSV(csvPath, workDir, *n); err != nil {
		return err
	}
	p, err := producer.NewClient(rdb, &producer.ClientConfig{Source: csvPath, Format: tasks.FormatCSV, Logger: log, CreateJob: *accountZones > 0,
		Budget: f.budget.producerBudget(f.apiRate, cloudflare.Credentials{APIToken: token}, nil, log)})
	if err != nil {
		return err
	}
	defer p.Close()
	store := p.Ledger()
	start := time.Now()
	res, err := p.Enqueue(ctx, func() (io.ReadCloser, error) { return os.Open(csvPath) })
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "demo: %d destinations in batch %s (%d need a challenge); simulator at %s, S3 at %s, metrics at http://%s/metrics\n",
		res.Rows, res.BatchID, res.NeedChallenge, simURL, s3URL, w.metricsAddr)

	v := newView(env.Stdout)
	if v.terminal {
		*every = 250 * time.Millisecond
	}
	rate, _ := budget.ParseRate(f.apiRate)
	st, err := watch(ctx, store, res.BatchID, watchConfig{view: v, every: *every, rate: rate, from: "0", start: start, timeout: *timeout,
		retries: func() retries { return apiRetries(w.registry) }})
	if err != nil {
		return err
	}
	stats := sim.Stats()
	fmt.Fprintf(env.Stdout, "\ndone in %s: %d validated, %d failed, %d not_required of %d\n",
		time.Since(start).Round(100*time.Millisecond), st.Counts[events.Validated], st.Counts[events.Failed], st.Counts[events.NotRequired], st.Total)
	if n := st.Counts[events.Flowing] + st.Counts[events.JobFailing] + st.Counts[events.NoDataYet]; n > 0 {
		// A watched job's destination ends in its health state, not validated.
		fmt.Fprintf(env.Stdout, "jobs watched: %d flowing, %d job_failing, %d no_data_yet\n",
			st.Counts[events.Flowing], st.Counts[events.JobFailing], st.Counts[events.NoDataYet])
	}
	fmt.Fprintf(env.Stdout, "simulator: %s\n", stats)
	if *accountZones > 0 {
		fmt.Fprintf(env.Stdout, "jobs created: %d (of %d zones; the rest were pending or had their job already)\n", stats.JobsCreated, *accountZones)
	}
	if st.Total > 0 {
		fmt.Fprintf(env.Stdout, "API calls per destination: %.2f (%d calls, %d destinations)\n",
			float64(stats.Calls())/float64(st.Total), stats.Calls(), st.Total)
	}
	fmt.Fprintln(env.Stdout, "the demo's events and states go with its embedded Redis; `logpush-onboard run FILE` keeps a journal and a report of a real batch")
	if n := st.Counts[events.Failed] + st.Counts[events.JobFailing]; n > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d destinations failed or have a failing job", n)}
	}
	return nil
}

// demoAccount is the account of demo --account-zones.
const demoAccount = "0de0000000000000000000000000acc1"

// demoTemplate is the destination template of demo --account-zones.
const demoTemplate = "s3://" + demoBucket + "/zones/{zone_name}/{dataset}/{DATE}?region=us-east-1"

// demoZones are n zones of demoAccount, one in 20 pending.
func demoZones(n int) []simulator.Zone {
	zones := make([]simulator.Zone, 0, n)
	for i := range n {
		st := "active"
		if i%20 == 19 {
			st = "pending"
		}
		sum := sha256.Sum256(fmt.Appendf(nil, "demo-zone-%d", i))
		zones = append(zones, simulator.Zone{ID: hex.EncodeToString(sum[:16]), Name: fmt.Sprintf("site%04d.example.com", i), Status: st, AccountID: demoAccount})
	}
	return zones
}

// demoPlan plans demoAccount's zones into path, as plan does, on the
// demo's budget.
func demoPlan(ctx context.Context, env Env, apiURL, token string, rdb redis.UniversalClient, bcfg budget.Config, on bool, path string) error {
	api, err := cloudflare.New(cloudflare.Config{BaseURL: apiURL, Credentials: cloudflare.Credentials{APIToken: token}})
	if err != nil {
		return err
	}
	p := &planner{api: api, retry: cloudflare.VerifyPolicy{Attempts: 8, MaxWait: time.Minute}}
	if on {
		if p.budget, err = budget.New(rdb, bcfg); err != nil {
			return err
		}
	}
	spec := planSpec{accounts: []string{demoAccount}, datasets: []planDataset{{name: "http_requests", scope: cloudflare.ScopeZone}},
		zoneTmpl: demoTemplate, status: "active", fields: "default", tsFormat: "rfc3339", concurrency: 8}
	res, err := p.makePlan(ctx, spec)
	if err != nil {
		return err
	}
	res.summary(env.Stdout, spec)
	return writePlanFile(path, res)
}

func demoS3Backend() *s3mem.Backend {
	b := s3mem.New()
	_ = b.CreateBucket(demoBucket)
	return b
}

// writeDemoCSV writes n destinations: 60% S3 (a third of them on 4 shared
// paths), 20% file://, 10% R2 and
// 10% HTTPS (which need no challenge).
func writeDemoCSV(path, dir string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	fmt.Fprintln(bw, "zone_id,account_id,destination_conf")
	for i := range n {
		sum := sha256.Sum256(fmt.Appendf(nil, "demo-%d", i))
		id := hex.EncodeToString(sum[:16])
		zone, account := id, ""
		if i%4 == 3 {
			zone, account = "", id
		}
		var conf string
		switch i % 10 {
		case 0, 1:
			// Zones sharing a path, the usual bulk layout: one challenge
			// file per path, so one challenge at a time on each.
			conf = fmt.Sprintf("s3://%s/shared/%d/{DATE}?region=us-east-1", demoBucket, i%4)
		case 2, 3, 4, 5:
			conf = fmt.Sprintf("s3://%s/logs/dest-%05d?region=us-east-1", demoBucket, i)
		case 6, 7:
			conf = "file://" + filepath.ToSlash(filepath.Join(dir, "destinations", fmt.Sprintf("dest-%05d", i)))
		case 8:
			conf = fmt.Sprintf("r2://logs-%05d/http?account-id=%s&access-key-id=demo&secret-access-key=demo-secret", i, id)
		default:
			conf = fmt.Sprintf("\"https://logs.example.com/ingest/%05d?header_Authorization=Bearer%%20demo\"", i)
		}
		fmt.Fprintf(bw, "%s,%s,%s\n", zone, account, conf)
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// serve serves h on a free loopback port and returns its base URL.
func serve(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "demo server:", err)
		}
	}()
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}
