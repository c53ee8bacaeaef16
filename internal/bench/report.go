package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is everything one bench run measured; the JSON output.
type Report struct {
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished"`
	Quick     bool      `json:"quick"`
	Scenarios []string  `json:"scenarios"`
	Machine   Machine   `json:"machine"`
	Redis     RedisInfo `json:"redis"`
	LoadAfter string    `json:"load_average_after"`
	// Dir holds the CSVs and the file:// destinations (the simulator's
	// bucket).
	Dir string `json:"dir"`

	Overhead *Overhead  `json:"a_overhead,omitempty"`
	Budget   *Budget    `json:"b_budget,omitempty"`
	Latency  []*Latency `json:"c_latency,omitempty"`
	Shared   *Shared    `json:"f_shared_paths,omitempty"`
	Tenants  *Tenants   `json:"g_tenants,omitempty"`
	Enqueue  *Enqueue   `json:"e_enqueue,omitempty"`
	Process  *Process   `json:"d_worker_process,omitempty"`

	// Rows is the printed table.
	Rows []Row `json:"rows"`
}

// Machine describes where the bench ran.
type Machine struct {
	CPU        string `json:"cpu"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	OS         string `json:"os"`
	Go         string `json:"go"`
	MemTotal   string `json:"mem_total"`
	LoadBefore string `json:"load_average_before"`
}

// RedisInfo describes the measured Redis.
type RedisInfo struct {
	Addr     string `json:"addr"`
	DB       int    `json:"db"`
	Version  string `json:"version"`
	Embedded bool   `json:"embedded"`
	Flushed  bool   `json:"flushed"`
	Leased   string `json:"lease_key,omitempty"`
	AOF      bool   `json:"aof"`
	Save     string `json:"save"`
}

// Row is one line of the table.
type Row struct {
	Scenario string `json:"scenario"`
	Metric   string `json:"metric"`
	Value    string `json:"value"`
	Target   string `json:"target,omitempty"`
	// Verdict is "ok" or "MISS" when there is a target.
	Verdict string `json:"verdict,omitempty"`
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version(),
		OS: runtime.GOOS + "/" + runtime.GOARCH, LoadBefore: loadavg()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.OS += " " + strings.TrimSpace(string(b))
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				m.MemTotal = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	return m
}

// loadavg is /proc/loadavg's first three fields: other work on the
// machine skews every timing.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// header says at once what the bench runs on, and that it flushes.
func (r *runner) header() {
	w := r.env.Stdout
	m := r.rep.Machine
	fmt.Fprintf(w, "logpush-onboard bench: %s, %d CPUs (GOMAXPROCS %d), %s, %s, %s; load %s\n",
		m.CPU, m.CPUs, m.GOMAXPROCS, m.MemTotal, m.OS, m.Go, m.LoadBefore)
	ri := r.rep.Redis
	if ri.Embedded {
		fmt.Fprintf(w, "redis: EMBEDDED (miniredis at %s): timings are not a real Redis's; server-side counters and memory are not available\n", ri.Addr)
	} else {
		fmt.Fprintf(w, "redis: %s at %s, database %d: FLUSHED before and between scenarios (lease %s)\n", ri.Version, ri.Addr, ri.DB, ri.Leased)
	}
	fmt.Fprintf(w, "destinations: a, c and g: s3:// on an in-memory S3 (in the simulator's process for a), read through the AWS SDK; the others: file:// under %s (the simulator's bucket)\n", r.dir)
	fmt.Fprintln(w, "workers: a, c and d's Redis figures run the worker in this process (same packages and defaults as the worker command);"+
		" b and d's CPU and RSS run worker processes")
	if r.env.Worker == nil {
		fmt.Fprintln(w, "worker processes: none available (not the built binary): b runs its workers IN THIS PROCESS; d's CPU and RSS are not measured")
	}
	if r.cfg.Quick {
		fmt.Fprintln(w, "QUICK run: small N, figures prove the bench works and mean little")
	}
}

func f1(v float64) string { return fmt.Sprintf("%.1f", v) }
func f2(v float64) string { return fmt.Sprintf("%.2f", v) }

// ms is seconds per 1000 destinations as milliseconds per destination.
func ms(perThousand float64) string { return fmt.Sprintf("%.2f ms", perThousand) }

func secs(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.2f s", v)
	}
	return fmt.Sprintf("%.1f s", v)
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISS"
}

// perDest formats a count per destination.
func perDest(v int64, n int) string {
	if n == 0 {
		return "-"
	}
	return f1(float64(v) / float64(n))
}

// rows turns the results into the table.
func (r *runner) rows() []Row {
	var rows []Row
	add := func(s, metric, value, target, v string) {
		rows = append(rows, Row{Scenario: s, Metric: metric, Value: value, Target: target, Verdict: v})
	}
	c := r.cfg
	rep := r.rep
	if o := rep.Overhead; o != nil && c.has("a") {
		runs := func(a AltRate) string {
			if len(a.Rates) < 2 {
				return ""
			}
			parts := make([]string, len(a.Rates))
			for i, v := range a.Rates {
				parts[i] = fmt.Sprintf("%.0f", v)
			}
			return " [" + strings.Join(parts, ", ") + "]"
		}
		simWhere := "simulator in its own process"
		if !o.SimulatorProcess {
			simWhere = "simulator IN-PROCESS"
		}
		add("a", fmt.Sprintf("pipeline: %d s3:// destinations (S3 server in the simulator's process, read through the AWS SDK), enqueue command included, instant files, no budget, first poll at once, worker in-process, %s, concurrency %d (median of %d runs)",
			o.N, simWhere, o.Concurrency, len(o.Pipeline.Rates)), fmt.Sprintf("%s dest/s%s", f1(o.Pipeline.Rate), runs(o.Pipeline)), "", "")
		add("a", "asynq floor: 3 chained no-op tasks per destination, same Redis and concurrency, enqueue included",
			fmt.Sprintf("%s dest/s%s", f1(o.Floor.Rate), runs(o.Floor)), "", "")
		add("a", "pipeline / floor", f2(o.Ratio), ">= 0.50", verdict(o.Ratio >= 0.5))
		if o.SimulatorProcess {
			add("a", "worker CPU per destination (this process)", ms(o.Pipeline.CPU), "<= 0.7 ms", verdict(o.Pipeline.CPU > 0 && o.Pipeline.CPU <= 0.7))
			add("a", "CPU per 1000 destinations, this process (worker | asynq and its enqueue): pipeline / floor",
				fmt.Sprintf("%s / %s", secs(o.Pipeline.CPU), secs(o.Floor.CPU)), "", "")
			add("a", "CPU per 1000 destinations, enqueue command's process", secs(o.Pipeline.EnqueueCPU), "", "")
			add("a", fmt.Sprintf("CPU per 1000 destinations, simulator process (answers %.1f API calls/dest, serves S3 and writes the files)", o.Pipeline.APICalls),
				secs(o.Pipeline.SimCPU), "", "")
		} else {
			add("a", "CPU per 1000 destinations, this process (worker + enqueue + simulator + S3 | asynq): pipeline / floor",
				fmt.Sprintf("%s / %s", secs(o.Pipeline.CPU), secs(o.Floor.CPU)), "", "")
		}
		if o.ProcessServer.Available {
			add("a", "Redis server CPU per destination: pipeline / floor",
				fmt.Sprintf("%s / %s", ms(o.Pipeline.RedisCPU), ms(o.Floor.RedisCPU)), "", "")
			add("a", "floor CPU / pipeline CPU: worker, enqueue and Redis (the ratio if CPU were the only limit)", f2(o.CPURatio), "", "")
			if o.SimulatorProcess {
				add("a", "the same with the simulator's CPU added to the pipeline's", f2(o.CPURatioWithSimulator), "", "")
			}
		}
		for _, a := range o.Alternatives {
			add("a", "alternative: "+a.Name, fmt.Sprintf("%s dest/s (/ floor %s)%s; %.1f round trips/dest; CPU/1000 %s + enqueue %s + simulator %s + Redis %s",
				f1(a.Rate), f2(a.Ratio), runs(a), a.RoundTrips, secs(a.CPU), secs(a.EnqueueCPU), secs(a.SimCPU), secs(a.RedisCPU)), ">= 0.50", verdict(a.Ratio >= 0.5))
		}
	}
	if b := rep.Budget; b != nil {
		where := fmt.Sprintf("%d worker processes", b.Workers)
		if b.InProcess {
			where = fmt.Sprintf("%d workers IN-PROCESS", b.Workers)
		}
		add("b", fmt.Sprintf("makespan: %d destinations, %s, limit %s, penalty %s, files after %s", b.N, where, b.Rate, b.Penalty, b.Writes),
			secs(b.Makespan), "", "")
		add("b", "lower bound 2N/rate", secs(b.Bound), "", "")
		add("b", "makespan / bound", f2(b.Ratio), "<= 1.05", verdict(b.Ratio <= 1.05))
		add("b", "429 answers (rate limit exceeded, incl. penalty)", fmt.Sprint(b.RateLimited), "0", verdict(b.RateLimited == 0))
		add("b", "most requests in any window", fmt.Sprintf("%d of %d", b.MaxInWindow, b.Limit), "", "")
		add("b", "budget utilisation (successful calls / limit x makespan)", fmt.Sprintf("%.1f%%", 100*b.Utilisation), "", "")
		add("b", fmt.Sprintf("validated / failed (of %d)", b.N), fmt.Sprintf("%d / %d", b.Validated, b.Failed), "", "")
		add("b", "file -> validate latency under the budget: median / p95", fmt.Sprintf("%s / %s", secs(b.Median), secs(b.P95)), "", "")
		if n := b.Naive; n != nil {
			add("b", fmt.Sprintf("naive script (one at a time, poll every 1s): %d destinations", n.Done),
				fmt.Sprintf("%s (%s each)", secs(n.Seconds), secs(n.PerDest)), "", "")
			add("b", fmt.Sprintf("naive makespan for %d, projected", b.N), secs(n.Projected), "", "")
			add("b", "speedup over naive", fmt.Sprintf("%.1fx", n.Speedup), "", "")
		}
	}
	for _, l := range rep.Latency {
		if !c.has("c") {
			break
		}
		add("c", fmt.Sprintf("file -> validate latency, %s (%d destinations, files after %s + [0, %s), no budget): median / p95 / max",
			l.Name, l.N, c.WriteDelay, c.WriteJitter),
			fmt.Sprintf("%s / %s / %s", secs(l.Median), secs(l.P95), secs(l.Max)), "median <= 2 s", verdict(l.Samples > 0 && l.Median <= 2))
		add("c", fmt.Sprintf("storage requests per validated destination, %s", l.Name), f2(l.ReadsPerValidated), "<= 1.5",
			verdict(l.Validated > 0 && l.ReadsPerValidated <= 1.5))
	}
	if c.has("d") {
		if o := rep.Overhead; o != nil {
			add("d", fmt.Sprintf("Redis round trips per destination (client side, exact): enqueue / processing (a, N=%d)", o.N),
				fmt.Sprintf("%s / %s", perDest(o.EnqueueClient.RoundTrips, o.N), perDest(o.ProcessClient.RoundTrips, o.N)), "", "")
			if o.EnqueueServer.Available {
				add("d", "Redis commands per destination incl. inside scripts (server, INFO commandstats): enqueue / processing",
					fmt.Sprintf("%s / %s", perDest(o.EnqueueServer.Commands, o.N), perDest(o.ProcessServer.Commands, o.N)), "", "")
				add("d", "Redis network bytes per destination, in / out: enqueue + processing",
					fmt.Sprintf("%s / %s", perDest(o.EnqueueServer.NetIn+o.ProcessServer.NetIn, o.N), perDest(o.EnqueueServer.NetOut+o.ProcessServer.NetOut, o.N)), "", "")
				add("d", "asynq floor for comparison: round trips / server commands per destination",
					fmt.Sprintf("%s / %s", perDest(o.FloorClient.RoundTrips, o.N), perDest(o.FloorServer.Commands, o.N)), "", "")
			}
			if o.MemPending.Available {
				add("d", "Redis bytes per destination while pending (MEMORY USAGE)", perDest(o.MemPending.Bytes, o.N), "", "")
				add("d", "Redis bytes per destination after completion (no task kept, state 7d, stream <= 200000 entries)",
					perDest(o.MemDone.Bytes, o.N), "", "")
				m := o.MemDone.ByKind
				add("d", "  of which: asynq (task hashes and sets) / destination state (7d) / events stream (capped)",
					fmt.Sprintf("%s / %s / %s", perDest(m["asynq task hashes"]+m["asynq completed set"], o.N),
						perDest(m["destination state"], o.N), perDest(m["events stream"], o.N)), "", "")
				add("d", "Redis memory after completing 100000 destinations, projected (until the 7d state TTL expires)",
					mib(float64(o.MemDone.Bytes)/float64(o.N)*100000), "", "")
				for _, a := range o.Alternatives {
					if a.Retention && a.MemDoneBytes > 0 {
						add("d", "alternative: Redis bytes per destination after completion, "+a.Name, f1(a.MemDoneBytes), "", "")
					}
				}
			}
		}
		for _, l := range rep.Latency {
			if l.Default {
				add("d", "storage requests per validated destination (c, defaults)", f2(l.ReadsPerValidated), "<= 1.5",
					verdict(l.Validated > 0 && l.ReadsPerValidated <= 1.5))
			}
		}
		if b := rep.Budget; b != nil && !b.InProcess {
			add("d", "storage requests per validated destination (b, worker metrics)", f2(b.StorageReads), "<= 1.5", verdict(b.StorageReads <= 1.5))
			add("d", fmt.Sprintf("worker CPU per 1000 destinations (b: %d processes under the budget)", b.Workers), secs(b.CPUPer1000), "", "")
			if b.Server.Available {
				add("d", "Redis commands per destination incl. inside scripts, under the budget (b) / Redis CPU per 1000",
					fmt.Sprintf("%s / %s", perDest(b.Server.Commands, b.N), secs(b.Server.CPUSeconds/float64(b.N)*1000)), "", "")
			}
		}
		if p := rep.Process; p != nil {
			if p.Measured {
				add("d", fmt.Sprintf("worker CPU per 1000 destinations (1 process, no budget, instant files, %d destinations in %s, includes start-up)", p.N, secs(p.Seconds)),
					secs(p.CPUPer1000), "", "")
				add("d", fmt.Sprintf("worker peak RSS with %d destinations enqueued (%s of work: %d challenges); of which anonymous (heap, stacks)",
					p.Enqueued, secs(p.Window), p.Challenges),
					fmt.Sprintf("%s; %s", mib(float64(p.PeakRSS)), mib(float64(p.PeakAnon))), "< 150 MiB", verdict(p.PeakRSS < 150<<20))
			} else {
				add("d", "worker CPU and peak RSS", "not measured: no worker binary (run the built logpush-onboard)", "", "")
			}
		}
	}
	if e := rep.Enqueue; e != nil && c.has("e") {
		add("e", fmt.Sprintf("enqueue a %d-row CSV (check pass + enqueue pass, producer concurrency %d)", e.N, e.Concurrency),
			fmt.Sprintf("%s lines/s (%s)", f1(e.Rate), secs(e.Seconds)), "", "")
		if e.AltRate > 0 {
			add("e", fmt.Sprintf("alternative: producer concurrency %d", e.AltConcurrency), fmt.Sprintf("%s lines/s", f1(e.AltRate)), "", "")
		}
		add("e", "check pass alone (read, parse, validate, hash)", fmt.Sprintf("%s lines/s (%s)", f1(e.CheckRate), secs(e.CheckSeconds)), "", "")
		add("e", "Redis round trips per line (client side)", perDest(e.Client.RoundTrips, e.N), "", "")
		if e.Memory.Available {
			add("e", fmt.Sprintf("Redis memory for %d pending destinations", e.N),
				fmt.Sprintf("%s (%s bytes each)", mib(float64(e.Memory.Bytes)), perDest(e.Memory.Bytes, e.N)), "", "")
		}
	}
	if f := rep.Shared; f != nil && c.has("f") {
		add("f", fmt.Sprintf("shared paths: %d destinations on %d paths, files after %s, budget %s, validated", f.N, f.Paths, c.WriteDelay, f.Rate),
			fmt.Sprint(f.Validated), "", "")
		add("f", "makespan / bound (max of 2N/rate and the slowest path's file delays + one call each)",
			fmt.Sprintf("%s (%.1f s / %.1f s; budget %.1f s, serial %.1f s)", f2(f.Ratio), f.Makespan, f.Bound, f.BudgetBound, f.SerialBound),
			"<= 1.10", verdict(f.Ratio <= 1.1))
		add("f", "path idle from a validate to the next challenge, median (p95)",
			fmt.Sprintf("%.3f s (%.3f s)", f.IdleMedian, f.IdleP95), "< 0.3 s", verdict(f.IdleMedian < 0.3))
		add("f", "on a path, median: challenge -> file written / file written -> validate call",
			fmt.Sprintf("%.3f s / %.3f s", f.WriteMedian, f.DetectMedian), "", "")
		add("f", "validate calls with another destination's token; challenges per destination",
			fmt.Sprintf("%d; %s", f.Foreign, f2(f.Challenges)), "0", verdict(f.Foreign == 0))
	}
	if g := rep.Tenants; g != nil && c.has("g") {
		add("g", fmt.Sprintf("tenants: %d destinations of %d tenants (one with half), %d worker processes, %s each (penalty %s), files after %s, --poll-first %s, validated",
			g.N, g.Tenants, g.Workers, g.Rate, g.Penalty, g.Writes, g.PollFirst), fmt.Sprint(g.Validated), fmt.Sprint(g.N), verdict(g.Validated == int64(g.N)))
		add("g", "makespan / bound (the slowest tenant's 2N/rate + the longest file delay)",
			fmt.Sprintf("%s (%.1f s / %.1f s)", f2(g.Ratio), g.Makespan, g.Bound), "<= 1.10", verdict(g.Ratio <= 1.1))
		add("g", "429 answers, all tenants", fmt.Sprint(g.RateLimited), "0", verdict(g.RateLimited == 0))
		add("g", "small tenants (under a tenth of the rows): worst done / own bound",
			f2(g.SmallWorst), "<= 1.20", verdict(g.SmallWorst <= 1.2 && g.Unseen == 0))
		add("g", "tenants whose own token validated nothing", fmt.Sprint(g.Unseen), "0", verdict(g.Unseen == 0))
		add("g", "storage requests per validated destination (workers' metrics)", f2(g.StorageReads), "<= 1.5",
			verdict(g.Validated > 0 && g.StorageReads <= 1.5))
		for _, t := range g.PerTenant {
			add("g", fmt.Sprintf("  %s: %d destinations, first challenge, done / bound, 429s", t.Name, t.N),
				fmt.Sprintf("%.1f s, %.1f s / %.1f s = %s; %d", t.First, t.Done, t.Bound, f2(t.Ratio), t.RateLimited), "", "")
		}
	}
	return rows
}

// printTable writes the rows as a table.
func printTable(out io.Writer, rep *Report) {
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\tmetric\tvalue\ttarget\t")
	for _, r := range rep.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Scenario, r.Metric, r.Value, r.Target, r.Verdict)
	}
	tw.Flush()
	fmt.Fprintf(out, "\nfinished in %s; load average after: %s\n", rep.Finished.Sub(rep.Started).Round(time.Second), rep.LoadAfter)
}
