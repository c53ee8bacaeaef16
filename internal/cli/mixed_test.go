package cli

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// TestMixedBatch onboards 300 destinations of every kind, 10% of the
// readable ones with a wrong credential and 10% with a stale challenge file
// of an earlier challenge already in place, and checks the terminal state
// of every row by destination type, and the storage requests per validated
// destination.
func TestMixedBatch(t *testing.T) {
	t.Parallel()
	rdb, _ := testutil.Redis(t)
	sumo := &sumoSource{}
	e := newE2E(t, rdb, e2eConfig{writers: destination.WriterMux{"sumo": sumo},
		sim: simFlags{writeDelay: 2 * time.Second, writeJitter: time.Second, errorRate: 0.05}})
	dir := t.TempDir()
	type row struct {
		id, conf, profile string
		want              events.State
	}
	var rows []row
	add := func(n int, typ string, conf func(i int) string) {
		for i := range n {
			r := row{id: fmt.Sprintf("%032x", len(rows)+1), conf: conf(i), want: events.Validated}
			switch typ {
			case "sumo":
				r.want = events.AwaitingToken
			case "r2", "https", "datadog":
				r.want = events.NotRequired
			case "s3":
				// 15 of 90 name an AWS profile that does not exist. (The GCS
				// emulator takes no credentials, so wrong GCS credentials
				// are tested on the reader, against a local token server.)
				if i%6 == 1 {
					r.profile, r.want = "no-such-profile-s3", events.Failed
				}
			}
			rows = append(rows, r)
		}
	}
	add(90, "s3", func(i int) string { return fmt.Sprintf("s3://%s/mixed/%d?region=us-east-1", demoBucket, i) })
	add(60, "file", func(i int) string { return "file://" + filepath.Join(dir, "f", fmt.Sprint(i)) })
	add(60, "gs", func(i int) string { return fmt.Sprintf("gs://%s/mixed/%d", demoBucket, i) })
	container := azuriteContainer(t)
	add(30, "azure", func(i int) string {
		return fmt.Sprintf("azure://%s.blob.core.windows.net/%s/mixed/%d?%s", azuriteAccount, container.name, i, container.sas)
	})
	add(15, "sumo", func(i int) string {
		return fmt.Sprintf("sumo://endpoint1.collection.sumologic.com/receiver/v1/http/Code%04d", i)
	})
	add(15, "r2", func(i int) string {
		return fmt.Sprintf("r2://logs-%d/x?account-id=%032x&access-key-id=ak&secret-access-key=sk", i, i)
	})
	add(15, "https", func(i int) string {
		return fmt.Sprintf("https://logs.example.com/in/%d?header_Authorization=Basic%%20x", i)
	})
	add(15, "datadog", func(i int) string {
		return fmt.Sprintf("datadog://http-intake.logs.datadoghq.com/api/v2/logs?header_DD-API-KEY=k%d", i)
	})

	// Stale files: the file an earlier challenge left under the name the
	// next challenge reuses, written well before this batch.
	s3w, err := destination.NewS3(context.Background(), destination.S3Options{Endpoint: e.s3URL, UsePathStyle: true, Credentials: e.s3creds})
	if err != nil {
		t.Fatal(err)
	}
	writers := destination.WriterMux{"s3": s3w, "gs": e.gcs, "azure": e.azure, "file": &destination.File{}}
	var stale int
	for i, r := range rows {
		c, _ := tasks.ParseConf(r.conf)
		if !c.TokenReadable() || r.profile != "" || i%10 != 2 {
			continue
		}
		key := sha256.Sum256([]byte("zone|" + r.id + "|" + r.conf))
		name := "ownership-challenge-" + hex.EncodeToString(key[:4]) + ".txt"
		if c.Prefix != "" {
			name = c.Prefix + "/" + name
		}
		old := jwtIssued(time.Now().Add(-time.Hour))
		if err := writers.Write(context.Background(), destination.For(c, nil, name), []byte(old)); err != nil {
			t.Fatal(err)
		}
		stale++
	}
	time.Sleep(2 * time.Second) // the stale files are older than any challenge

	var csv strings.Builder
	csv.WriteString("zone_id,account_id,destination_conf,aws_profile\n")
	for _, r := range rows {
		fmt.Fprintf(&csv, "%s,,%s,%s\n", r.id, r.conf, r.profile)
	}
	path := filepath.Join(dir, "mixed.csv")
	os.WriteFile(path, []byte(csv.String()), 0o644)
	res := e.enqueueFile(t, path)

	deadline := time.Now().Add(hangAfter)
	for {
		st, _ := e.store.Batch(context.Background(), res.BatchID)
		if st.Done()+st.Counts[events.AwaitingToken] == st.Total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch not done: %+v", st.Counts)
		}
		time.Sleep(200 * time.Millisecond)
	}
	want := map[string]events.State{}
	for i, r := range rows {
		want[fmt.Sprint(i+2)] = r.want
	}
	table := map[string]map[events.State]int{}
	err = e.store.Dests(context.Background(), res.BatchID, func(_ string, st ledger.DestState) error {
		if table[st.Type] == nil {
			table[st.Type] = map[events.State]int{}
		}
		table[st.Type][st.State]++
		if w := want[fmt.Sprint(st.Line)]; st.State != w {
			t.Errorf("line %d (%s): %s, want %s (error %+v)", st.Line, st.Type, st.State, w, st.Error)
		}
		if st.State == events.Failed && (st.Error == nil || !strings.Contains(st.Error.Message, "aws profile")) {
			t.Errorf("line %d failed without naming the credential: %+v", st.Line, st.Error)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	stats := e.sim.Stats()
	if stats.ValidationsFailed != 0 {
		t.Errorf("%d validations with a wrong token: a stale file was taken for a new one", stats.ValidationsFailed)
	}
	storage := gatherSum(t, e.worker, "logpush_onboard_storage_requests_total", nil)
	validated := gatherSum(t, e.worker, "logpush_onboard_destinations_total", map[string]string{"outcome": "validated"})
	types := make([]string, 0, len(table))
	for typ := range table {
		types = append(types, typ)
	}
	sort.Strings(types)
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %9s %6s %12s %14s\n", "type", "validated", "failed", "not_required", "awaiting_token")
	for _, typ := range types {
		c := table[typ]
		fmt.Fprintf(&b, "%-8s %9d %6d %12d %14d\n", typ, c[events.Validated], c[events.Failed], c[events.NotRequired], c[events.AwaitingToken])
	}
	t.Logf("mixed batch of %d (%d stale files in place, %d wrong credentials):\n%sstorage requests per validated destination: %.2f (%v / %v)",
		len(rows), stale, 15, b.String(), storage/validated, storage, validated)
}

// jwtIssued makes a JWT-like token issued at iat, as the simulator does.
func jwtIssued(iat time.Time) string {
	claims := fmt.Sprintf(`{"iat":%d,"exp":%d}`, iat.Unix(), iat.Add(7*24*time.Hour).Unix())
	return "eyJhbGciOiJIUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + ".c2ln"
}

// gatherSum sums a counter family of the worker's registry over the series
// whose labels include want.
func gatherSum(t *testing.T, w *runningWorker, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := w.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// Azurite's well-known development account, published in its README.
const (
	azuriteAccount  = "devstoreaccount1"
	azuriteKey      = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	azuriteEndpoint = "http://127.0.0.1:10000/" + azuriteAccount
)

type azureContainer struct{ name, sas string }

// azuriteContainer starts azurite (scripts/azurite) if needed, creates a
// container and returns it with a SAS that reads and writes, as a user
// would give Cloudflare one (plus r, so the worker can read).
func azuriteContainer(t *testing.T) azureContainer {
	t.Helper()
	if out, err := exec.Command("../../scripts/azurite").CombinedOutput(); err != nil {
		t.Fatalf("scripts/azurite: %v\n%s", err, out)
	}
	cred, err := service.NewSharedKeyCredential(azuriteAccount, azuriteKey)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.NewClientWithSharedKeyCredential(azuriteEndpoint+"/", cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("mixed%d", time.Now().UnixNano())
	if _, err := svc.CreateContainer(context.Background(), name, nil); err != nil {
		t.Fatalf("create container: %v", err)
	}
	q, err := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour),
		Permissions: (&sas.ContainerPermissions{Read: true, Write: true, Create: true}).String(), ContainerName: name}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	return azureContainer{name: name, sas: q.Encode()}
}
