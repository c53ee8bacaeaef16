package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/budget"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// workerOptions vary an in-process worker. The zero value is the worker
// command's defaults, without an API budget.
type workerOptions struct {
	Concurrency int
	// Rate is the shared API budget; zero: none (--api-rate 0).
	Rate budget.Rate
	// Handler is the handlers' poll timing; zero: the defaults.
	Handler worker.HandlerConfig
	// TaskCheckInterval is asynq's idle dequeue sleep (0.5-1.5x of it);
	// zero: worker.ServerConfig's default.
	TaskCheckInterval time.Duration
	// RESP2 sets the Redis client's protocol to 2 (go-redis defaults to
	// RESP3 and checks for push notifications around every command).
	RESP2 bool
	// Storage says how the worker reads challenge files (scenario a: the
	// simulator's S3); zero: the worker command's defaults.
	Storage credentials.Storage
}

// procWorker is a worker running in the bench process.
type procWorker struct {
	w     *worker.Worker
	rdb   *redis.Client
	count *counter
	reg   *prometheus.Registry
}

// startWorker starts a worker in this process with worker.New, as the
// worker command does, on its own Redis client, with a budget only when
// o.Rate is set.
func (r *runner) startWorker(apiURL string, o workerOptions) (*procWorker, error) {
	rdb, cnt := r.newClientProto(o.RESP2)
	reg := prometheus.NewRegistry()
	rate := "0"
	if o.Rate.Limit > 0 {
		rate = o.Rate.String()
	}
	ww, err := worker.New(context.Background(), rdb, worker.Config{
		Credentials: credentials.Cloudflare{APIToken: benchToken}, APIURL: apiURL, APIRate: rate, APIRateClaim: worker.RateRequire,
		Handler: o.Handler, Logger: r.log, Registry: reg, Storage: o.Storage, WatchOutages: true,
		Server: worker.ServerConfig{Concurrency: max(o.Concurrency, 1), ShutdownTimeout: 5 * time.Second, TaskCheckInterval: o.TaskCheckInterval},
	})
	if err != nil {
		rdb.Close()
		return nil, err
	}
	if err := ww.Start(); err != nil {
		rdb.Close()
		return nil, err
	}
	return &procWorker{w: ww, rdb: rdb, count: cnt, reg: reg}, nil
}

// reads is the number of challenge-file reads the worker made, from its
// logpush_onboard_storage_requests_total.
func (w *procWorker) reads() int64 {
	var n int64
	for _, v := range w.readsByType() {
		n += v
	}
	return n
}

// readsByType is reads by destination type (the metric's type label).
func (w *procWorker) readsByType() map[string]int64 {
	out := map[string]int64{}
	mfs, err := w.reg.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if mf.GetName() != "logpush_onboard_storage_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			typ := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "type" {
					typ = l.GetValue()
				}
			}
			out[typ] += int64(m.GetCounter().GetValue())
		}
	}
	return out
}

// stop drains the worker and closes its Redis client.
func (w *procWorker) stop() {
	w.w.Shutdown()
	w.rdb.Close()
}

// child is a worker process: the logpush-onboard binary's worker command.
type child struct {
	cmd         *exec.Cmd
	metricsAddr string
	done        chan struct{}
	err         error
	peakRSS     atomic.Int64 // bytes, sampled from /proc
	peakAnon    atomic.Int64 // bytes, sampled from /proc
}

// childLog is where the worker processes' output goes.
func (r *runner) childLog() string { return r.dir + "/workers.log" }

// childLogTail is the end of the worker processes' output, for errors.
func (r *runner) childLogTail() string {
	b, err := os.ReadFile(r.childLog())
	if err != nil {
		return err.Error()
	}
	b = b[max(len(b)-2000, 0):]
	return "worker output: " + strings.TrimSpace(string(b))
}

// startChild starts a worker process on the measured database and waits
// until it serves /readyz: started, taking tasks, the queue not paused (a
// queue that does not exist yet is not paused).
func (r *runner) startChild(ctx context.Context, apiURL, apiRate string, concurrency int, env []string, extra ...string) (*child, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"worker", "--redis", r.url, "--cloudflare-api-url", apiURL, "--metrics-addr", addr,
		"--api-rate", apiRate, "--concurrency", strconv.Itoa(concurrency), "--shutdown-timeout", "10s", "--log-level", "warn"}
	return r.startProc(ctx, "worker", append(args, extra...), env, addr, "/readyz")
}

// startProc starts the binary with args (its kind, "worker" or
// "simulator", names it in errors) and waits until http://addr+ready
// answers 200.
func (r *runner) startProc(ctx context.Context, kind string, args, env []string, addr, ready string) (*child, error) {
	cmd := r.env.Worker(args)
	cmd.Env = append(benchEnv(cmd.Env), env...)
	logf, err := os.OpenFile(r.childLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s process: %w", kind, err)
	}
	c := &child{cmd: cmd, metricsAddr: addr, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	go c.sampleRSS()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c, nil
			}
		}
		select {
		case <-c.done:
			return nil, fmt.Errorf("%s process exited at start (%v): %s", kind, c.err, r.childLogTail())
		case <-ctx.Done():
			c.kill()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.kill()
			return nil, fmt.Errorf("%s process not ready after 20s: %s", kind, r.childLogTail())
		}
	}
}

// benchEnv is env (os.Environ when nil) with the bench's credential only,
// whatever the environment holds, and no Redis or rate of its own.
func benchEnv(env []string) []string {
	if env == nil {
		env = os.Environ()
	}
	kept := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "CLOUDFLARE_") && !strings.HasPrefix(kv, "API_RATE=") && !strings.HasPrefix(kv, "REDIS_URL=") &&
			!strings.HasPrefix(kv, "CREDENTIALS_FILE=") && !strings.HasPrefix(kv, "BUDGET_KEY=") {
			kept = append(kept, kv)
		}
	}
	return append(kept, "CLOUDFLARE_API_TOKEN="+benchToken)
}

// sampleRSS records the process's peak resident set size and peak
// anonymous memory (its heap and stacks, without the binary's file pages)
// every 100ms.
func (c *child) sampleRSS() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		hwm, anon := procMem(c.cmd.Process.Pid)
		if hwm > c.peakRSS.Load() {
			c.peakRSS.Store(hwm)
		}
		if anon > c.peakAnon.Load() {
			c.peakAnon.Store(anon)
		}
		select {
		case <-c.done:
			return
		case <-t.C:
		}
	}
}

// procMem reads VmHWM (peak RSS) and RssAnon from /proc, in bytes; 0
// where there is no /proc.
func procMem(pid int) (hwm, anon int64) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	kb := func(v string) int64 {
		n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		return n << 10
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			hwm = kb(v)
		} else if v, ok := strings.CutPrefix(sc.Text(), "RssAnon:"); ok {
			anon = kb(v)
		}
	}
	return hwm, anon
}

// stop asks the process to drain and exit, and waits.
func (c *child) stop() {
	_ = terminate(c.cmd.Process)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.kill()
	}
}

func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	<-c.done
}

// cpu is the process's user plus system CPU time, once it has exited.
func (c *child) cpu() time.Duration {
	if c.cmd.ProcessState == nil {
		return 0
	}
	return c.cmd.ProcessState.UserTime() + c.cmd.ProcessState.SystemTime()
}

// maxAnon is the process's peak anonymous memory in bytes, as sampled.
func (c *child) maxAnon() int64 { return c.peakAnon.Load() }

// maxRSS is the process's peak RSS in bytes, as sampled from /proc (its
// VmHWM). Where there is no /proc, the kernel's accounting at exit, which
// on Linux also counts the parent's RSS at fork (exec saves the old
// mm's high-water mark), so it is only a fallback.
func (c *child) maxRSS() int64 {
	if n := c.peakRSS.Load(); n > 0 {
		return n
	}
	return exitMaxRSS(c.cmd.ProcessState)
}

// scrape reads the process's /metrics and sums each metric over its label
// sets, and per "name{labels}" series.
func (c *child) scrape() (map[string]float64, error) {
	resp, err := http.Get("http://" + c.metricsAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: http %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		series := line[:i]
		name, _, _ := strings.Cut(series, "{")
		out[name] += v
		out[series] += v
	}
	return out, sc.Err()
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", err
	}
	return addr, nil
}

// waitBatch polls the batch until every destination has an outcome and
// returns when it saw that.
// notValidated describes up to max destinations of a batch that are not
// validated: line, state, attempts and error.
func (r *runner) notValidated(ctx context.Context, batch string, max int) ([]string, error) {
	var out []string
	err := ledger.NewStore(r.admin, ledger.Config{}).Dests(ctx, batch, func(_ string, st ledger.DestState) error {
		if st.State == events.Validated || len(out) >= max {
			return nil
		}
		d := fmt.Sprintf("line %d: %s, attempts %+v, requested %s", st.Line, st.State, st.Attempts, st.RequestedAt.Format(time.RFC3339Nano))
		if st.Error != nil {
			d += fmt.Sprintf(", error %+v", *st.Error)
		}
		out = append(out, d)
		return nil
	})
	return out, err
}

func waitBatch(ctx context.Context, batches *producer.Client, id string, timeout time.Duration) (events.BatchStatus, time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := batches.BatchStatus(ctx, id)
		if err != nil {
			return st, time.Time{}, err
		}
		if st.Total > 0 && st.Done() >= st.Total {
			return st, time.Now(), nil
		}
		if time.Now().After(deadline) {
			return st, time.Time{}, fmt.Errorf("batch %s not done after %s: %d of %d (%v)", id, timeout, st.Done(), st.Total, st.Counts)
		}
		select {
		case <-ctx.Done():
			return st, time.Time{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
