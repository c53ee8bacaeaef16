package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

// TestSharedRate: the rate lives in Redis under the budget key. A worker or
// producer with another explicit --api-rate for the same key is refused
// with exit 2, naming both rates and how to change the shared one; one
// without --api-rate takes it; --api-rate-override replaces it for all.
// --budget-key (BUDGET_KEY) lets several credentials share one budget; by
// default each credential has its own.
func TestSharedRate(t *testing.T) {
	t.Parallel()
	_, opt := testutil.Redis(t)
	url := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	path := filepath.Join(t.TempDir(), "batch.csv")
	if err := os.WriteFile(path, []byte("zone_id,account_id,destination_conf\n023e105f4ecef8ad9ca31a8372d0c353,,https://logs.example.com/in\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	alice := map[string]string{"CLOUDFLARE_API_TOKEN": "token-a", "BUDGET_KEY": "alice"}
	aliceToo := map[string]string{"CLOUDFLARE_API_TOKEN": "token-b", "BUDGET_KEY": "alice"}
	other := map[string]string{"CLOUDFLARE_API_TOKEN": "token-b"}
	enqueue := func(env map[string]string, args ...string) (int, string) {
		t.Helper()
		code, _, stderr := runEnv(t, env, "", append(append([]string{"enqueue", "--skip-preflight", "--redis", url}, args...), path)...)
		return code, stderr
	}
	if code, stderr := enqueue(alice, "--api-rate", "60/1m"); code != 0 {
		t.Fatalf("first enqueue = %d: %s", code, stderr)
	}
	code, stderr := enqueue(aliceToo, "--api-rate", "600/1m")
	if code != 2 || !strings.Contains(stderr, "600/1m") || !strings.Contains(stderr, "60/1m") ||
		!strings.Contains(stderr, "-api-rate-override") || !strings.Contains(stderr, `budget key "alice"`) {
		t.Fatalf("enqueue with another rate on the same budget key = %d: %s; want 2 naming both rates and the override", code, stderr)
	}
	code, _, stderr = runEnv(t, aliceToo, "", "worker", "--redis", url, "--metrics-addr", "", "--api-rate", "600/1m")
	if code != 2 || !strings.Contains(stderr, "differs from 60/1m") {
		t.Fatalf("worker with another rate on the same budget key = %d: %s; want 2", code, stderr)
	}
	if strings.Contains(stderr, "token-") {
		t.Fatalf("a credential in the refusal: %s", stderr)
	}
	if code, stderr := enqueue(alice); code != 0 {
		t.Fatalf("enqueue without --api-rate = %d: %s; want the shared rate taken", code, stderr)
	}
	if code, stderr := enqueue(other, "--api-rate", "600/1m"); code != 0 {
		t.Fatalf("another credential without a budget key = %d: %s; it has a budget of its own", code, stderr)
	}
	if code, stderr := enqueue(aliceToo, "--api-rate", "600/1m", "--api-rate-override"); code != 0 {
		t.Fatalf("override = %d: %s", code, stderr)
	}
	if code, stderr := enqueue(alice, "--api-rate", "60/1m"); code != 2 || !strings.Contains(stderr, "differs from 600/1m") {
		t.Fatalf("the old rate after the override = %d: %s; want 2", code, stderr)
	}
	if code, stderr := enqueue(alice, "--budget-key", "no spaces"); code == 0 || !strings.Contains(stderr, "-budget-key") {
		t.Fatalf("bad budget key = %d: %s", code, stderr)
	}
}
