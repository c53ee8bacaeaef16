package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/budget"
)

// Shared is scenario f: destinations that share challenge-file paths, so
// that each path onboards one destination at a time.
type Shared struct {
	N     int `json:"n"`
	Paths int `json:"paths"`
	// Rate is the API budget the worker runs under.
	Rate      string  `json:"rate"`
	Validated int64   `json:"validated"`
	Makespan  float64 `json:"makespan_seconds"`
	// BudgetBound is 2N/rate; SerialBound, for the slowest path, the sum
	// over its destinations of the file's appearance delay and one API
	// call; Bound is the larger.
	BudgetBound float64 `json:"budget_bound_seconds"`
	SerialBound float64 `json:"serial_bound_seconds"`
	Bound       float64 `json:"bound_seconds"`
	Ratio       float64 `json:"makespan_over_bound"`
	// Idle is how long a path sits between one destination's successful
	// validate and the next destination's challenge: median and p95.
	IdleMedian float64 `json:"idle_median_seconds"`
	IdleP95    float64 `json:"idle_p95_seconds"`
	// WriteMedian is the median from a challenge to its file's write;
	// DetectMedian from the write to the validate call.
	WriteMedian  float64 `json:"write_median_seconds"`
	DetectMedian float64 `json:"detect_median_seconds"`
	// Foreign counts validate calls with another destination's token.
	Foreign int `json:"foreign_tokens"`
	// Challenges is challenges issued per destination.
	Challenges float64 `json:"challenges_per_destination"`
}

// sharedRun runs scenario f: SharedN destinations on SharedPaths paths,
// zones and accounts alternating, files after WriteDelay (no jitter, so the
// serial bound is known), one in-process worker under the default API
// budget scaled to a minute.
func (r *runner) sharedRun(ctx context.Context) error {
	c := r.cfg
	if err := r.flush(ctx); err != nil {
		return err
	}
	csv, dests, err := r.scenarioDir("f")
	if err != nil {
		return err
	}
	if err := writeSharedCSV(csv, dests, c.SharedN, c.SharedPaths); err != nil {
		return err
	}
	sim, err := newSim(simOptions{WriteDelay: c.WriteDelay, Track: true})
	if err != nil {
		return err
	}
	defer sim.close()
	rate := budget.Rate{Limit: 1200, Window: time.Minute}
	res, _, err := r.enqueueFile(ctx, csv, 0)
	if err != nil {
		return err
	}
	w, err := r.startWorker(sim.URL, workerOptions{Concurrency: c.Concurrency, Rate: rate})
	if err != nil {
		return err
	}
	start := time.Now()
	st, end, err := waitBatch(ctx, r.batches, res.BatchID, 10*time.Minute)
	w.stop()
	if err != nil {
		return err
	}
	s := &Shared{N: c.SharedN, Paths: c.SharedPaths, Rate: rate.String(), Validated: st.Counts[events.Validated],
		Makespan: end.Sub(start).Seconds()}
	s.BudgetBound = float64(2*c.SharedN) / (float64(rate.Limit) / rate.Window.Seconds())
	var idle []time.Duration
	for _, tr := range sim.tracks() {
		// Per path: its destinations' file delays plus one call each.
		slices.SortFunc(tr.writes, time.Time.Compare)
		serial := time.Duration(0)
		for i, ch := range tr.challenges {
			if i < len(tr.writes) {
				serial += tr.writes[i].Sub(ch)
			}
		}
		serial += time.Duration(len(tr.challenges)) * sim.medianCall()
		s.SerialBound = max(s.SerialBound, serial.Seconds())
		slices.SortFunc(tr.challenges, time.Time.Compare)
		for _, v := range tr.valid {
			// The next challenge on this path after the validate.
			i, _ := slices.BinarySearchFunc(tr.challenges, v, time.Time.Compare)
			if i < len(tr.challenges) {
				idle = append(idle, tr.challenges[i].Sub(v))
			}
		}
	}
	var toWrite, toValid []time.Duration
	for _, tr := range sim.tracks() {
		slices.SortFunc(tr.writes, time.Time.Compare)
		slices.SortFunc(tr.valid, time.Time.Compare)
		for i := range min(len(tr.challenges), len(tr.writes), len(tr.valid)) {
			toWrite = append(toWrite, tr.writes[i].Sub(tr.challenges[i]))
			toValid = append(toValid, tr.valid[i].Sub(tr.writes[i]))
		}
	}
	s.WriteMedian, s.DetectMedian = quantile(toWrite, 0.5), quantile(toValid, 0.5)
	s.Bound = max(s.BudgetBound, s.SerialBound)
	if s.Bound > 0 {
		s.Ratio = s.Makespan / s.Bound
	}
	s.IdleMedian, s.IdleP95 = quantile(idle, 0.5), quantile(idle, 0.95)
	stats := sim.sim.Stats()
	s.Foreign = stats.ForeignTokens
	s.Challenges = float64(stats.ChallengesIssued) / float64(c.SharedN)
	r.rep.Shared = s
	return r.flush(ctx)
}

// writeSharedCSV writes n file:// destinations spread over paths shared
// directories, zones and accounts alternating.
func writeSharedCSV(path, destDir string, n, paths int) error {
	for p := range paths {
		if err := os.MkdirAll(filepath.Join(destDir, fmt.Sprintf("shared-%d", p)), 0o755); err != nil {
			return err
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	fmt.Fprintln(bw, "zone_id,account_id,destination_conf")
	for i := range n {
		dir := filepath.Join(destDir, fmt.Sprintf("shared-%d", i%paths))
		if i%2 == 1 {
			fmt.Fprintf(bw, ",%032x,file://%s\n", i+1, dir)
		} else {
			fmt.Fprintf(bw, "%032x,,file://%s\n", i+1, dir)
		}
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
