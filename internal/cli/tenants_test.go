package cli

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// Tokens of the mixed-tenant test: none may leave the credentials file.
const (
	tenantTokenAlice = "TENANTSECRETALICE0123456789abcdefghij"
	tenantTokenBob   = "TENANTSECRETBOB0123456789abcdefghijkl"
	tenantTokenCarol = "TENANTSECRETCAROL0123456789abcdefghij"
	tenantTokenEnv   = "TENANTSECRETENV0123456789abcdefghijkl"
)

// TestMixedTenants onboards one batch of four tenants on a real Redis:
// alice, carol (throttled by Cloudflare at 20 calls per 5 s, with the
// matching api_rate in the file), the environment's default credential,
// and bob, whose token was revoked. Each row calls with its own token;
// bob's rows are held after his 401/403s (one credential_paused event, his
// credential paused, the queue not) while the others all validate, carol
// without a single 429; resume releases bob. No token appears in Redis,
// the log, the events or the metrics.
func TestMixedTenants(t *testing.T) {
	t.Parallel()
	rdb, opt := testutil.Redis(t)
	url := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	dir := t.TempDir()
	credPath := filepath.Join(dir, "credentials.yaml")
	if err := os.WriteFile(credPath, []byte(fmt.Sprintf("alice: %s\nbob: %s\ncarol:\n  token: %s\n  api_rate: 20/5s\n",
		tenantTokenAlice, tenantTokenBob, tenantTokenCarol)), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := credentials.LoadFile(credPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := set.SetDefault(credentials.Cloudflare{APIToken: tenantTokenEnv}); err != nil {
		t.Fatal(err)
	}
	logs := &testutil.Buffer{}
	e := newE2E(t, rdb, e2eConfig{creds: credentials.Cloudflare{APIToken: tenantTokenEnv}, named: set, authPause: 3,
		revoked: []string{tenantTokenBob}, tokenLimits: map[string]int{tenantTokenCarol: 20}, rateWindow: 5 * time.Second,
		logw: logs, sim: simFlags{writeDelay: 100 * time.Millisecond}})

	counts := map[string]int{"alice": 15, "bob": 8, "carol": 10, "": 5}
	var b strings.Builder
	b.WriteString("zone_id,account_id,destination_conf,credential\n")
	line := 0
	for _, name := range []string{"alice", "bob", "carol", ""} {
		for i := range counts[name] {
			line++
			fmt.Fprintf(&b, "%032x,,s3://%s/tenants/%s-%d?region=us-east-1,%s\n", line, demoBucket, cmp.Or(name, "default"), i, name)
		}
	}
	path := filepath.Join(dir, "tenants.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// The producer paces each tenant at its own budget, as enqueue does.
	ctx := context.Background()
	bf := budgetFlags{producer: true}
	p := newProducer(t, rdb, producer.ClientConfig{Source: path, Format: tasks.FormatCSV, Logger: e.log, Credentials: inputCredentials(set),
		Budget: bf.producerBudget("100000/1m", credentials.Cloudflare{APIToken: tenantTokenEnv}, set, e.log)})
	res, err := p.Enqueue(ctx, func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil || res.Enqueued != 38 {
		t.Fatalf("enqueue = %+v, %v", res, err)
	}
	// Carol's 10 rows need 20 calls at 20/5s; the others' rows are not
	// behind hers.
	start := time.Now()
	good := int64(counts["alice"] + counts["carol"] + counts[""])
	var st events.BatchStatus
	for {
		if st, err = e.store.Batch(ctx, res.BatchID); err != nil {
			t.Fatal(err)
		}
		if st.Counts[events.Validated] >= good {
			break
		}
		if time.Since(start) > hangAfter { // a hang; the time it takes is not asserted
			t.Fatalf("after %s: %+v, want %d validated", time.Since(start), st.Counts, good)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.Counts[events.Validated] != good || st.Counts[events.Failed] > int64(counts["bob"]) {
		t.Errorf("outcomes = %+v, want %d validated and bob's rows held or failed", st.Counts, good)
	}
	// Every validated row is one of the good tenants', and none of bob's.
	byLine := map[int]string{}
	l := 1
	for _, name := range []string{"alice", "bob", "carol", ""} {
		for range counts[name] {
			l++
			byLine[l] = name
		}
	}
	entries, err := e.store.Read(ctx, "0", 10000, 0)
	if err != nil {
		t.Fatal(err)
	}
	var pausedEvents []string
	for _, en := range entries {
		switch ev := en.Event; ev.Event {
		case events.Validated:
			if byLine[ev.Line] == "bob" {
				t.Errorf("bob's line %d validated with a revoked token", ev.Line)
			}
		case events.Failed:
			if byLine[ev.Line] != "bob" || ev.Error == nil || ev.Error.HTTPStatus != http.StatusForbidden {
				t.Errorf("failed event %+v, want only bob's rows, with his 403", ev)
			}
		case events.CredentialPaused:
			pausedEvents = append(pausedEvents, ev.Credential)
		case events.QueuePaused:
			t.Errorf("the queue paused: %+v", ev)
		}
	}
	if strings.Join(pausedEvents, " ") != "bob" {
		t.Errorf("credential_paused events for %v, want bob once", pausedEvents)
	}
	paused, err := worker.PausedCredentials(ctx, rdb)
	if err != nil || len(paused) != 1 || paused["bob"] == "" {
		t.Errorf("paused credentials = %v, %v; want bob", paused, err)
	}
	stats := e.sim.Stats()
	if stats.RateLimitedLimit != 0 {
		t.Errorf("%d 429s from Cloudflare's limit, want none: carol's api_rate matches her limit", stats.RateLimitedLimit)
	}
	// Carol's 20 calls at 20/5s: her budget spread them.
	t.Logf("%d good rows in %s (alice %d, carol %d at 20/5s, default %d); bob held: %+v",
		good, time.Since(start).Round(time.Millisecond), counts["alice"], counts["carol"], counts[""], st.Counts)

	// The metrics name the credentials, never a token.
	resp, err := http.Get("http://" + e.worker.metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`credential="alice"`, `credential="carol"`, `credential="bob"`} {
		if !bytes.Contains(metricsText, []byte("logpush_onboard_api_requests_total")) || !strings.Contains(string(metricsText), want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// resume releases bob (his token is still revoked: his rows come back,
	// the worker verifies its copy again, finds it refused and no other
	// worker whose copy works, and holds them again, never failed).
	code, stdout, stderr := runEnv(t, nil, "", "resume", "--redis", url, "--credential", "bob")
	if code != 0 || !strings.Contains(stdout, "credential bob resumed") {
		t.Errorf("resume --credential bob = %d\n%s%s", code, stdout, stderr)
	}
	// Whether bob is paused when the test looks is a race with his rows,
	// which fail again at once (his token is still revoked): the resume's
	// own record is what it guarantees.
	resumed := 0
	after, err := e.store.Read(ctx, "0", 10000, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range after {
		if en.Event.Event == events.CredentialResumed && en.Event.Credential == "bob" {
			resumed++
		}
	}
	if resumed != 1 {
		t.Errorf("%d credential_resumed events for bob after resume, want 1", resumed)
	}
	if st, _ := e.store.Batch(ctx, res.BatchID); st.Counts[events.Failed] != 0 {
		t.Errorf("outcomes after resume = %+v, want none failed", st.Counts)
	}

	text := logs.String() + testutil.DumpRedis(t, rdb) + string(metricsText)
	for _, s := range []string{tenantTokenAlice, tenantTokenBob, tenantTokenCarol, tenantTokenEnv} {
		if i := strings.Index(text, s); i >= 0 {
			t.Errorf("token leaked: ...%s...", text[max(0, i-200):min(len(text), i+len(s)+50)])
		}
	}
	if !strings.Contains(text, `"credential":"bob"`) {
		t.Error("the capture holds no task of bob's: the leak check would prove nothing")
	}
}
