package cli

import (
	"fmt"
	"strings"
	"testing"

	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

// TestReportUnknownBatch: report of a batch Redis does not have exits 2,
// like status, events and submit-token, and says it may have been lost
// with a Redis that persists nothing.
func TestReportUnknownBatch(t *testing.T) {
	t.Parallel()
	_, opt := testutil.Redis(t)
	url := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	for _, format := range []string{"csv", "json"} {
		code, out, stderr := run(t, "", "report", "--redis", url, "--batch", "nope", "--format", format)
		if code != 2 || out != "" || !strings.Contains(stderr, "no batch nope on this Redis") || !strings.Contains(stderr, "re-enqueue from the file") {
			t.Errorf("report --format %s --batch nope = %d, %q: %s", format, code, out, stderr)
		}
	}
}
