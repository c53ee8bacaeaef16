package cli

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/budget"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

// BenchmarkPlan plans an account of 10,000 zones against the simulator:
// the calls are 200 zone pages plus one job listing per zone (none with
// --skip-existing-check), and our code's time per call is what the budget
// must dwarf (Cloudflare's 1200 per 5 minutes grants one call per 250 ms).
// The budget-bound case runs the same plan on a Redis budget of 2000 calls
// a second to show the plan's duration follows the budget.
func BenchmarkPlan(b *testing.B) {
	const n = 10_000
	zones := make([]simulator.Zone, n)
	for i := range zones {
		zones[i] = simulator.Zone{ID: fmt.Sprintf("%032x", 0x100000+i), Name: fmt.Sprintf("z%05d.example.com", i), Status: "active", AccountID: planAccount}
	}
	sim, err := simulator.New(simulator.Config{Write: func(context.Context, string, string, []byte) error { return nil }, Zones: zones})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(sim.Close)
	srv := httptest.NewServer(sim)
	b.Cleanup(srv.Close)
	api, err := cloudflare.New(cloudflare.Config{BaseURL: srv.URL, Credentials: cloudflare.Credentials{APIToken: "bench"}})
	if err != nil {
		b.Fatal(err)
	}
	spec := planSpec{accounts: []string{planAccount}, datasets: []planDataset{{name: "http_requests", scope: cloudflare.ScopeZone}},
		zoneTmpl: "s3://logs/{zone_name}/{DATE}?region=us-east-1", status: "active", tsFormat: "rfc3339", concurrency: 8}
	for _, c := range []struct {
		name   string
		skip   bool
		budget bool
	}{{"existing-check", false, false}, {"skip-existing-check", true, false}, {"budget-2000per1s", false, true}} {
		b.Run(c.name, func(b *testing.B) {
			s := spec
			s.skip = c.skip
			var calls, listings, pages int
			var elapsed time.Duration
			for i := 0; i < b.N; i++ {
				p := &planner{api: api, retry: cloudflare.VerifyPolicy{Attempts: 8}}
				if c.budget {
					b.StopTimer()
					rdb, _ := testutil.Redis(b)
					bg, err := budget.New(rdb, budget.Config{Rate: budget.Rate{Limit: 2000, Window: time.Second}, Key: fmt.Sprintf("bench-%d", i)})
					if err != nil {
						b.Fatal(err)
					}
					p.budget = bg
					b.StartTimer()
				}
				start := time.Now()
				res, err := p.makePlan(context.Background(), s)
				elapsed += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				if len(res.rows) != n {
					b.Fatalf("%d rows", len(res.rows))
				}
				calls, listings, pages = res.calls, res.listings, res.pages
			}
			if want := pages; !c.skip && calls != pages+n || c.skip && calls != want {
				b.Fatalf("%d calls for %d pages and %d listings", calls, pages, listings)
			}
			b.ReportMetric(float64(calls), "calls/op")
			b.ReportMetric(float64(pages), "pages/op")
			b.ReportMetric(float64(listings), "listings/op")
			b.ReportMetric(float64(elapsed.Microseconds())/float64(b.N*calls), "µs/call")
		})
	}
}
