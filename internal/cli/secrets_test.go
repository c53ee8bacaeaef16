package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

// TestSecretsNeverLeak runs whole batches whose credentials and
// destination_confs carry recognisable secrets, with injected API
// failures, and fails if any secret or challenge token appears in a log
// line, an event, the metrics or the pipeline's Redis state.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	for _, creds := range []cloudflare.Credentials{
		{APIToken: "SECRETAPITOKEN0007xyz"},
		{Email: "ops@example.com", APIKey: "SECRETAPIKEY0008xyz"},
	} {
		name := "token"
		if creds.APIKey != "" {
			name = "email_key"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rdb, _ := testutil.Redis(t)
			logs := &testutil.Buffer{}
			e := newE2E(t, rdb, e2eConfig{creds: creds, logw: logs,
				sim: simFlags{writeDelay: 100 * time.Millisecond, errorRate: 0.2, rateLimitRate: 0.1}})
			secrets := []string{creds.APIToken, creds.APIKey, "AKIASECRETKEYID0001", "SECRETACCESSKEYVALUE0001", "AKIASECRETKEYID0002",
				"SECRETACCESSKEYVALUE0002", "SECRETSASSIGNATURE0003", "SECRETSPLUNKTOKEN0004", "SECRETDDKEY0005", "SECRETSUMOCODE0006"}
			destDir := filepath.Join(e.dir, "d")
			rows := []string{
				",023e105f4ecef8ad9ca31a8372d0c301,s3://bkt/p?region=auto&access-key-id=AKIASECRETKEYID0001&secret-access-key=SECRETACCESSKEYVALUE0001&endpoint=https://acct.r2.cloudflarestorage.com",
				"023e105f4ecef8ad9ca31a8372d0c302,,r2://bkt/p?account-id=023e105f4ecef8ad9ca31a8372d0c302&access-key-id=AKIASECRETKEYID0002&secret-access-key=SECRETACCESSKEYVALUE0002",
				"023e105f4ecef8ad9ca31a8372d0c303,,azure://container/path?sp=rw&sv=2021-06-08&sr=c&sig=SECRETSASSIGNATURE0003",
				`023e105f4ecef8ad9ca31a8372d0c304,,splunk://splunk.example.com:8088/services/collector/raw?channel=x&header_Authorization=Splunk%20SECRETSPLUNKTOKEN0004`,
				"023e105f4ecef8ad9ca31a8372d0c305,,datadog://http-intake.logs.datadoghq.com/api/v2/logs?header_DD-API-KEY=SECRETDDKEY0005",
				"023e105f4ecef8ad9ca31a8372d0c306,,sumo://endpoint1.collection.sumologic.com/receiver/v1/http/SECRETSUMOCODE0006",
			}
			for i := range 8 {
				rows = append(rows, fmt.Sprintf("%032x,,file://%s/%d", 0xabc0+i, destDir, i))
			}
			csv := filepath.Join(e.dir, "secrets.csv")
			if err := os.WriteFile(csv, []byte("zone_id,account_id,destination_conf\n"+strings.Join(rows, "\n")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			res := e.enqueueFile(t, csv)
			deadline := time.Now().Add(hangAfter)
			for {
				st, err := e.store.Batch(context.Background(), res.BatchID)
				if err != nil {
					t.Fatal(err)
				}
				if st.Done()+st.Counts[events.AwaitingToken] == st.Total {
					if st.Counts[events.Validated] != 8 {
						t.Fatalf("outcomes = %+v, want the 8 file destinations validated", st.Counts)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("batch not done: %+v", st.Counts)
				}
				time.Sleep(100 * time.Millisecond)
			}
			// The challenge tokens Cloudflare wrote are secrets too.
			filepath.Walk(destDir, func(path string, info os.FileInfo, err error) error {
				if err == nil && !info.IsDir() {
					b, _ := os.ReadFile(path)
					secrets = append(secrets, strings.TrimSpace(string(b)))
				}
				return nil
			})
			if len(secrets) < 18 {
				t.Fatalf("found %d secrets, want the 10 given and 8 challenge tokens", len(secrets))
			}

			var out strings.Builder
			out.WriteString(logs.String())
			entries, err := e.store.Read(context.Background(), "0", 1000, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, en := range entries {
				out.WriteString(en.Raw + "\n")
			}
			resp, err := http.Get("http://" + e.worker.metricsAddr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			m, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			out.Write(m)
			// The pipeline's own Redis state (asynq's task payloads hold the
			// conf, as they must, and are not shown anywhere).
			keys, err := rdb.Keys(context.Background(), "logpush:*").Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				switch typ, _ := rdb.Type(context.Background(), k).Result(); typ {
				case "hash":
					v, _ := rdb.HGetAll(context.Background(), k).Result()
					fmt.Fprintln(&out, k, v)
				case "string":
					v, _ := rdb.Get(context.Background(), k).Result()
					fmt.Fprintln(&out, k, v)
				}
			}
			text := out.String()
			if !strings.Contains(text, "REDACTED") || !strings.Contains(text, `"event":"failed"`) && !strings.Contains(text, "awaiting_token") {
				t.Fatalf("the capture lacks redacted destinations or outcomes: the test would prove nothing\n%s", text)
			}
			for _, s := range secrets {
				if s != "" && strings.Contains(text, s) {
					i := strings.Index(text, s)
					t.Errorf("secret %q leaked: ...%s...", s, text[max(0, i-200):min(len(text), i+len(s)+50)])
				}
			}
			t.Logf("checked %d bytes of logs, %d events, %d bytes of metrics, %d redis keys against %d secrets",
				len(logs.String()), len(entries), len(m), len(keys), len(secrets))
		})
	}
}

// TestCredentialsFileSecretsNeverLeak enqueues (with preflight) and runs
// batches whose rows name the credentials of a credentials file, and fails
// if a token, key or email of the file or the environment appears in the
// output, the log, the journal, the report, or any Redis key or value
// (asynq's task payloads included), while the tasks do carry the names.
func TestCredentialsFileSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	rdb, opt := testutil.Redis(t)
	url := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	vc := newVerifyCounter(t)
	dir := t.TempDir()
	creds := credFile(t, dir)
	batch := func(name string, base int) string {
		var b strings.Builder
		b.WriteString("zone_id,account_id,destination_conf,credential\n")
		for i, cred := range []string{"alice", "carol", "", "alice", "carol", ""} {
			fmt.Fprintf(&b, "%032x,,file://%s/%s/%d,%s\n", base+i, dir, name, i, cred)
		}
		fmt.Fprintf(&b, ",%s,https://logs.example.com/%s,bob\n", bobAccount, name)
		path := filepath.Join(dir, name+".csv")
		if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	env := map[string]string{"CLOUDFLARE_API_TOKEN": credTokenEnv}
	secrets := []string{credTokenAlice, credTokenBob, credKeyCarol, credTokenDave, credTokenEnv, "carol@example.com"}
	var out strings.Builder

	// Enqueued with no worker running: the tasks wait in Redis.
	code, stdout, stderr := runEnv(t, env, "", "enqueue", "--redis", url, "--cloudflare-api-url", vc.url, "--credentials", creds,
		"--api-rate", "0", "--log-level", "debug", batch("queued", 0x100))
	if code != 0 || !strings.Contains(stdout, "4 Cloudflare credentials checked") {
		t.Fatalf("enqueue = %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	out.WriteString(stdout + stderr)
	queued := testutil.DumpRedis(t, rdb)
	if !strings.Contains(queued, `"credential":"alice"`) || !strings.Contains(queued, `"credential":"carol"`) {
		t.Fatalf("the waiting tasks do not name their credentials:\n%s", queued)
	}
	out.WriteString(queued)

	// Run on the same Redis: its worker finishes both batches.
	logFile := filepath.Join(dir, "run.log")
	in := batch("run", 0x200)
	code, stdout, stderr = runEnv(t, env, "", "run", "--redis", url, "--cloudflare-api-url", vc.url, "--credentials", creds,
		"--api-rate", "0", "--poll-first", "0", "--poll-interval", "100ms", "--progress-interval", "100ms",
		"--log-level", "debug", "--log-file", logFile, in)
	if code != 0 {
		t.Fatalf("run = %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	out.WriteString(stdout + stderr)
	for _, f := range []string{logFile, filepath.Join(dir, "run.journal.jsonl"), filepath.Join(dir, "run.results.csv")} {
		b, err := os.ReadFile(f)
		if err != nil || len(b) == 0 {
			t.Fatalf("%s: %v (%d bytes)", f, err, len(b))
		}
		out.Write(b)
	}
	out.WriteString(testutil.DumpRedis(t, rdb))
	text := out.String()
	if !strings.Contains(text, `"event":"validated"`) {
		t.Fatalf("no validated destination in the capture: the test would prove nothing\n%s", text)
	}
	for _, s := range secrets {
		if i := strings.Index(text, s); i >= 0 {
			t.Errorf("secret %q leaked: ...%s...", s, text[max(0, i-200):min(len(text), i+len(s)+50)])
		}
	}
	t.Logf("checked %d bytes of output, log, journal, report and Redis against %d secrets", len(text), len(secrets))
}
