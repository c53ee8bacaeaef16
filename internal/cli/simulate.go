package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/logpush-onboard/logpush-onboard/internal/budget"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// simFlags are the simulator's settings, shared by simulate and demo.
type simFlags struct {
	writeDelay    time.Duration
	writeJitter   time.Duration
	errorRate     float64
	rateLimitRate float64
	rateLimit     string
	penalty       time.Duration
	hostile       float64
	hostileKinds  string
	// tokenAccount makes the token an account-owned token of this account.
	tokenAccount string
	// opaqueTokens and latestTokenOnly are the token modes where
	// Cloudflare's docs are silent (simulator.Config).
	opaqueTokens, latestTokenOnly bool
	// jobPushDelay, jobFailMatch and noTraffic shape the jobs' health.
	jobPushDelay time.Duration
	jobFailMatch string
	noTraffic    string
}

func (s *simFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&s.writeDelay, "write-delay", time.Second, "simulator: delay before the challenge file appears")
	fs.DurationVar(&s.writeJitter, "write-jitter", 2*time.Second, "simulator: random extra delay, up to this")
	fs.Float64Var(&s.errorRate, "error-rate", 0, "simulator: fraction of API calls answered 5xx")
	fs.Float64Var(&s.rateLimitRate, "rate-limit-rate", 0, "simulator: fraction of API calls answered 429")
	fs.StringVar(&s.rateLimit, "rate-limit", "", "simulator: enforce Cloudflare's limit per credential, LIMIT/WINDOW (e.g. 1200/5m); empty: off")
	fs.DurationVar(&s.penalty, "penalty", time.Minute, "simulator: once the limit is exceeded, every call gets 429 for this long")
	fs.Float64Var(&s.hostile, "hostile-rate", 0, "simulator: fraction of API calls answered with a hostile response (see -hostile-kinds)")
	fs.StringVar(&s.hostileKinds, "hostile-kinds", strings.Join(simulator.HostileKinds(), ","),
		"simulator: comma-separated hostile answers to draw from: "+strings.Join(simulator.HostileKinds(), ", "))
	fs.StringVar(&s.tokenAccount, "token-account", "",
		"simulator: make CLOUDFLARE_API_TOKEN an account-owned token of this account id (GET /user/tokens/verify answers 401, /accounts/{id}/tokens/verify verifies it)")
	fs.BoolVar(&s.opaqueTokens, "opaque-tokens", false,
		"simulator: issue challenge tokens with no claims to decode (Cloudflare does not document the claims' names)")
	fs.BoolVar(&s.latestTokenOnly, "latest-token-only", false,
		"simulator: validate only the latest token issued for a destination; an earlier one gets 400 code 1002 (Cloudflare's docs do not say)")
	fs.DurationVar(&s.jobPushDelay, "job-push-delay", simulator.DefaultJobPushDelay, "simulator: an enabled job first pushes this long after its creation (last_complete set)")
	fs.StringVar(&s.jobFailMatch, "job-fail-match", "", "simulator: jobs whose destination_conf contains this fail to push, with last_error and an error_message like Cloudflare's (empty: none)")
	fs.StringVar(&s.noTraffic, "no-traffic", "", "simulator: comma-separated zone or account ids without traffic: their jobs never push")
}

// jobPushErrorMessage is what the simulator answers as error_message of a
// job that cannot write to its destination, after Cloudflare's (the
// destination's own words after Cloudflare's prefix).
const jobPushErrorMessage = "error uploading to destination: AccessDenied: Access Denied, status code: 403"

// writeFunc plays Cloudflare's side of the challenge: it writes the token
// file into the destination the conf names.
func writeFunc(w destination.Writer) simulator.WriteFunc {
	return func(ctx context.Context, conf, filename string, body []byte) error {
		c, err := tasks.ParseConf(conf)
		if err != nil {
			return err
		}
		return w.Write(ctx, destination.For(c, nil, filename), body)
	}
}

func (s simFlags) config(w destination.Writer, token string, log *slog.Logger) (simulator.Config, error) {
	cfg := simulator.Config{
		Write:         writeFunc(w),
		WriteDelay:    s.writeDelay,
		WriteJitter:   s.writeJitter,
		APIToken:      token,
		ErrorRate:     s.errorRate,
		RateLimitRate: s.rateLimitRate,
		Penalty:       s.penalty,
		Hostile:       s.hostile,
		Logger:        log,

		TokenAccountID:  s.tokenAccount,
		OpaqueTokens:    s.opaqueTokens,
		LatestTokenOnly: s.latestTokenOnly,
		JobPushDelay:    s.jobPushDelay,
	}
	if cfg.JobPushDelay == 0 {
		cfg.JobPushDelay = -1 // at once; the simulator's zero is its default
	}
	if m := s.jobFailMatch; m != "" {
		cfg.JobPushError = func(conf string) string {
			if strings.Contains(conf, m) {
				return jobPushErrorMessage
			}
			return ""
		}
	}
	if s.noTraffic != "" {
		idle := strings.Split(s.noTraffic, ",")
		cfg.NoTraffic = func(_, id string) bool { return slices.Contains(idle, id) }
	}
	if s.hostile > 0 && s.hostileKinds != "" {
		cfg.HostileKinds = strings.Split(s.hostileKinds, ",")
	}
	if s.rateLimit != "" {
		r, err := budget.ParseRate(s.rateLimit)
		if err != nil {
			return cfg, fmt.Errorf("-rate-limit: %w", err)
		}
		cfg.RateLimit, cfg.RateWindow = r.Limit, r.Window
	}
	return cfg, nil
}

// simulateExitStatus is simulate's own: it serves until a signal, and has
// no rows.
const simulateExitStatus = `Exit status: 0 when stopped by SIGINT or SIGTERM; 1 when serving failed
after it started; 2 when it did not start: a usage error or configuration
(a bad flag value, a busy port).`

func runSimulate(ctx context.Context, env Env, args []string) error {
	var c common
	var s simFlags
	fs := newFlags("simulate", env)
	setUsage(fs, commandHead("simulate")+"\n\n"+simulateExitStatus)
	c.registerLog(fs, env)
	s.register(fs)
	addr := fs.String("addr", "127.0.0.1:8787", "listen address")
	s3Addr := fs.String("serve-s3", "", "also serve an in-memory S3 (every bucket exists) on this address, and write s3:// challenge files there; empty: off")
	gcsAddr := fs.String("serve-gcs", "", "also serve an in-memory GCS (fake-gcs-server; every bucket exists) on this address, and write gs:// challenge files there; readers reach it with STORAGE_EMULATOR_HOST=ADDR; empty: off")
	azureEndpoint := fs.String("azure-blob-endpoint", "", "write azure:// challenge files to this blob service, with the SAS of each destination_conf, whatever account the conf names (Azurite: http://127.0.0.1:10000/devstoreaccount1; readers reach it with AZURE_STORAGE_BLOB_ENDPOINT); empty: azure:// files are not written")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	log, err := c.logger(env)
	if err != nil {
		return err
	}
	var s3w destination.Writer
	if *s3Addr != "" {
		// The simulator's own S3 takes the files straight into its store.
		srv, stop, err := serveS3(*s3Addr)
		if err != nil {
			return notStarted(err)
		}
		defer stop()
		s3w = srv
	} else if s3w, err = destination.NewS3(ctx, destination.S3Options{}); err != nil {
		return notStarted(err)
	}
	writers := destination.WriterMux{"s3": s3w, "file": &destination.File{}}
	if *gcsAddr != "" {
		gw, stop, err := serveGCS(ctx, *gcsAddr)
		if err != nil {
			return notStarted(err)
		}
		defer stop()
		writers["gs"] = gw
	}
	if *azureEndpoint != "" {
		aw, err := destination.NewAzure(ctx, destination.AzureOptions{Endpoint: *azureEndpoint})
		if err != nil {
			return notStarted(fmt.Errorf("-azure-blob-endpoint: %w", err))
		}
		writers["azure"] = aw
	}
	token := env.Getenv("CLOUDFLARE_API_TOKEN")
	cfg, err := s.config(writers, token, log)
	if err != nil {
		return notStarted(err)
	}
	cfg.Email, cfg.APIKey = env.Getenv("CLOUDFLARE_EMAIL"), env.Getenv("CLOUDFLARE_API_KEY")
	sim, err := simulator.New(cfg)
	if err != nil {
		return notStarted(err)
	}
	defer sim.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return notStarted(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/client/v4/", http.StripPrefix("/client/v4", sim))
	mux.HandleFunc("GET /debug/stats", func(w http.ResponseWriter, _ *http.Request) { writeSimStats(w, sim.Stats()) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(env.Stdout, "Cloudflare API simulator on http://%s/client/v4 (use --cloudflare-api-url); its counters on /debug/stats\n", ln.Addr())
	if *s3Addr != "" {
		fmt.Fprintf(env.Stdout, "S3 on http://%s (path-style; any bucket; access key %s)\n", *s3Addr, demoAccessKey)
	}
	if *gcsAddr != "" {
		fmt.Fprintf(env.Stdout, "GCS on http://%s (any bucket; readers: STORAGE_EMULATOR_HOST=%s)\n", *gcsAddr, *gcsAddr)
	}
	if *azureEndpoint != "" {
		fmt.Fprintf(env.Stdout, "azure:// challenge files go to %s (readers: AZURE_STORAGE_BLOB_ENDPOINT=%s)\n", *azureEndpoint, *azureEndpoint)
	}
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// serveS3 serves an in-memory S3 on addr in which every bucket exists
// (gofakes3, as in demo), until stop; the S3 is also the writer of
// challenge files into it.
func serveS3(addr string) (*simulator.S3, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("-serve-s3: %w", err)
	}
	s3 := simulator.NewS3()
	srv := &http.Server{Handler: s3, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return s3, func() { srv.Close() }, nil
}

// serveGCS serves an in-memory GCS on addr (fake-gcs-server, JSON and XML
// APIs) in which every bucket exists, as in the simulator's S3: a request
// that names a bucket creates it first. It returns the writer of gs://
// challenge files into it.
func serveGCS(ctx context.Context, addr string) (destination.Writer, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("-serve-gcs: %w", err)
	}
	host, _, _ := net.SplitHostPort(addr)
	fake, err := fakestorage.NewServerWithOptions(fakestorage.Options{NoListener: true, Scheme: "http", Host: host, PublicHost: host, Writer: io.Discard})
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("-serve-gcs: %w", err)
	}
	var mu sync.Mutex
	has := map[string]bool{}
	h := fake.HTTPHandler()
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b := gcsBucket(r.URL.Path); b != "" {
			mu.Lock()
			if !has[b] {
				fake.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: b})
				has[b] = true
			}
			mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	gw, err := destination.NewGCS(ctx, destination.GCSOptions{Endpoint: "http://" + ln.Addr().String()})
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	return gw, func() { srv.Close() }, nil
}

// gcsBucket is the bucket a GCS request names: after "/b/" in the JSON
// API's paths (/storage/v1/b/B/o/..., /upload/..., /download/...), else
// the first segment (the XML API's /B/object).
func gcsBucket(path string) string {
	if _, rest, ok := strings.Cut(path, "/b/"); ok {
		b, _, _ := strings.Cut(rest, "/")
		return b
	}
	b, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if b == "storage" || b == "upload" || b == "download" || b == "_internal" {
		return ""
	}
	return b
}

// writeSimStats answers GET /debug/stats: the simulator's counters as JSON,
// for the bench, which runs the simulator in a process of its own.
// Requests is keyed "endpoint status" (JSON has no struct keys).
func writeSimStats(w http.ResponseWriter, st simulator.Stats) {
	req := make(map[string]int, len(st.Requests))
	for k, v := range st.Requests {
		req[k.Endpoint+" "+strconv.Itoa(k.Status)] = v
	}
	out := struct {
		simulator.Stats
		Requests map[string]int
		Calls    int
	}{Stats: st, Requests: req, Calls: st.Calls()}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
