package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// Latency is one run of scenario c: N destinations whose challenge files
// appear after WriteDelay plus up to WriteJitter, on a worker in this
// process without an API budget (so that the figure is the poll loop's,
// not time spent queueing for the budget; b reports that one).
type Latency struct {
	Name     string `json:"name"`
	Settings string `json:"settings"`
	N        int    `json:"n"`
	// Default marks the worker command's settings.
	Default   bool  `json:"default"`
	Validated int64 `json:"validated"`
	// Samples are destinations with both a file and a validate time.
	Samples int     `json:"samples"`
	Median  float64 `json:"median_seconds"`
	P95     float64 `json:"p95_seconds"`
	Max     float64 `json:"max_seconds"`
	// StorageReads counts the worker's reads of challenge files.
	StorageReads      int64   `json:"storage_reads"`
	ReadsPerValidated float64 `json:"storage_reads_per_validated"`
	Seconds           float64 `json:"seconds"`
}

// latency runs scenario c: the defaults, then the alternative settings.
func (r *runner) latency(ctx context.Context) error {
	c := r.cfg
	type run struct {
		name, settings string
		def            bool
		o              workerOptions
	}
	runs := []run{{name: "defaults", def: true,
		settings: "PollFirst 4s (then the p75 of seen delays), PollInterval 1s growing x1.5, asynq TaskCheckInterval 100ms, DelayedTaskCheckInterval 200ms",
		o:        workerOptions{Concurrency: c.Concurrency}}}
	if !c.NoAlternatives {
		runs = append(runs,
			run{name: "poll-first 2s + task-check 1s", settings: "PollFirst 2s, asynq TaskCheckInterval 1s (the defaults before the bench)",
				o: workerOptions{Concurrency: c.Concurrency, TaskCheckInterval: time.Second,
					Handler: worker.HandlerConfig{PollFirst: 2 * time.Second}}},
		)
	}
	for _, rn := range runs {
		l, err := r.latencyRun(ctx, rn.o)
		if err != nil {
			return fmt.Errorf("%s: %w", rn.name, err)
		}
		l.Name, l.Settings, l.Default = rn.name, rn.settings, rn.def
		r.rep.Latency = append(r.rep.Latency, l)
	}
	return r.flush(ctx)
}

func (r *runner) latencyRun(ctx context.Context, o workerOptions) (*Latency, error) {
	c := r.cfg
	if err := r.flush(ctx); err != nil {
		return nil, err
	}
	csv, _, err := r.scenarioDir("c")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(filepath.Dir(csv))
	if err := writeS3CSV(csv, "c", c.LatencyN); err != nil {
		return nil, err
	}
	sim, err := newSim(simOptions{WriteDelay: c.WriteDelay, WriteJitter: c.WriteJitter, S3: true})
	if err != nil {
		return nil, err
	}
	defer sim.close()
	o.Storage = benchS3(sim.s3URL)
	res, _, err := r.enqueueFile(ctx, csv, 0)
	if err != nil {
		return nil, err
	}
	w, err := r.startWorker(sim.URL, o)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	st, end, err := waitBatch(ctx, r.batches, res.BatchID, 5*time.Minute)
	w.stop()
	if err != nil {
		return nil, err
	}
	lat, _, _, _ := sim.results()
	l := &Latency{N: c.LatencyN, Validated: st.Counts[events.Validated], Samples: len(lat),
		StorageReads: w.reads(), Seconds: end.Sub(start).Seconds()}
	l.Median, l.P95, l.Max = quantile(lat, 0.5), quantile(lat, 0.95), quantile(lat, 1)
	if l.Validated > 0 {
		l.ReadsPerValidated = float64(l.StorageReads) / float64(l.Validated)
	}
	return l, nil
}

// quantile returns the q-quantile of ds in seconds (nearest rank); 0 for
// none.
func quantile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	i = min(max(i, 0), len(s)-1)
	return s[i].Seconds()
}
