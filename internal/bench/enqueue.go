package bench

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// Enqueue is scenario e: the producer enqueueing a large CSV.
type Enqueue struct {
	N           int `json:"n"`
	Concurrency int `json:"producer_concurrency"`
	// Check is the producer's validating pass alone (read, parse, hash).
	CheckSeconds float64 `json:"check_seconds"`
	CheckRate    float64 `json:"check_lines_per_second"`
	// Seconds is the whole enqueue: the check pass, then the enqueue pass.
	Seconds  float64     `json:"seconds"`
	Rate     float64     `json:"lines_per_second"`
	Enqueued int         `json:"enqueued"`
	Client   ClientCount `json:"client"`
	Server   ServerDelta `json:"server"`
	Memory   Memory      `json:"memory"`
	BatchID  string      `json:"batch_id"`
	// AltConcurrency and AltRate: the same file with more enqueue round
	// trips in flight (producer.ClientConfig.Concurrency, not a flag yet).
	AltConcurrency int     `json:"alt_producer_concurrency,omitempty"`
	AltRate        float64 `json:"alt_lines_per_second,omitempty"`
}

func (r *runner) enqueue(ctx context.Context) error {
	c := r.cfg
	e := &Enqueue{N: c.EnqueueN, Concurrency: producer.ClientConfig{}.WithDefaults().Concurrency}
	r.rep.Enqueue = e
	if err := r.flush(ctx); err != nil {
		return err
	}
	csv, err := r.scenarioCSV("e", c.EnqueueN)
	if err != nil {
		return err
	}
	open := func() (io.ReadCloser, error) { return os.Open(csv) }
	t0 := time.Now()
	if _, err := producer.Check(ctx, open, producer.ClientConfig{Format: tasks.FormatCSV}); err != nil {
		return err
	}
	e.CheckSeconds = time.Since(t0).Seconds()
	e.CheckRate = float64(c.EnqueueN) / e.CheckSeconds

	if !c.NoAlternatives {
		e.AltConcurrency = 64
		t := time.Now()
		if _, _, err := r.enqueueFile(ctx, csv, e.AltConcurrency); err != nil {
			return err
		}
		e.AltRate = float64(c.EnqueueN) / time.Since(t).Seconds()
		if err := r.flush(ctx); err != nil {
			return err
		}
	}
	s0 := r.serverSnapshot(ctx)
	var res producer.Result
	err = r.profile("e-enqueue", func() error {
		t1 := time.Now()
		var err error
		res, e.Client, err = r.enqueueFile(ctx, csv, 0)
		e.Seconds = time.Since(t1).Seconds()
		return err
	})
	if err != nil {
		return err
	}
	e.Server = delta(s0, r.serverSnapshot(ctx))
	e.Rate = float64(c.EnqueueN) / e.Seconds
	e.Enqueued = res.Enqueued
	e.BatchID = res.BatchID
	e.Memory = r.memory(ctx)
	return nil
}

// Process is d's worker process figures: CPU per destination on a batch
// it finishes, and peak RSS with e's EnqueueN destinations enqueued.
type Process struct {
	Measured bool `json:"measured"`
	// The CPU run: N destinations, no API budget, instant files.
	N          int     `json:"n"`
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUPer1000 float64 `json:"cpu_seconds_per_1000"`
	RSS        int64   `json:"cpu_run_peak_rss_bytes"`
	// StorageReads per validated destination (instant files: 1 at best).
	StorageReads float64 `json:"storage_reads_per_validated"`
	// The RSS run: the process works on e's queue for Window.
	Enqueued   int     `json:"enqueued"`
	Window     float64 `json:"window_seconds"`
	Challenges int     `json:"challenges_in_window"`
	Done       int64   `json:"done_in_window"`
	PeakRSS    int64   `json:"peak_rss_bytes"`
	// PeakAnon is the peak anonymous memory: RSS without the binary's
	// file pages, which the kernel can drop and processes share.
	PeakAnon int64 `json:"peak_anon_bytes"`
}

// workerProcess measures worker processes without an API budget and with
// instant challenge files: first on e's queue for Window (peak RSS with
// EnqueueN destinations enqueued), then on a fresh batch of N destinations
// until it is done (CPU per destination).
func (r *runner) workerProcess(ctx context.Context) error {
	e := r.rep.Enqueue
	p := &Process{Enqueued: e.Enqueued, Window: r.cfg.Window.Seconds(), N: r.cfg.N}
	r.rep.Process = p
	if r.env.Worker == nil {
		return nil
	}
	sim, err := newSim(simOptions{})
	if err != nil {
		return err
	}
	defer sim.close()
	var children []*child
	defer func() {
		for _, ch := range children {
			select {
			case <-ch.done:
			default:
				ch.kill()
			}
		}
	}()

	ch, err := r.startChild(ctx, sim.URL, "0", r.cfg.Concurrency, nil)
	if err != nil {
		return err
	}
	children = append(children, ch)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(r.cfg.Window):
	}
	ch.stop()
	st, err := r.batches.BatchStatus(ctx, e.BatchID)
	if err != nil {
		return err
	}
	p.Done = st.Done()
	p.Challenges = sim.sim.Stats().ChallengesIssued
	p.PeakRSS = ch.maxRSS()
	p.PeakAnon = ch.maxAnon()

	if err := r.flush(ctx); err != nil {
		return err
	}
	csv, err := r.scenarioCSV("d", r.cfg.N)
	if err != nil {
		return err
	}
	res, _, err := r.enqueueFile(ctx, csv, 0)
	if err != nil {
		return err
	}
	ch, err = r.startChild(ctx, sim.URL, "0", r.cfg.Concurrency, nil)
	if err != nil {
		return err
	}
	children = append(children, ch)
	start := time.Now()
	st, end, err := waitBatch(ctx, r.batches, res.BatchID, 10*time.Minute+time.Duration(r.cfg.N)*20*time.Millisecond)
	if err != nil {
		return err
	}
	p.Seconds = end.Sub(start).Seconds()
	m, err := ch.scrape()
	if err != nil {
		return err
	}
	ch.stop()
	p.Measured = true
	p.CPUSeconds = ch.cpu().Seconds()
	p.CPUPer1000 = p.CPUSeconds / float64(r.cfg.N) * 1000
	p.RSS = ch.maxRSS()
	if v := st.Counts[events.Validated]; v > 0 {
		p.StorageReads = m["logpush_onboard_storage_requests_total"] / float64(v)
	}
	return r.flush(ctx)
}
