package bench

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/budget"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// Tenants is scenario g: many Cloudflare users in one fleet, each with its
// own token and limit, one of them with half of the destinations.
type Tenants struct {
	N       int    `json:"n"`
	Tenants int    `json:"tenants"`
	Workers int    `json:"workers"`
	Rate    string `json:"rate_per_tenant"`
	Penalty string `json:"penalty"`
	Writes  string `json:"writes"`
	// PollFirst is the workers' --poll-first, the first look for a file
	// until 8 files were seen.
	PollFirst string `json:"poll_first"`
	// Validated counts the batch's validated destinations.
	Validated int64 `json:"validated"`
	// Makespan runs from the enqueue to the last outcome; Bound is the
	// slowest tenant's bound.
	Makespan float64 `json:"makespan_seconds"`
	Bound    float64 `json:"bound_seconds"`
	Ratio    float64 `json:"makespan_over_bound"`
	// RateLimited counts the simulator's 429s over all tenants.
	RateLimited int      `json:"rate_limited_429"`
	PerTenant   []Tenant `json:"per_tenant"`
	// SmallWorst is the largest done/bound of the tenants with less than a
	// tenth of the destinations.
	SmallWorst float64 `json:"small_tenants_worst_ratio"`
	// Unseen counts the tenants whose token validated nothing: their rows
	// went out under another credential.
	Unseen int `json:"tenants_unseen"`
	// StorageReads are the workers' storage requests (the read before a
	// challenge, and the polls) per validated destination.
	StorageReads float64 `json:"storage_reads_per_validated"`
}

// Tenant is one tenant's share of scenario g.
type Tenant struct {
	Name string `json:"name"`
	N    int    `json:"n"`
	// Bound is 2N/rate (a challenge and a validate per destination at the
	// tenant's own limit) plus the longest file delay, which the last
	// destination waits for after its challenge.
	Bound float64 `json:"bound_seconds"`
	// Done is when its last destination validated, from the enqueue;
	// First when its first challenge arrived.
	Done        float64 `json:"done_seconds"`
	First       float64 `json:"first_challenge_seconds"`
	Ratio       float64 `json:"done_over_bound"`
	RateLimited int     `json:"rate_limited_429"`
}

// tenantsRun runs scenario g: TenantsN destinations of Tenants tenants
// (one with half of them, the rest uneven), each tenant with its own token
// and its own enforced limit, named by a credentials file; Workers worker
// processes of the logpush-onboard binary, and its enqueue command.
func (r *runner) tenantsRun(ctx context.Context) error {
	c := r.cfg
	if r.env.Worker == nil {
		return fmt.Errorf("scenario g runs the logpush-onboard binary's worker and enqueue commands: no binary")
	}
	if err := r.flush(ctx); err != nil {
		return err
	}
	csv, _, err := r.scenarioDir("g")
	if err != nil {
		return err
	}
	shares := tenantShares(c.TenantsN, c.Tenants)
	credFile := filepath.Join(filepath.Dir(csv), "credentials.yaml")
	if err := writeTenants(csv, credFile, shares, c.RateLimit); err != nil {
		return err
	}
	rate := float64(c.RateLimit.Limit) / c.RateLimit.Window.Seconds()
	g := &Tenants{N: c.TenantsN, Tenants: c.Tenants, Workers: c.Workers, Rate: c.RateLimit.String(), Penalty: c.Penalty.String(),
		Writes: fmt.Sprintf("%s + [0, %s)", c.WriteDelay, c.WriteJitter)}
	r.rep.Tenants = g
	sim, err := newSim(simOptions{RateLimit: c.RateLimit, Penalty: c.Penalty, WriteDelay: c.WriteDelay, WriteJitter: c.WriteJitter, AnyToken: true, S3: true})
	if err != nil {
		return err
	}
	defer sim.close()
	var children []*child
	defer func() {
		for _, ch := range children {
			ch.stop()
		}
	}()
	extra := []string{"--credentials", credFile}
	if c.TenantsPollFirst > 0 {
		extra = append(extra, "--poll-first", c.TenantsPollFirst.String())
	}
	g.PollFirst = cmp.Or(c.TenantsPollFirst, worker.PollFirstDefault).String()
	for range c.Workers {
		ch, err := r.startChild(ctx, sim.URL, c.RateLimit.String(), c.Concurrency, s3Env(sim.s3URL), extra...)
		if err != nil {
			return err
		}
		children = append(children, ch)
	}
	const batch = "bench-g"
	start := time.Now()
	if err := r.runCommand(ctx, "enqueue", "--redis", r.url, "--credentials", credFile, "--api-rate", c.RateLimit.String(),
		"--batch-id", batch, "--skip-preflight", "--format", "csv", csv); err != nil {
		return err
	}
	timeout := 3*time.Duration(float64(c.TenantsN)/rate*float64(time.Second)) + 5*time.Minute
	st, end, err := waitBatch(ctx, r.batches, batch, timeout)
	if err != nil {
		return err
	}
	g.Validated, g.Makespan = st.Counts[events.Validated], end.Sub(start).Seconds()
	var reads float64
	for _, ch := range children {
		m, err := ch.scrape()
		if err != nil {
			return fmt.Errorf("worker metrics: %w", err)
		}
		reads += m["logpush_onboard_storage_requests_total"]
	}
	if g.Validated > 0 {
		g.StorageReads = reads / float64(g.Validated)
	}
	byToken := sim.byToken()
	for i, n := range shares {
		t := Tenant{Name: tenantName(i), N: n, Bound: 2*float64(n)/rate + (c.WriteDelay + c.WriteJitter).Seconds()}
		if tt, ok := byToken[tenantToken(i)]; ok {
			t.RateLimited = tt.limited
			if !tt.lastValid.IsZero() {
				t.Done = tt.lastValid.Sub(start).Seconds()
			}
			if !tt.firstChallenge.IsZero() {
				t.First = tt.firstChallenge.Sub(start).Seconds()
			}
		}
		if t.Done == 0 {
			g.Unseen++
		}
		t.Ratio = t.Done / t.Bound
		g.RateLimited += t.RateLimited
		g.Bound = max(g.Bound, t.Bound)
		if n*10 < c.TenantsN {
			g.SmallWorst = max(g.SmallWorst, t.Ratio)
		}
		g.PerTenant = append(g.PerTenant, t)
	}
	if g.Bound > 0 {
		g.Ratio = g.Makespan / g.Bound
	}
	return nil
}

// tenantShares spreads n destinations over k tenants: the first has half,
// the others share the rest in proportion to 1, 2, ..., k-1, each at
// least one.
func tenantShares(n, k int) []int {
	shares := make([]int, k)
	shares[0] = n / 2
	if k == 1 {
		shares[0] = n
		return shares
	}
	rest, weights := n-shares[0], k*(k-1)/2
	left := rest
	for i := 1; i < k; i++ {
		shares[i] = max(1, rest*i/weights)
		left -= shares[i]
	}
	shares[k-1] += left // rounding
	return shares
}

func tenantName(i int) string  { return fmt.Sprintf("tenant-%02d", i) }
func tenantToken(i int) string { return fmt.Sprintf("bench-tenant-%02d-token", i) }

// writeTenants writes the CSV (zone_id, destination_conf, credential) and
// the credentials file: each tenant its own token, at rate.
func writeTenants(csv, credFile string, shares []int, rate budget.Rate) error {
	var cf strings.Builder
	for i := range shares {
		fmt.Fprintf(&cf, "%s:\n  token: %s\n  api_rate: %s\n", tenantName(i), tenantToken(i), rate)
	}
	if err := os.WriteFile(credFile, []byte(cf.String()), 0o600); err != nil {
		return err
	}
	f, err := os.Create(csv)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "zone_id,destination_conf,credential")
	row := 0
	// Interleaved, so that the big tenant's rows do not all come first.
	left := slices.Clone(shares)
	for more := true; more; {
		more = false
		for i := range left {
			if left[i] == 0 {
				continue
			}
			left[i]--
			more = true
			row++
			fmt.Fprintf(w, "%032x,s3://%s/g/%05d?region=us-east-1,%s\n", row, s3Bucket, row, tenantName(i))
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runCommand runs the logpush-onboard binary with args, as the bench's
// worker processes run (the environment's Cloudflare and Redis settings
// replaced), and returns its error with the end of its output.
func (r *runner) runCommand(ctx context.Context, args ...string) error {
	cmd := r.env.Worker(args)
	cmd.Env = benchEnv(cmd.Env)
	out, err := cmd.CombinedOutput()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err != nil {
		return fmt.Errorf("logpush-onboard %s: %w: %s", args[0], err, tail(string(out), 2000))
	}
	return nil
}

// tail is the last n bytes of s.
func tail(s string, n int) string { return strings.TrimSpace(s[max(len(s)-n, 0):]) }
