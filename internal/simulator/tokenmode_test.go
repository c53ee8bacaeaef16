package simulator_test

import (
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
)

// TestTokenModes: where Cloudflare's docs are silent the simulator offers
// both behaviours. Opaque tokens carry no claims a client could decode, and
// with LatestTokenOnly an earlier token of a destination is refused like a
// wrong one (1002), counted as stale; another destination's token is
// foreign in every mode.
func TestTokenModes(t *testing.T) {
	t.Parallel()
	const other = "c3f2a9c1d0e4b5a6978877665544332b"
	for _, m := range []struct {
		name           string
		opaque, latest bool
	}{{"claims", false, false}, {"opaque", true, false}, {"latest", false, true}, {"opaque+latest", true, true}} {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, simulator.Config{OpaqueTokens: m.opaque, LatestTokenOnly: m.latest, TokenTTL: time.Hour})
			b.challenge(t, "zones", zoneID, conf)
			waitFor(t, func() bool { return len(b.w.all()) == 1 })
			b.clock.Advance(time.Second)
			b.challenge(t, "zones", zoneID, conf)
			waitFor(t, func() bool { return len(b.w.all()) == 2 })
			b.challenge(t, "zones", other, conf)
			waitFor(t, func() bool { return len(b.w.all()) == 3 })
			w := b.w.all()
			first, latest, foreign := w[0].body, w[1].body, w[2].body
			if first == latest {
				t.Fatal("two challenges gave the same token")
			}
			for _, tok := range []string{first, latest, foreign} {
				if !cloudflare.IsChallengeText(tok) || len(tok) > 4096 {
					t.Fatalf("token %q does not fit the schema's pattern", tok)
				}
				_, decodes := cloudflare.ParseClaims(tok)
				if decodes == m.opaque {
					t.Fatalf("ParseClaims ok = %t in mode %s", decodes, m.name)
				}
				if v := cloudflare.TokenFor(tok, "zone", zoneID, conf, b.clock.Now()); m.opaque && v != cloudflare.TokenUnknown {
					t.Fatalf("an opaque token's verdict = %v, want unknown", v)
				}
			}
			wantFirst := 200
			if m.latest {
				wantFirst = 400
			}
			checks := []struct {
				name string
				id   string
				tok  string
				want int
			}{
				{"earlier token", zoneID, first, wantFirst},
				{"other zone's token", zoneID, foreign, 400},
				{"token for the other zone", other, latest, 400},
				{"never issued", zoneID, latest[:len(latest)-4] + "AAAA", 400},
				{"latest token", zoneID, latest, 200},
				{"latest token again", zoneID, latest, 200},
				{"other zone's own", other, foreign, 200},
			}
			for _, c := range checks {
				if got := b.validate(t, "zones", c.id, conf, c.tok); got != c.want {
					t.Errorf("%s: status %d, want %d", c.name, got, c.want)
				}
			}
			st := b.sim.Stats()
			wantStale := 0
			if m.latest {
				wantStale = 1
			}
			if st.ForeignTokens != 2 || st.StaleTokens != wantStale {
				t.Errorf("foreign %d stale %d, want 2 and %d", st.ForeignTokens, st.StaleTokens, wantStale)
			}
			b.clock.Advance(time.Hour)
			if got := b.validate(t, "zones", zoneID, conf, latest); got != 400 {
				t.Errorf("expired latest token: status %d, want 400", got)
			}
			if st := b.sim.Stats(); st.StaleTokens != wantStale+1 {
				t.Errorf("an expired token is not counted stale: %d", st.StaleTokens)
			}
		})
	}
}
