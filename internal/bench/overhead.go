package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// Overhead is scenario a, and the Redis cost figures of d.
//
// The machine may be shared: the pipeline, the floor and each alternative
// run Repeat times, in turn, and the figures are medians.
type Overhead struct {
	N           int `json:"n"`
	Concurrency int `json:"concurrency"`
	Repeat      int `json:"repeat"`
	// Pipeline: a worker in this process onboards N s3:// destinations
	// that the enqueue command enqueues while it runs, with instant
	// challenge files and no API budget, against the simulator in its own
	// process (SimulatorProcess; in this process, and the enqueue too,
	// when the bench cannot start one). The simulator writes the files to
	// an S3 server in its process; the worker reads them through the AWS
	// SDK. The rate runs from the start of the enqueue to the last outcome.
	Pipeline AltRate `json:"pipeline"`
	// Floor: asynq alone, three chained no-op tasks per destination, same
	// concurrency and Redis, its enqueue included.
	Floor AltRate `json:"floor"`
	// Ratio is the pipeline's median rate over the floor's.
	Ratio float64 `json:"ratio"`
	// CPURatio is the floor's CPU (this process, its enqueue included, and
	// Redis) over the pipeline's (the worker, the enqueue process and
	// Redis): what the ratio would be if CPU were the only limit. With SimulatorProcess, the pipeline's process
	// no longer includes the simulator; CPURatioWithSimulator adds the
	// simulator process's CPU to the pipeline's, as this process's CPU
	// did before.
	CPURatio              float64 `json:"cpu_ratio"`
	CPURatioWithSimulator float64 `json:"cpu_ratio_with_simulator"`
	// SimulatorProcess is set when the simulator ran in its own process.
	SimulatorProcess bool  `json:"simulator_process"`
	Validated        int64 `json:"validated"`
	// NotValidated describes, up to 10, the destinations of the accounted
	// run that ended otherwise: their line, state and error.
	NotValidated []string `json:"not_validated,omitempty"`

	// An extra pipeline run, enqueue first and then the worker, counts
	// the Redis commands and memory of each.
	EnqueueSeconds float64     `json:"enqueue_seconds"`
	EnqueueClient  ClientCount `json:"enqueue_client"`
	EnqueueServer  ServerDelta `json:"enqueue_server"`
	ProcessClient  ClientCount `json:"process_client"`
	ProcessServer  ServerDelta `json:"process_server"`
	FloorClient    ClientCount `json:"floor_client"`
	FloorServer    ServerDelta `json:"floor_server"`
	MemPending     Memory      `json:"memory_pending"`
	MemDone        Memory      `json:"memory_done"`
	StorageReads   int64       `json:"storage_reads"`
	// StorageReadsByType is StorageReads by destination type: s3 alone.
	StorageReadsByType map[string]int64 `json:"storage_reads_by_type"`
	// Alternatives are the pipeline with knobs the worker command does not
	// expose (yet), measured the same way.
	Alternatives []AltRate `json:"alternatives,omitempty"`
}

// AltRate is one configuration's runs and their medians.
type AltRate struct {
	Name string `json:"name"`
	// Rates are the destinations/s of every run; Rate is their median.
	Rates []float64 `json:"rates"`
	Rate  float64   `json:"destinations_per_second"`
	Ratio float64   `json:"ratio_to_floor"`
	// RoundTrips is this process's Redis round trips per destination.
	RoundTrips float64 `json:"round_trips_per_destination"`
	// CPU is this process's (the worker, and the simulator when it runs
	// in this process; asynq for the floor), SimCPU the simulator
	// process's (0 for the floor, or when the simulator runs in this
	// process) and RedisCPU the Redis server's CPU seconds per 1000
	// destinations, medians.
	CPU      float64 `json:"cpu_seconds_per_1000"`
	SimCPU   float64 `json:"simulator_cpu_seconds_per_1000"`
	RedisCPU float64 `json:"redis_cpu_seconds_per_1000"`
	// EnqueueCPU is the enqueue's CPU seconds per 1000 destinations
	// (the enqueue command's process; 0 for the floor, whose enqueue is
	// this process's), median.
	EnqueueCPU float64 `json:"enqueue_cpu_seconds_per_1000"`
	// APICalls is the API calls per destination the simulator answered.
	APICalls float64 `json:"api_calls_per_destination,omitempty"`
	// MemDoneBytes is the Redis memory per destination after completion.
	MemDoneBytes float64 `json:"memory_done_bytes_per_destination"`
	// Retention marks the task retention alternative.
	Retention bool `json:"retention_alternative,omitempty"`

	cpus, sims, redis, enqs []float64
}

// add records one run.
func (a *AltRate) add(s sample) {
	a.Rates = append(a.Rates, s.rate)
	a.cpus = append(a.cpus, s.cpu)
	a.redis = append(a.redis, s.redisCPU)
	a.sims = append(a.sims, s.simCPU)
	a.enqs = append(a.enqs, s.enqueueCPU)
	a.Rate, a.CPU, a.RedisCPU, a.SimCPU, a.EnqueueCPU = median(a.Rates), median(a.cpus), median(a.redis), median(a.sims), median(a.enqs)
	if s.apiCalls > 0 {
		a.APICalls = s.apiCalls
	}
	if s.roundTrips > 0 {
		a.RoundTrips = s.roundTrips
	}
	if s.memDone > 0 {
		a.MemDoneBytes = s.memDone
	}
}

// sample is one run's figures.
type sample struct {
	rate, cpu, simCPU, redisCPU, enqueueCPU, roundTrips, memDone, apiCalls float64
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// enqueueFile enqueues the CSV at path with the producer on its own
// counting client.
func (r *runner) enqueueFile(ctx context.Context, path string, concurrency int) (producer.Result, ClientCount, error) {
	return r.enqueueWith(ctx, path, producer.ClientConfig{Concurrency: concurrency})
}

// enqueueWith is enqueueFile with the producer's concurrency, task options
// and pacer from cfg.
func (r *runner) enqueueWith(ctx context.Context, path string, cfg producer.ClientConfig) (producer.Result, ClientCount, error) {
	rdb, cnt := r.newClient()
	defer rdb.Close()
	cfg.Source, cfg.Format, cfg.Logger = path, tasks.FormatCSV, r.log
	p, err := producer.NewClient(rdb, &cfg)
	if err != nil {
		return producer.Result{}, ClientCount{}, err
	}
	defer p.Close()
	res, err := p.Enqueue(ctx, func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil {
		return res, ClientCount{}, fmt.Errorf("enqueue: %w", err)
	}
	return res, cnt.snapshot(), nil
}

// overhead runs scenario a: a warm-up; the pipeline once with its Redis
// costs; then Repeat rounds of the floor, the pipeline (but in the first
// round, which the accounted run stands for) and each alternative in turn. Each pipeline run gets fresh destinations (no
// challenge file left over from an earlier run).
func (r *runner) overhead(ctx context.Context) error {
	c := r.cfg
	o := &Overhead{N: c.N, Concurrency: c.Concurrency, Repeat: c.Repeat}
	r.rep.Overhead = o
	sim, err := r.startAPISim(ctx)
	if err != nil {
		return err
	}
	defer sim.close()
	o.SimulatorProcess = sim.Own
	// Files are instant, so the worker polls at once (--poll-first 0), as
	// an operator would set it for such destinations; the defaults' 4s
	// first poll (until 8 files were seen) is an alternative row.
	def := instantOptions(c.Concurrency)

	// The first run in a process pays for heap growth, connection pools
	// and cold directories: warm up, unmeasured.
	if !c.Quick {
		if _, err := r.pipeline(ctx, "a-warmup", min(c.N, 500), sim, def); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	if err := r.accountedPipeline(ctx, sim); err != nil {
		return err
	}

	alts := []struct {
		name string
		o    workerOptions
	}{
		{"defaults (first poll after 4s until 8 files were seen)", workerOptions{Concurrency: c.Concurrency}},
		{"RESP2 Redis client", workerOptions{Concurrency: c.Concurrency, RESP2: true, Handler: def.Handler}},
		{"task retention 24h (--task-retention, producer and worker)",
			workerOptions{Concurrency: c.Concurrency, Handler: worker.HandlerConfig{PollFirst: def.Handler.PollFirst, Task: tasks.Options{Retention: 24 * time.Hour}}}},
	}
	if c.NoAlternatives {
		alts = nil
	}
	o.Alternatives = make([]AltRate, len(alts))
	for i, a := range alts {
		o.Alternatives[i].Name = a.name
		o.Alternatives[i].Retention = a.o.Handler.Task.Retention != 0
	}
	for k := range c.Repeat {
		if err := r.flush(ctx); err != nil {
			return err
		}
		err := r.profile(fmt.Sprintf("a-floor-%d", k+1), func() error {
			cpu := selfCPU()
			s0 := r.serverSnapshot(ctx)
			d, cc, sd, err := r.floor(ctx, c.N, c.Concurrency)
			if err != nil {
				return err
			}
			if k == 0 {
				o.FloorClient, o.FloorServer = cc, sd
			}
			k := 1000 / float64(c.N)
			o.Floor.add(sample{rate: float64(c.N) / d.Seconds(), cpu: (selfCPU() - cpu).Seconds() * k,
				redisCPU: delta(s0, r.serverSnapshot(ctx)).CPUSeconds * k, roundTrips: float64(cc.RoundTrips) / float64(c.N)})
			return nil
		})
		if err != nil {
			return fmt.Errorf("floor: %w", err)
		}
		var s sample
		err = r.profile(fmt.Sprintf("a-%d", k+1), func() error {
			var err error
			s, err = r.pipeline(ctx, fmt.Sprintf("a-%d", k+1), c.N, sim, def)
			return err
		})
		if err != nil {
			return err
		}
		o.Pipeline.add(s)
		for i, a := range alts {
			s, err := r.pipeline(ctx, fmt.Sprintf("a-alt%d-%d", i+1, k+1), c.N, sim, a.o)
			if err != nil {
				return fmt.Errorf("%s: %w", a.name, err)
			}
			o.Alternatives[i].add(s)
		}
	}
	o.Floor.Name, o.Pipeline.Name = "floor", "pipeline"
	o.Ratio = o.Pipeline.Rate / o.Floor.Rate
	if pc := o.Pipeline.CPU + o.Pipeline.RedisCPU + o.Pipeline.EnqueueCPU; pc > 0 {
		o.CPURatio = (o.Floor.CPU + o.Floor.RedisCPU) / pc
		o.CPURatioWithSimulator = (o.Floor.CPU + o.Floor.RedisCPU) / (pc + o.Pipeline.SimCPU)
	}
	for i := range o.Alternatives {
		o.Alternatives[i].Ratio = o.Alternatives[i].Rate / o.Floor.Rate
	}
	return r.flush(ctx)
}

// instantOptions are scenario a's worker settings: the defaults, without a
// budget, polling at once.
func instantOptions(concurrency int) workerOptions {
	return workerOptions{Concurrency: concurrency, Handler: worker.HandlerConfig{PollFirst: -1}}
}

// accountedPipeline runs the pipeline once, enqueue first and then the
// worker, to count the Redis commands, bytes and memory of each, pending
// and done (a CPU profile of the worker goes to a-accounted.cpu.pprof).
// Its rate is not one of the pipeline's samples: those include the
// enqueue.
func (r *runner) accountedPipeline(ctx context.Context, sim *apiSim) error {
	c := r.cfg
	o := r.rep.Overhead
	if err := r.flush(ctx); err != nil {
		return err
	}
	csv, _, err := r.scenarioDir("a-accounted")
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(csv))
	if err := writeS3CSV(csv, "a-accounted", c.N); err != nil {
		return err
	}
	s0 := r.serverSnapshot(ctx)
	t0 := time.Now()
	res, cc, err := r.enqueueFile(ctx, csv, 0)
	if err != nil {
		return err
	}
	o.EnqueueSeconds = time.Since(t0).Seconds()
	o.EnqueueClient = cc
	o.EnqueueServer = delta(s0, r.serverSnapshot(ctx))
	o.MemPending = r.memory(ctx)

	s1 := r.serverSnapshot(ctx)
	var w *procWorker
	err = r.profile("a-accounted", func() error {
		var err error
		opts := instantOptions(c.Concurrency)
		opts.Storage = sim.S3
		w, err = r.startWorker(sim.URL, opts)
		if err != nil {
			return err
		}
		st, _, err := waitBatch(ctx, r.batches, res.BatchID, 10*time.Minute+time.Duration(c.N)*20*time.Millisecond)
		if err != nil {
			w.stop()
			return err
		}
		o.Validated = st.Counts[events.Validated]
		if o.Validated != int64(c.N) {
			o.NotValidated, err = r.notValidated(ctx, res.BatchID, 10)
		}
		return err
	})
	if err != nil {
		return err
	}
	o.ProcessServer = delta(s1, r.serverSnapshot(ctx))
	o.ProcessClient = w.count.snapshot()
	o.StorageReads, o.StorageReadsByType = w.reads(), w.readsByType()
	w.stop()
	o.MemDone = r.memory(ctx)
	return nil
}

// pipeline writes n fresh s3:// destinations under the scenario
// directory name, starts a worker with options o on a flushed database and
// measures, from the start of the enqueue to the last outcome, the users'
// path: the enqueue command (a process of its own, so that this process's
// CPU is the worker's; in this process when there is no binary) and the
// worker reading the challenge files from S3 through the AWS SDK.
func (r *runner) pipeline(ctx context.Context, name string, n int, sim *apiSim, o workerOptions) (sample, error) {
	if err := r.flush(ctx); err != nil {
		return sample{}, err
	}
	csv, _, err := r.scenarioDir(name)
	if err != nil {
		return sample{}, err
	}
	defer os.RemoveAll(filepath.Dir(csv))
	if err := writeS3CSV(csv, name, n); err != nil {
		return sample{}, err
	}
	o.Storage = sim.S3
	s0 := r.serverSnapshot(ctx)
	cpu0, sim0, calls0 := selfCPU(), sim.cpu(), sim.calls()
	w, err := r.startWorker(sim.URL, o)
	if err != nil {
		return sample{}, err
	}
	defer w.stop()
	start := time.Now()
	enqCPU, err := r.enqueueCommand(ctx, csv, name, o.Handler.Task)
	if err != nil {
		return sample{}, err
	}
	_, end, err := waitBatch(ctx, r.batches, name, 10*time.Minute+time.Duration(n)*20*time.Millisecond)
	if err != nil {
		return sample{}, err
	}
	k := 1000 / float64(n)
	s := sample{rate: float64(n) / end.Sub(start).Seconds(), cpu: (selfCPU() - cpu0 - enqCPU.inProcess).Seconds() * k,
		enqueueCPU: enqCPU.total().Seconds() * k,
		simCPU:     (sim.cpu() - sim0).Seconds() * k, apiCalls: float64(sim.calls()-calls0) / float64(n),
		roundTrips: float64(w.count.snapshot().RoundTrips) / float64(n)}
	if d := delta(s0, r.serverSnapshot(ctx)); d.Available {
		s.redisCPU = d.CPUSeconds * k
	}
	if m := r.memory(ctx); m.Available {
		s.memDone = float64(m.Bytes) / float64(n)
	}
	return s, nil
}

// enqueueCPU is the CPU an enqueue took: in a process of its own, or in
// this one (measured around it, so only approximately its own while a
// worker runs beside it).
type enqueueCPU struct{ child, inProcess time.Duration }

func (e enqueueCPU) total() time.Duration { return e.child + e.inProcess }

// enqueueCommand enqueues the CSV at path as batch id as users do: the
// enqueue command, without a budget or preflight, in a child process; with
// the producer in this process when there is no binary.
func (r *runner) enqueueCommand(ctx context.Context, path, id string, task tasks.Options) (enqueueCPU, error) {
	if r.env.Worker == nil {
		cpu := selfCPU()
		_, _, err := r.enqueueWith(ctx, path, producer.ClientConfig{BatchID: id, Task: task})
		return enqueueCPU{inProcess: selfCPU() - cpu}, err
	}
	args := []string{"enqueue", "--redis", r.url, "--api-rate", "0", "--batch-id", id, "--skip-preflight", "--format", "csv"}
	if task.Retention > 0 {
		args = append(args, "--task-retention", task.Retention.String())
	}
	cmd := r.env.Worker(append(args, path))
	cmd.Env = benchEnv(cmd.Env)
	out, err := cmd.CombinedOutput()
	if err := ctx.Err(); err != nil {
		return enqueueCPU{}, err
	}
	if err != nil {
		return enqueueCPU{}, fmt.Errorf("logpush-onboard enqueue: %w: %s", err, tail(string(out), 2000))
	}
	return enqueueCPU{child: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}, nil
}

// floorQueue is the queue of the floor's no-op tasks.
const floorQueue = "bench-floor"

// floor measures asynq alone: n destinations of three chained no-op tasks
// (the first enqueues the second, which enqueues the third), processed by
// one server of the given concurrency on its own client, with the worker's
// delayed-task check interval. Like the pipeline's, the enqueue is
// included: it returns the time from the start of the enqueue (16 at a
// time, the server running) to the last third task.
func (r *runner) floor(ctx context.Context, n, concurrency int) (time.Duration, ClientCount, ServerDelta, error) {
	rdb, cnt := r.newClient()
	defer rdb.Close()
	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	// A payload the size of a destination's (batch, scope, id, conf, time).
	payload := make([]byte, 220)
	for i := range payload {
		payload[i] = 'x'
	}
	var done atomic.Int64
	finished := make(chan struct{})
	next := func(typ string) asynq.HandlerFunc {
		return func(ctx context.Context, t *asynq.Task) error {
			_, err := client.EnqueueContext(ctx, asynq.NewTask(typ, t.Payload(), asynq.Queue(floorQueue)))
			return err
		}
	}
	mux := asynq.NewServeMux()
	mux.HandleFunc("floor:1", next("floor:2"))
	mux.HandleFunc("floor:2", next("floor:3"))
	mux.HandleFunc("floor:3", func(context.Context, *asynq.Task) error {
		if done.Add(1) == int64(n) {
			close(finished)
		}
		return nil
	})
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: concurrency, Queues: map[string]int{floorQueue: 1}, DelayedTaskCheckInterval: time.Second,
		ShutdownTimeout: 5 * time.Second, Logger: worker.AsynqLogger(r.log), LogLevel: asynq.WarnLevel,
	})
	c0 := cnt.snapshot()
	s0 := r.serverSnapshot(ctx)
	if err := srv.Start(mux); err != nil {
		return 0, ClientCount{}, ServerDelta{}, err
	}
	defer srv.Shutdown()
	start := time.Now()
	if err := parallel(ctx, n, 16, func(ctx context.Context, i int) error {
		_, err := client.EnqueueContext(ctx, asynq.NewTask("floor:1", payload, asynq.Queue(floorQueue)))
		return err
	}); err != nil {
		return 0, ClientCount{}, ServerDelta{}, fmt.Errorf("floor: enqueue: %w", err)
	}
	select {
	case <-finished:
	case <-ctx.Done():
		return 0, ClientCount{}, ServerDelta{}, ctx.Err()
	case <-time.After(10*time.Minute + time.Duration(n)*10*time.Millisecond):
		return 0, ClientCount{}, ServerDelta{}, fmt.Errorf("floor: %d of %d done", done.Load(), n)
	}
	d := time.Since(start)
	return d, cnt.snapshot().sub(c0), delta(s0, r.serverSnapshot(ctx)), nil
}

// parallel runs fn for 0..n-1 on workers goroutines and returns the first
// error.
func parallel(ctx context.Context, n, workers int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}
