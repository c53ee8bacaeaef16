package cli

import (
	"flag"
	"testing"

	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
)

// tokenMode is one of the simulator's behaviours where Cloudflare's docs are
// silent: whether a token has claims to decode, and whether an earlier
// token of a destination still validates. The tests of shared paths, stale
// files, resumed runs and retries run in each: the path lease and the
// pre-challenge fingerprint must suffice, decoded claims being only an
// extra guard.
type tokenMode struct {
	name           string
	opaque, latest bool
}

var tokenModes = []tokenMode{{"claims", false, false}, {"opaque", true, false}, {"latest", false, true}, {"opaque+latest", true, true}}

// apply sets the mode on a simulator config.
func (m tokenMode) apply(c simulator.Config) simulator.Config {
	c.OpaqueTokens, c.LatestTokenOnly = m.opaque, m.latest
	return c
}

// flags sets the mode on the simulator's flags.
func (m tokenMode) flags(s simFlags) simFlags {
	s.opaqueTokens, s.latestTokenOnly = m.opaque, m.latest
	return s
}

// checkTokens fails t if the simulator saw a validate call with another
// destination's token or a stale one.
func checkTokens(t *testing.T, st simulator.Stats) {
	t.Helper()
	if st.ForeignTokens != 0 || st.StaleTokens != 0 {
		t.Errorf("validate calls with another destination's token: %d, with a stale one: %d; want 0 and 0", st.ForeignTokens, st.StaleTokens)
	}
}

// TestSimulateTokenModeFlags: simulate (and demo) set the token modes from
// --opaque-tokens and --latest-token-only; both are off by default.
func TestSimulateTokenModeFlags(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args           []string
		opaque, latest bool
	}{{nil, false, false}, {[]string{"--opaque-tokens"}, true, false}, {[]string{"--latest-token-only", "--opaque-tokens"}, true, true}} {
		var s simFlags
		fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
		s.register(fs)
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		cfg, err := s.config(&destination.File{}, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.OpaqueTokens != c.opaque || cfg.LatestTokenOnly != c.latest {
			t.Errorf("%v: opaque %t latest %t, want %t %t", c.args, cfg.OpaqueTokens, cfg.LatestTokenOnly, c.opaque, c.latest)
		}
	}
}
