package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/johannesboyne/gofakes3"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

// skipWithoutAzurite skips t when Azurite neither answers nor can be
// installed: scripts/azurite installs it with npm.
func skipWithoutAzurite(t *testing.T) {
	t.Helper()
	if c, err := net.DialTimeout("tcp", "127.0.0.1:10000", time.Second); err == nil {
		c.Close()
		return
	}
	for _, cmd := range []string{"azurite-blob", "npm"} {
		if _, err := exec.LookPath(cmd); err == nil {
			return
		}
	}
	t.Skip("Azurite is not running on 127.0.0.1:10000 and npm is not on PATH to install it (scripts/azurite): install Node.js 20 with npm")
}

// TestMigrateRealStoresKillResume moves 60 of 120 jobs (40 zones; S3 and
// Azure, shared and own paths) whose new confs the simulator challenges in
// an S3 server (gofakes3) and in Azurite, read back through the AWS and
// Azure SDKs by the workers of a migrate child process configured by its
// environment only, as a user's would be: AWS_ENDPOINT_URL_S3 and the AWS
// keys, and for Azure a write-only SAS in the conf (Cloudflare's advice)
// with the account key and AZURE_STORAGE_BLOB_ENDPOINT for reading. Each
// Azure move renews the SAS too. The child is killed with SIGKILL once the
// simulator has taken some of the PUTs, and the same command runs again on
// the same Redis to the end: every selected job moved exactly once (one
// PUT), its other settings as they were, no other job touched, one outcome
// per job in the journal and the report, one event per job on the stream
// (migrated), and
// no secret (SAS signatures, the AWS and Azure keys, the API token,
// challenge tokens) in the output, the journal, the report, or Redis.
func TestMigrateRealStoresKillResume(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the migrate command twice as a process, on Azurite")
	}
	skipWithoutAzurite(t)
	t.Parallel()
	const (
		s3Key    = "AKIAMIGRATESTORES"
		s3Secret = "migrate-stores-s3-secret"
	)
	ctx := context.Background()
	s3srv := httptest.NewServer(gofakes3.New(demoS3Backend()).Server())
	t.Cleanup(s3srv.Close)
	s3w, err := destination.NewS3(ctx, destination.S3Options{Endpoint: s3srv.URL, UsePathStyle: true,
		Credentials: awscreds.NewStaticCredentialsProvider(s3Key, s3Secret, "")})
	if err != nil {
		t.Fatal(err)
	}
	// Cloudflare's side writes into Azurite with the account key; the
	// confs carry SASes that write only.
	azw, err := destination.NewAzure(ctx, destination.AzureOptions{Endpoint: azuriteEndpoint, AccountName: azuriteAccount, AccountKey: azuriteKey})
	if err != nil {
		t.Fatal(err)
	}
	container := azuriteContainer(t).name
	oldSAS := writeOnlySAS(t, container, time.Now().Add(24*time.Hour))
	newSAS := writeOnlySAS(t, container, time.Now().Add(48*time.Hour))
	azureConf := func(path string, s sasContainer) string {
		return fmt.Sprintf("azure://%s.blob.core.windows.net/%s/%s?%s", azuriteAccount, container, path, s.sas)
	}
	s3Conf := func(path string) string { return fmt.Sprintf("s3://%s/%s?region=us-east-1", demoBucket, path) }

	// Per zone: S3 on the path every zone shares, Azure on its own path,
	// and S3 on its own path (even zones) or Azure on a path the odd zones
	// share.
	cfg := simulator.Config{Write: writeFunc(destination.WriterMux{"s3": s3w, "azure": azw}), WriteDelay: 50 * time.Millisecond,
		WriteJitter: 50 * time.Millisecond, APIToken: migrateToken}
	conf := func(z int, dataset string, to bool) string {
		end, s := "old", oldSAS
		if to {
			end, s = "new", newSAS
		}
		switch {
		case dataset == "http_requests":
			return s3Conf("shared/" + end)
		case dataset == "firewall_events":
			return azureConf(fmt.Sprintf("own/%d/%s", z, end), s)
		case z%2 == 0:
			return s3Conf(fmt.Sprintf("own/%d/%s", z, end))
		}
		return azureConf("shared/"+end, s)
	}
	jsonConf := func(c string) string { b, _ := json.Marshal(c); return string(b) }
	f := startMigrateFleet(t, cfg, t.TempDir(), func(z int) []string {
		return []string{
			fmt.Sprintf(`{"destination_conf":%s,"dataset":"http_requests","name":"z%d.example","enabled":true,`+
				`"output_options":{"field_names":["RayID","ClientIP"],"timestamp_format":"rfc3339","sample_rate":0.5},"max_upload_records":%d}`,
				jsonConf(conf(z, "http_requests", false)), z, 1000+z),
			fmt.Sprintf(`{"destination_conf":%s,"dataset":"firewall_events","frequency":"low",`+
				`"filter":"{\"where\":{\"key\":\"Action\",\"operator\":\"eq\",\"value\":\"block\"}}","max_upload_interval_seconds":%d}`,
				jsonConf(conf(z, "firewall_events", false)), 30+z),
			fmt.Sprintf(`{"destination_conf":%s,"dataset":"dns_logs","enabled":true,"kind":"edge",`+
				`"output_options":{"field_names":["QueryName"],"batch_prefix":"[","batch_suffix":"]"}}`, jsonConf(conf(z, "dns_logs", false))),
		}
	})

	// Half the jobs: every job of zones 0, 1, 4, 5, 8, 9, ...: 20 on the
	// shared S3 path, 20 on own Azure paths, 10 on own S3 paths, 10 on the
	// shared Azure path.
	var rows strings.Builder
	rows.WriteString("zone_id,account_id,job_id,destination_conf\n")
	selected := map[int]string{} // job id -> new conf
	for z, zone := range f.zones {
		if z%4 > 1 {
			continue
		}
		for id, j := range f.jobs[zone] {
			selected[id] = conf(z, j.Dataset, true)
			fmt.Fprintf(&rows, "%s,,%d,%s\n", zone, id, selected[id])
		}
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "moves.csv")
	if err := os.WriteFile(file, []byte(rows.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	rdb, opt := testutil.Redis(t)
	logPath := filepath.Join(dir, "migrate.log")
	args := []string{"migrate", file, "--cloudflare-api-url", f.url, "--api-rate", "0", "--poll-first", "0", "--poll-interval", "50ms",
		"--concurrency", "20", "--log-level", "warn", "--progress-interval", "1s", "--redis", fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)}
	env := []string{"CLOUDFLARE_API_TOKEN=" + migrateToken,
		"AWS_ENDPOINT_URL_S3=" + s3srv.URL, "AWS_ACCESS_KEY_ID=" + s3Key, "AWS_SECRET_ACCESS_KEY=" + s3Secret, "AWS_REGION=us-east-1",
		"AZURE_STORAGE_BLOB_ENDPOINT=" + azuriteEndpoint, "AZURE_STORAGE_ACCOUNT=" + azuriteAccount, "AZURE_STORAGE_KEY=" + azuriteKey}

	// 1. Killed midway: once the simulator took 15 PUTs. The 20 jobs of
	// the shared S3 path move one at a time, each after its own file
	// (50 ms or more): some are left.
	start := time.Now()
	f.killAfterPuts(t, startChildEnv(t, logPath, env, args...), 15, logPath)
	firstRun := time.Since(start)
	movedFirst := f.sim.Stats().JobsUpdated
	journal := strings.TrimSuffix(file, ".csv") + ".journal.jsonl"
	jb, _ := os.ReadFile(journal)
	journaledFirst := strings.Count(string(jb), `"event":"migrated"`)
	if movedFirst >= len(selected) {
		t.Fatalf("every job moved before the kill (%d): the test did not kill midway", movedFirst)
	}

	// 2. The same command again, to the end.
	start = time.Now()
	b := startChildEnv(t, logPath, env, args...)
	select {
	case err := <-b.done:
		if err != nil {
			out, _ := os.ReadFile(logPath)
			t.Fatalf("second run: %v\n%s", err, out)
		}
	case <-time.After(hangAfter):
		t.Fatalf("second run did not end in %s", hangAfter)
	}
	secondRun := time.Since(start)

	// Every selected job moved once (one PUT), with its settings; no other
	// job touched; one outcome per job in the journal and the report.
	f.checkMoved(t, selected, journal)
	report, _ := os.ReadFile(strings.TrimSuffix(file, ".csv") + ".results.csv")
	if n := strings.Count(string(report), ",migrated,"); n != len(selected) {
		t.Errorf("report: %d rows migrated, want %d:\n%s", n, len(selected), report)
	}

	// The events of both runs on the stream: each selected job's are
	// migrated, no other job has one.
	entries, err := ledger.NewStore(rdb, ledger.Config{}).Read(ctx, "0", 10000, 0)
	if err != nil {
		t.Fatal(err)
	}
	perJob := map[int]map[events.State]int{}
	for _, e := range entries {
		if e.Event.JobID == 0 {
			continue
		}
		if perJob[e.Event.JobID] == nil {
			perJob[e.Event.JobID] = map[events.State]int{}
		}
		if e.Event.Event.Terminal() {
			perJob[e.Event.JobID][e.Event.Event]++
		}
	}
	for id := range selected {
		if perJob[id][events.Migrated] != 1 || len(perJob[id]) != 1 {
			t.Errorf("job %d: events %v, want one migrated", id, perJob[id])
		}
	}
	for id := range perJob {
		if _, ok := selected[id]; !ok {
			t.Errorf("job %d was not selected, and has events %v", id, perJob[id])
		}
	}

	// No secret anywhere: the SASes' signatures (as signed, and
	// URL-encoded as in the confs), the keys the child read with, the API
	// token, challenge tokens (JWTs).
	var secrets []string
	for _, s := range []string{oldSAS.sig, newSAS.sig, azuriteKey, s3Secret, migrateToken} {
		secrets = append(secrets, regexp.QuoteMeta(s), regexp.QuoteMeta(url.QueryEscape(s)))
	}
	secret := regexp.MustCompile(strings.Join(secrets, "|") + `|eyJ`)
	logs, _ := os.ReadFile(logPath)
	jb, _ = os.ReadFile(journal)
	for name, s := range map[string]string{"output": string(logs), "journal": string(jb), "report": string(report), "redis": testutil.DumpRedis(t, rdb)} {
		if at := secret.FindStringIndex(s); at != nil {
			// Where it is, with every secret masked.
			from, to := max(at[0]-300, 0), min(at[1]+100, len(s))
			t.Errorf("%s holds a secret: ...%s...", name, secret.ReplaceAllString(s[from:to], "<secret>"))
		}
	}
	t.Logf("%d jobs selected; killed after %s and %d PUTs, with %d outcomes journaled; the second run took %s (waited for the killed run's tasks: %v); simulator: %s",
		len(selected), firstRun.Round(time.Millisecond), movedFirst, journaledFirst, secondRun.Round(time.Millisecond),
		strings.Contains(string(logs), "tasks of the batch still in Redis"), f.sim.Stats())
}
