package examples_test

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// TestEmbed runs examples/embed, a module of its own that compiles against
// the public packages only, against the simulator: it enqueues a batch from
// Go and runs a worker on miniredis until every destination has an outcome.
func TestEmbed(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	files := &destination.File{}
	sim, err := simulator.New(simulator.Config{APIToken: "embed-token", WriteDelay: 200 * time.Millisecond,
		Write: func(ctx context.Context, conf, filename string, body []byte) error {
			c, err := tasks.ParseConf(conf)
			if err != nil {
				return err
			}
			return files.Write(ctx, destination.For(c, nil, filename), body)
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", ".")
	cmd.Dir = "embed"
	cmd.Env = append(os.Environ(), "CLOUDFLARE_API_URL="+srv.URL+"/client/v4", "CLOUDFLARE_API_TOKEN=embed-token", "EMBED_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go run ./examples/embed: %v\n%s", err, out)
	}
	for _, want := range []string{"challenges paced at the API budget: one every ", "4 destinations, 3 need a challenge", "validated     3", "not_required  1"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "embed-token") || strings.Contains(string(out), "c2VjcmV0") {
		t.Errorf("output shows a secret:\n%s", out)
	}
	if st := sim.Stats(); st.ForeignTokens != 0 {
		t.Errorf("%d validate calls with another destination's token", st.ForeignTokens)
	}
}
