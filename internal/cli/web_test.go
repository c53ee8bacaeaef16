package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

// artifactsDir is where tests leave files for people to look at
// (ARTIFACTS_DIR, set by scripts/test; default a temporary directory).
func artifactsDir(t *testing.T) string {
	if d := os.Getenv("ARTIFACTS_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// TestWebUI serves /ui for a batch with a failure, checks the page, and
// renders it in headless Chromium to a screenshot.
func TestWebUI(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Redis(t)
	e := newE2E(t, rdb, e2eConfig{webUI: true, sim: simFlags{writeDelay: 50 * time.Millisecond}})
	dir := t.TempDir()
	blocked := filepath.Join(dir, "blocked")
	os.WriteFile(blocked, nil, 0o644)
	csv := "zone_id,account_id,destination_conf\n"
	for i := range 4 {
		csv += fmt.Sprintf("%032x,,file://%s/%d\n", i+1, dir, i)
	}
	csv += fmt.Sprintf("%032x,,file://%s/x\n", 9, blocked)
	path := filepath.Join(dir, "ui.csv")
	os.WriteFile(path, []byte(csv), 0o644)
	res := e.enqueueFile(t, path)
	e.wait(t, res.BatchID, time.Minute)

	// The page has its own listener: the metrics port (scraped, often
	// exposed) does not serve it.
	if resp, err := http.Get("http://" + e.worker.metricsAddr + "/ui"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/ui on the metrics listener = %v, %v; want 404", resp, err)
	} else {
		resp.Body.Close()
	}
	url := "http://" + e.worker.webAddr + "/ui"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	for _, want := range []string{res.BatchID, "Recent failures", "100%", "5/5", "not a directory",
		`<td class="l">logpush</td>`, `<td class="l">logpush_followup</td>`} {
		if !strings.Contains(page, want) {
			t.Errorf("/ui lacks %q", want)
		}
	}
	if strings.Contains(page, "unavailable") || strings.Contains(page, "never enqueued") {
		t.Errorf("/ui shows a queue without its figures")
	}
	if t.Failed() {
		t.Fatalf("page:\n%s", page)
	}

	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("LOGPUSH_SKIP_BROWSER") == "1" {
			t.Skip("chromium missing and LOGPUSH_SKIP_BROWSER=1")
		}
		t.Fatal("chromium is not installed: run scripts/ensure-chromium (or LOGPUSH_SKIP_BROWSER=1)")
	}
	shot := filepath.Join(artifactsDir(t), "web-ui.png")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir="+t.TempDir(),
		"--window-size=1280,800", "--screenshot="+shot, url)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	fi, err := os.Stat(shot)
	if err != nil || fi.Size() < 5000 {
		t.Fatalf("screenshot %s: %v (size %d)", shot, err, fi.Size())
	}
	t.Logf("screenshot: %s", shot)
}
