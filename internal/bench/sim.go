package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/budget"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// benchToken is the API token the workers present and the simulator
// accepts.
const benchToken = "bench-api-token"

// simOptions configure the simulator of one scenario.
type simOptions struct {
	// RateLimit is enforced per credential, with Penalty; zero: off.
	RateLimit budget.Rate
	Penalty   time.Duration
	// WriteDelay and WriteJitter: when the challenge file appears.
	WriteDelay, WriteJitter time.Duration
	// Track records, per destination_conf, every successful challenge,
	// file write and successful validate (scenario f).
	Track bool
	// AnyToken accepts every well-formed token, each a credential of its
	// own for RateLimit, and records 429s and the last successful
	// validate per token (scenario g).
	AnyToken bool
	// S3 serves an in-memory S3 (gofakes3) on loopback and writes the
	// challenge files of s3:// destinations there (scenario a without a
	// simulator process).
	S3 bool
}

// tokenStats is one token's share of the calls (AnyToken).
type tokenStats struct {
	limited                   int
	firstChallenge, lastValid time.Time
}

// track is one destination_conf's timeline (one shared path).
type track struct {
	challenges, writes, valid []time.Time
}

// simHarness serves the simulator on loopback and records, per
// destination_conf, when its challenge file appeared and when its first
// successful validate call arrived.
type simHarness struct {
	sim *simulator.Simulator
	// URL is the API base URL, ".../client/v4".
	URL       string
	srv       *http.Server
	closeOnce sync.Once
	// s3URL and s3 are the S3 server and its writer (S3).
	s3URL string
	s3    *simulator.S3
	s3srv *http.Server

	mu        sync.Mutex
	written   map[string]time.Time // conf: when its latest challenge file appeared
	validated map[string]time.Time // conf: arrival of its first successful validate call
	latencies []time.Duration      // validate arrival - file appearance
	calls     int
	first     time.Time // first API call's arrival
	last      time.Time // last API call's arrival
	lastValid time.Time // last successful validate call's arrival

	tracking bool
	track    map[string]*track
	perToken map[string]*tokenStats // nil unless AnyToken
	callTime []time.Duration        // durations of tracked calls
}

func newSim(o simOptions) (*simHarness, error) {
	h := &simHarness{written: map[string]time.Time{}, validated: map[string]time.Time{}, tracking: o.Track, track: map[string]*track{}}
	cfg := simulator.Config{
		Write:       h.write,
		WriteDelay:  o.WriteDelay,
		WriteJitter: o.WriteJitter,
		APIToken:    benchToken,
	}
	if o.AnyToken {
		cfg.APIToken, h.perToken = "", map[string]*tokenStats{}
	}
	if o.RateLimit.Limit > 0 {
		cfg.RateLimit, cfg.RateWindow, cfg.Penalty = o.RateLimit.Limit, o.RateLimit.Window, o.Penalty
	}
	sim, err := simulator.New(cfg)
	if err != nil {
		return nil, err
	}
	h.sim = sim
	if o.S3 {
		if err := h.serveS3(); err != nil {
			sim.Close()
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.close()
		return nil, err
	}
	h.srv = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = h.srv.Serve(ln) }()
	h.URL = "http://" + ln.Addr().String() + "/client/v4"
	return h, nil
}

func (h *simHarness) close() {
	h.closeOnce.Do(func() {
		if h.srv != nil {
			h.srv.Close()
		}
		if h.s3srv != nil {
			h.s3srv.Close()
		}
		h.sim.Close()
	})
}

// serveS3 serves an in-memory S3 in which every bucket exists, as the
// simulate command's --serve-s3 does, which writes the challenge files
// straight into its store.
func (h *simHarness) serveS3() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	h.s3 = simulator.NewS3()
	h.s3srv = &http.Server{Handler: h.s3, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = h.s3srv.Serve(ln) }()
	h.s3URL = "http://" + ln.Addr().String()
	return nil
}

// write plays Cloudflare writing the challenge file, then records when it
// appeared.
func (h *simHarness) write(ctx context.Context, conf, filename string, body []byte) error {
	if h.s3 != nil && strings.HasPrefix(conf, "s3://") {
		c, err := tasks.ParseConf(conf)
		if err != nil {
			return err
		}
		if err := h.s3.Write(ctx, destination.For(c, nil, filename), body); err != nil {
			return err
		}
	} else if err := writeFile(conf, filename, body); err != nil {
		return err
	}
	now := time.Now()
	h.mu.Lock()
	h.written[conf] = now
	if h.tracking {
		h.trackOf(conf).writes = append(h.trackOf(conf).writes, now)
	}
	h.mu.Unlock()
	return nil
}

func (h *simHarness) trackOf(conf string) *track {
	t := h.track[conf]
	if t == nil {
		t = &track{}
		h.track[conf] = t
	}
	return t
}

// tracks returns the timelines recorded with Track.
func (h *simHarness) tracks() []track {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []track
	for _, t := range h.track {
		out = append(out, *t)
	}
	return out
}

// medianCall is the median duration of the tracked API calls.
func (h *simHarness) medianCall() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return time.Duration(quantile(h.callTime, 0.5) * float64(time.Second))
}

// writeFile writes a file:// destination's challenge file without the
// fsync of destination.File (a disk flush per file would measure the disk,
// not the pipeline), atomically: a temporary file renamed over the target.
func writeFile(conf, filename string, body []byte) error {
	c, err := tasks.ParseConf(conf)
	if err != nil {
		return err
	}
	if c.Type != tasks.TypeFile {
		return fmt.Errorf("bench simulator writes file:// destinations only, got %s", c.Type)
	}
	loc := destination.For(c, nil, filename)
	name := filepath.Join("/", filepath.FromSlash(path.Clean("/"+loc.Key)))
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	tmp := name + ".tmp-" + strconv.FormatUint(rand.Uint64(), 36)
	if err := os.WriteFile(tmp, body, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

// ServeHTTP passes the call to the simulator and records its times.
func (h *simHarness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	arrival := time.Now()
	validate := strings.HasSuffix(req.URL.Path, "/ownership/validate")
	challenge := strings.HasSuffix(req.URL.Path, "/ownership")
	var conf string
	if validate || (challenge && h.tracking) {
		body, _ := io.ReadAll(io.LimitReader(req.Body, 64<<10))
		req.Body = io.NopCloser(bytes.NewReader(body))
		var v struct {
			DestinationConf string `json:"destination_conf"`
		}
		_ = json.Unmarshal(body, &v)
		conf = v.DestinationConf
	}
	sw := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	h.sim.ServeHTTP(sw, req)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	if h.perToken != nil {
		tok := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
		ts := h.perToken[tok]
		if ts == nil {
			ts = &tokenStats{}
			h.perToken[tok] = ts
		}
		switch {
		case sw.status == http.StatusTooManyRequests:
			ts.limited++
		case validate && sw.status == http.StatusOK:
			ts.lastValid = arrival
		case challenge && sw.status == http.StatusOK && ts.firstChallenge.IsZero():
			ts.firstChallenge = arrival
		}
	}
	if h.tracking && sw.status == http.StatusOK && (validate || challenge) {
		h.callTime = append(h.callTime, time.Since(arrival))
		if tr := h.trackOf(conf); validate {
			tr.valid = append(tr.valid, arrival)
		} else {
			tr.challenges = append(tr.challenges, arrival)
		}
	}
	if h.first.IsZero() {
		h.first = arrival
	}
	h.last = arrival
	if validate && sw.status == http.StatusOK {
		if _, seen := h.validated[conf]; !seen {
			h.validated[conf] = arrival
			h.lastValid = arrival
			if wt, ok := h.written[conf]; ok {
				h.latencies = append(h.latencies, arrival.Sub(wt))
			}
		}
	}
}

// byToken returns the per-token records of AnyToken.
func (h *simHarness) byToken() map[string]tokenStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]tokenStats, len(h.perToken))
	for k, v := range h.perToken {
		out[k] = *v
	}
	return out
}

// results returns the latencies and the span of the API calls.
func (h *simHarness) results() (lat []time.Duration, first, last, lastValid time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Duration(nil), h.latencies...), h.first, h.last, h.lastValid
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// writeCSV writes n file:// destinations under destDir, all of which need
// a challenge, and creates their directories: creating them when the
// simulator writes would charge the bench's bucket, not the pipeline.
func writeCSV(path, destDir string, n int) error {
	for i := range n {
		if err := os.Mkdir(filepath.Join(destDir, strconv.Itoa(i)), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	return writeConfs(path, n, func(i int) string { return fmt.Sprintf("file://%s/%d", destDir, i) })
}

// s3Bucket is the bucket of scenario a's destinations.
const s3Bucket = "logpush-bench"

// writeS3CSV writes n s3:// destinations under prefix in s3Bucket, all of
// which need a challenge: a quarter account-scoped, as in writeCSV.
func writeS3CSV(path, prefix string, n int) error {
	return writeConfs(path, n, func(i int) string { return fmt.Sprintf("s3://%s/%s/%d?region=us-east-1", s3Bucket, prefix, i) })
}

// writeConfs writes a CSV of n destinations, the i-th to conf(i), of zone
// i+1 but every fourth, which is of account i+1.
func writeConfs(path string, n int, conf func(i int) string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<16)
	fmt.Fprintln(bw, "zone_id,account_id,destination_conf")
	for i := range n {
		if i%4 == 3 {
			fmt.Fprintf(bw, ",%032x,%s\n", i+1, conf(i))
		} else {
			fmt.Fprintf(bw, "%032x,,%s\n", i+1, conf(i))
		}
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// scenarioCSV is scenarioDir with a CSV of n file:// destinations in it.
func (r *runner) scenarioCSV(name string, n int) (csv string, err error) {
	csv, dests, err := r.scenarioDir(name)
	if err != nil {
		return "", err
	}
	return csv, writeCSV(csv, dests, n)
}

// scenarioDir makes a fresh directory for one scenario's CSV and
// destinations.
func (r *runner) scenarioDir(name string) (csv, dests string, err error) {
	d := filepath.Join(r.dir, name)
	if err := os.RemoveAll(d); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", "", err
	}
	dests = filepath.Join(d, "d")
	if err := os.MkdirAll(dests, 0o755); err != nil {
		return "", "", err
	}
	return filepath.Join(d, "destinations.csv"), dests, nil
}
