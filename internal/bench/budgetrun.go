package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/budget"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// Budget is scenario b: worker processes sharing the API budget against a
// simulator enforcing a scaled Cloudflare rate limit with its penalty.
type Budget struct {
	N       int    `json:"n"`
	Workers int    `json:"workers"`
	Rate    string `json:"rate"`
	Penalty string `json:"penalty"`
	Writes  string `json:"write_delay"`
	// InProcess is set when the workers ran in this process (no worker
	// binary): separate Redis clients, one process.
	InProcess bool `json:"in_process"`
	// Makespan runs from the enqueue (workers already up) to the last
	// destination's outcome.
	Makespan float64 `json:"makespan_seconds"`
	// Bound is 2N/rate: every call at exactly the limit's rate.
	Bound float64 `json:"bound_seconds"`
	Ratio float64 `json:"makespan_over_bound"`
	// APISpan runs from the first API call to the last successful validate.
	APISpan     float64 `json:"api_span_seconds"`
	Validated   int64   `json:"validated"`
	Failed      int64   `json:"failed"`
	Calls       int     `json:"api_calls"`
	CallsOK     int     `json:"api_calls_ok"`
	RateLimited int     `json:"rate_limited_429"`
	MaxInWindow int     `json:"max_in_window"`
	Limit       int     `json:"limit"`
	// Utilisation is the successful calls over what the limit allows during
	// the makespan.
	Utilisation float64 `json:"utilisation"`
	Median      float64 `json:"latency_median_seconds"`
	P95         float64 `json:"latency_p95_seconds"`
	// Per validated destination, from the workers' metrics.
	StorageReads float64 `json:"storage_reads_per_validated"`
	Cooldowns    float64 `json:"cooldowns"`
	CPUSeconds   float64 `json:"worker_cpu_seconds"`
	CPUPer1000   float64 `json:"worker_cpu_seconds_per_1000"`
	PeakRSS      int64   `json:"worker_peak_rss_bytes"`

	// Server is what the Redis server did from the workers' start to the
	// batch's end.
	Server ServerDelta `json:"server"`

	Naive *Naive `json:"naive,omitempty"`
}

// Naive is the baseline: one destination at a time, as a person's script
// does it: challenge, look for the file every second, validate.
type Naive struct {
	Done        int     `json:"done"`
	Seconds     float64 `json:"seconds"`
	PerDest     float64 `json:"seconds_per_destination"`
	Projected   float64 `json:"projected_makespan_seconds"`
	Speedup     float64 `json:"speedup"`
	RateLimited int     `json:"rate_limited_429"`
}

func (r *runner) budgetRun(ctx context.Context) error {
	c := r.cfg
	rate := float64(c.RateLimit.Limit) / c.RateLimit.Window.Seconds()
	b := &Budget{N: c.BudgetN, Workers: c.Workers, Rate: c.RateLimit.String(), Penalty: c.Penalty.String(),
		Writes: fmt.Sprintf("%s + [0, %s)", c.WriteDelay, c.WriteJitter), Limit: c.RateLimit.Limit,
		Bound: 2 * float64(c.BudgetN) / rate, InProcess: r.env.Worker == nil}
	r.rep.Budget = b
	if err := r.flush(ctx); err != nil {
		return err
	}
	csv, err := r.scenarioCSV("b", c.BudgetN)
	if err != nil {
		return err
	}
	simOpts := simOptions{RateLimit: c.RateLimit, Penalty: c.Penalty, WriteDelay: c.WriteDelay, WriteJitter: c.WriteJitter}
	sim, err := newSim(simOpts)
	if err != nil {
		return err
	}
	defer sim.close()

	s0 := r.serverSnapshot(ctx)
	var children []*child
	var inproc []*procWorker
	defer func() {
		for _, ch := range children {
			select {
			case <-ch.done:
			default:
				ch.kill()
			}
		}
		for _, w := range inproc {
			w.stop()
		}
	}()
	for range c.Workers {
		if b.InProcess {
			w, err := r.startWorker(sim.URL, workerOptions{Concurrency: c.Concurrency, Rate: c.RateLimit})
			if err != nil {
				return err
			}
			inproc = append(inproc, w)
			continue
		}
		ch, err := r.startChild(ctx, sim.URL, c.RateLimit.String(), c.Concurrency, nil)
		if err != nil {
			return err
		}
		children = append(children, ch)
	}

	// Paced, as the enqueue command does at the workers' --api-rate.
	pace, err := budget.NewPacer(r.admin, budget.Config{Rate: c.RateLimit, Key: cloudflare.Credentials{APIToken: benchToken}.Digest()})
	if err != nil {
		return err
	}
	start := time.Now()
	res, _, err := r.enqueueWith(ctx, csv, producer.ClientConfig{Pacer: pace})
	if err != nil {
		return err
	}
	timeout := 3*time.Duration(b.Bound*float64(time.Second)) + 5*time.Minute
	st, end, err := waitBatch(ctx, r.batches, res.BatchID, timeout)
	if err != nil {
		return err
	}
	b.Server = delta(s0, r.serverSnapshot(ctx))
	b.Makespan = end.Sub(start).Seconds()
	b.Ratio = b.Makespan / b.Bound
	b.Validated, b.Failed = st.Counts[events.Validated], st.Counts[events.Failed]

	var reads float64
	for _, ch := range children {
		m, err := ch.scrape()
		if err != nil {
			return fmt.Errorf("worker metrics: %w", err)
		}
		reads += m["logpush_onboard_storage_requests_total"]
		b.Cooldowns += m["logpush_onboard_budget_cooldowns_total"]
	}
	for _, ch := range children {
		ch.stop()
		b.CPUSeconds += ch.cpu().Seconds()
		b.PeakRSS = max(b.PeakRSS, ch.maxRSS())
	}
	for _, w := range inproc {
		reads += float64(w.reads())
	}
	if b.Validated > 0 {
		b.StorageReads = reads / float64(b.Validated)
		b.CPUPer1000 = b.CPUSeconds / float64(b.Validated) * 1000
	}

	stats := sim.sim.Stats()
	lat, first, _, lastValid := sim.results()
	b.APISpan = lastValid.Sub(first).Seconds()
	b.Calls = stats.Total(simulator.EndpointChallenge) + stats.Total(simulator.EndpointValidate)
	b.CallsOK = stats.Count(simulator.EndpointChallenge, http.StatusOK) + stats.Count(simulator.EndpointValidate, http.StatusOK)
	b.RateLimited = stats.RateLimitedLimit
	b.MaxInWindow = stats.MaxInWindow
	b.Utilisation = float64(b.CallsOK) / (rate * b.Makespan)
	b.Median, b.P95 = quantile(lat, 0.5), quantile(lat, 0.95)
	sim.close()

	n, err := r.naive(ctx, simOpts)
	if err != nil {
		return fmt.Errorf("naive baseline: %w", err)
	}
	b.Naive = n
	if n.PerDest > 0 {
		n.Projected = n.PerDest * float64(c.BudgetN)
		n.Speedup = n.Projected / b.Makespan
	}
	return r.flush(ctx)
}

// naive onboards destinations one at a time on a fresh simulator with b's
// settings, until all of b's destinations are done or NaiveTime is spent.
func (r *runner) naive(ctx context.Context, o simOptions) (*Naive, error) {
	c := r.cfg
	_, dests, err := r.scenarioDir("naive")
	if err != nil {
		return nil, err
	}
	sim, err := newSim(o)
	if err != nil {
		return nil, err
	}
	defer sim.close()
	api, err := cloudflare.New(cloudflare.Config{BaseURL: sim.URL, Credentials: cloudflare.Credentials{APIToken: benchToken}})
	if err != nil {
		return nil, err
	}
	reader := &destination.File{}
	n := &Naive{}
	start := time.Now()
	for i := 0; i < c.BudgetN && time.Since(start) < c.NaiveTime; i++ {
		scope := cloudflare.ScopeZone
		if i%4 == 3 {
			scope = cloudflare.ScopeAccount
		}
		t := cloudflare.Target{Scope: scope, ID: fmt.Sprintf("%032x", i+1)}
		conf := fmt.Sprintf("file://%s/%d", dests, i)
		if err := naiveOne(ctx, api, reader, t, conf); err != nil {
			return nil, fmt.Errorf("destination %d: %w", i, err)
		}
		n.Done++
	}
	n.Seconds = time.Since(start).Seconds()
	if n.Done > 0 {
		n.PerDest = n.Seconds / float64(n.Done)
	}
	n.RateLimited = sim.sim.Stats().RateLimitedLimit
	return n, nil
}

// naiveOne is the script's loop body for one destination.
func naiveOne(ctx context.Context, api *cloudflare.Client, reader destination.Reader, t cloudflare.Target, conf string) error {
	requested := time.Now()
	res, err := api.Challenge(ctx, t, conf)
	if err != nil {
		return err
	}
	pc, err := tasks.ParseConf(conf)
	if err != nil {
		return err
	}
	loc := destination.For(pc, nil, res.Filename)
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		obj, err := reader.Read(ctx, loc, requested.Truncate(time.Second).Add(-time.Second))
		switch {
		case err == nil:
			tok, err := cloudflare.CleanToken(string(obj.Body))
			if err != nil {
				return err
			}
			_, err = api.Validate(ctx, t, conf, tok)
			return err
		case errors.Is(err, destination.ErrNotFound), errors.Is(err, destination.ErrStale):
			if time.Now().After(deadline) {
				return fmt.Errorf("no challenge file after a minute: %w", err)
			}
		default:
			return err
		}
	}
}
