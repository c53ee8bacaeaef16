package budget

import (
	"flag"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Rate
		str     string
		wantErr string // substring; "" means no error
	}{
		{in: "1200/5m", want: Rate{1200, 5 * time.Minute}, str: "1200/5m"},
		{in: "1100/300s", want: Rate{1100, 5 * time.Minute}, str: "1100/5m"},
		{in: "120/10s", want: Rate{120, 10 * time.Second}, str: "120/10s"},
		{in: " 60/m ", want: Rate{60, time.Minute}, str: "60/1m"},
		{in: "3600/h", want: Rate{3600, time.Hour}, str: "3600/1h"},
		{in: "10/1.5s", want: Rate{10, 1500 * time.Millisecond}, str: "10/1.5s"},
		{in: "1/1s", want: Rate{1, time.Second}, str: "1/1s"},
		{in: "1200", wantErr: `invalid rate "1200": want <limit>/<window>`},
		{in: "", wantErr: `invalid rate "": want <limit>/<window>`},
		{in: "0/5m", wantErr: `invalid rate "0/5m": limit "0" is not a positive integer`},
		{in: "-5/5m", wantErr: `invalid rate "-5/5m": limit "-5" is not a positive integer`},
		{in: "abc/5m", wantErr: `invalid rate "abc/5m": limit "abc" is not a positive integer`},
		{in: "1200/5", wantErr: `invalid rate "1200/5": window "5" is not a duration`},
		{in: "1200/", wantErr: `invalid rate "1200/": window "" is not a duration`},
		{in: "1200/fortnight", wantErr: `invalid rate "1200/fortnight": window "1fortnight" is not a duration`},
		{in: "10/500ms", wantErr: `invalid rate "10/500ms": window 500ms is shorter than 1s`},
		{in: "10/-5m", wantErr: `invalid rate "10/-5m": window -5m0s is shorter than 1s`},
	}
	for _, tt := range tests {
		got, err := ParseRate(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseRate(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			continue
		}
		if s := got.String(); s != tt.str {
			t.Errorf("ParseRate(%q).String() = %q; want %q", tt.in, s, tt.str)
		}
		if back, err := ParseRate(got.String()); err != nil || back != got {
			t.Errorf("ParseRate(%q) = %v, %v; want round trip to %v", got.String(), back, err, got)
		}
	}
}

func TestRateIsFlagValue(t *testing.T) {
	t.Parallel()
	var r Rate
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Var(&r, "api-rate", "budget")
	if err := fs.Parse([]string{"-api-rate", "600/1m"}); err != nil {
		t.Fatal(err)
	}
	if r != (Rate{600, time.Minute}) {
		t.Fatalf("flag set %v", r)
	}
}

// TestSizingBound checks the arithmetic of the package documentation on a
// model of redis_rate's GCRA (same inequalities, exact float64 times): a
// requester that asks at the earliest instant the limiter would allow never
// gets more than Limit grants into any closed window of length Window, and
// gets exactly Limit into some window (the budget is used in full).
func TestSizingBound(t *testing.T) {
	t.Parallel()
	for _, w := range []time.Duration{time.Second, 2 * time.Second, 10 * time.Second, 5 * time.Minute} {
		for limit := 1; limit <= 1300; limit += 1 + limit/10 {
			cfg := Config{Rate: Rate{limit, w}, Key: "k"}.WithDefaults()
			if err := cfg.validate(); err != nil {
				t.Fatal(err)
			}
			l := cfg.gcra()
			if limit > 1 && l.Rate+l.Burst != limit {
				t.Errorf("%s: rate %d + burst %d != limit", cfg.Rate, l.Rate, l.Burst)
			}
			period := l.Period.Seconds()
			T := period / float64(l.Rate)
			var grants []float64
			tat, now := 0.0, 0.0
			for len(grants) < 3*limit+5 {
				// redis_rate allowN: allowed iff now >= max(tat,now)+T-B*T.
				allowAt := math.Max(tat, now) + T - float64(l.Burst)*T
				if now < allowAt {
					now = allowAt // the greedy requester retries exactly then
					continue
				}
				grants = append(grants, now)
				tat = math.Max(tat, now) + T
			}
			secs := make([]time.Duration, len(grants))
			for i, g := range grants {
				secs[i] = time.Duration(math.Round(g * 1e9))
			}
			most := maxInWindow(secs, w)
			if most > limit {
				t.Errorf("%s (burst %d, rate %d/%s): %d grants in one window", cfg.Rate, l.Burst, l.Rate, l.Period, most)
			}
			if limit > 1 && most < limit {
				t.Errorf("%s: at most %d grants in a window; the budget is not used in full", cfg.Rate, most)
			}
		}
	}
	for _, tt := range []struct {
		rate   Rate
		burst  int
		steady int
	}{
		{Rate{}, 12, 1188}, // 1200/5m
		{Rate{1100, 5 * time.Minute}, 11, 1089},
		{Rate{120, 10 * time.Second}, 2, 118}, // T=85ms: lateness would cost more than a token
		{Rate{40, 2 * time.Second}, 2, 38},
		{Rate{20, time.Second}, 1, 19}, // 20*19*2ms < 1s
		{Rate{10, time.Minute}, 1, 9},
		{Rate{2, time.Second}, 1, 1},
		{Rate{1, time.Second}, 1, 1},
	} {
		l := Config{Key: "k", Rate: tt.rate}.WithDefaults().gcra()
		if l.Burst != tt.burst || l.Rate != tt.steady {
			t.Errorf("default for %s: %v; want burst %d, %d per window", tt.rate, l, tt.burst, tt.steady)
		}
	}
}

// maxInWindow returns the most grants any closed window [s, s+w] holds.
// times must be sorted.
func maxInWindow(times []time.Duration, w time.Duration) int {
	most, j := 0, 0
	for i := range times {
		for times[i]-times[j] > w {
			j++
		}
		most = max(most, i-j+1)
	}
	return most
}
