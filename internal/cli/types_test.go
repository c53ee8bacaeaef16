package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// TestEveryDestinationType onboards one row of every destination type of
// Cloudflare's table with --create-job, as an account-owned API token
// (GET /user/tokens/verify answers 401 for it), with Azure's SAS write-only
// as Cloudflare advises and the worker reading with its own account key:
// the challenged types are validated, the others end not_required, Sumo
// awaits its token, every row but Sumo's gets its job, and no secret of any
// conf shows in the events.
func TestEveryDestinationType(t *testing.T) {
	t.Parallel()
	rdb, opt := testutil.Redis(t)
	url := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	const acct = "01a7362d577a6c3019a474fd6f485823"
	e := newE2E(t, rdb, e2eConfig{sim: simFlags{writeDelay: 100 * time.Millisecond, tokenAccount: acct}, azureKey: true})
	container := writeOnlyContainer(t)
	secrets := []string{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMIK7MDENG", "eyJ0eXBlIjoic2VydmljZV9hY2NvdW50In0", "IBMKEY0123456789",
		"NRAK-0123456789", "DDKEY0123456789", "SPLUNKTOKEN0123", "S1TOKEN0123456", "Code0123456789", container.sig}
	rows := []struct {
		typ, conf string
		want      events.State
	}{
		{"s3", "s3://" + demoBucket + "/types/aws?region=us-east-1", events.Validated},
		{"s3", "s3://" + demoBucket + "/types/keys?region=us-east-1&access-key-id=AKIAIOSFODNN7EXAMPLE&secret-access-key=wJalrXUtnFEMIK7MDENG", events.NotRequired},
		{"s3", "s3://gov-bucket/x?region=us-gov-west-1&endpoint=s3.us-gov-west-1.amazonaws.com&access-key-id=AKIAIOSFODNN7EXAMPLE&secret-access-key=wJalrXUtnFEMIK7MDENG", events.NotRequired},
		{"r2", "r2://logs/x?account-id=" + acct + "&access-key-id=AKIAIOSFODNN7EXAMPLE&secret-access-key=wJalrXUtnFEMIK7MDENG", events.NotRequired},
		{"gs", "gs://" + demoBucket + "/types/gcs", events.Validated},
		{"azure", fmt.Sprintf("azure://%s.blob.core.windows.net/%s/types?%s", azuriteAccount, container.name, container.sas), events.Validated},
		{"sumo", "sumo://endpoint1.collection.sumologic.com/receiver/v1/http/Code0123456789", events.AwaitingToken},
		{"https", "https://logs.example.com/in?header_Authorization=Basic%20SPLUNKTOKEN0123", events.NotRequired},
		{"https", "https://log-api.newrelic.com/log/v1?Api-Key=NRAK-0123456789&format=cloudflare", events.NotRequired},
		{"datadog", "datadog://http-intake.logs.datadoghq.com/api/v2/logs?header_DD-API-KEY=DDKEY0123456789&ddsource=cloudflare", events.NotRequired},
		{"splunk", "splunk://splunk.example.com:8088/services/collector/raw?channel=c&header_Authorization=Splunk%20SPLUNKTOKEN0123", events.NotRequired},
		{"bq", "bq://projects/p/datasets/d/tables/t?credentials=base64:eyJ0eXBlIjoic2VydmljZV9hY2NvdW50In0", events.NotRequired},
		{"kinesis", "kinesis://stream-1?region=us-east-1&sts-assume-role-arn=arn:aws:iam::123456789012:role/logpush", events.NotRequired},
		{"ibmcl", "ibmcl://0123-abcd.ingress.eu-de.logs.cloud.ibm.com/logs/v1/singles?ibm_api_key=IBMKEY0123456789", events.NotRequired},
		{"sentinelone", "sentinelone://ingest.us1.sentinelone.net/services/collector/raw?sourcetype=cf&header_Authorization=Bearer%20S1TOKEN0123456", events.NotRequired},
		{"file", "file://" + t.TempDir() + "/types", events.Validated},
	}
	var csv strings.Builder
	csv.WriteString("zone_id,account_id,destination_conf,dataset\n")
	for i, r := range rows {
		zone, account := fmt.Sprintf("%032x", i+1), ""
		if i%5 == 0 { // a few rows of the token's own account (at most 4 jobs per scope)
			zone, account = "", acct
		}
		dataset := "http_requests"
		if account != "" {
			dataset = "audit_logs" // http_requests is a zone dataset: Cloudflare refuses it for an account
		}
		fmt.Fprintf(&csv, "%s,%s,\"%s\",%s\n", zone, account, r.conf, dataset)
	}
	code, out, stderr := run(t, csv.String(), "enqueue", "--skip-preflight", "--create-job", "--redis", url, "-")
	if code != 0 {
		t.Fatalf("enqueue = %d: %s %s", code, out, stderr)
	}
	batch := strings.TrimSuffix(strings.Fields(out)[1], ":")
	deadline := time.Now().Add(hangAfter)
	for {
		st, _ := e.store.Batch(context.Background(), batch)
		if st.Done()+st.Counts[events.AwaitingToken] == st.Total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch not done: %+v", st.Counts)
		}
		time.Sleep(200 * time.Millisecond)
	}
	err := e.store.Dests(context.Background(), batch, func(_ string, st ledger.DestState) error {
		r := rows[st.Line-2]
		if st.Type != r.typ || st.State != r.want {
			t.Errorf("line %d (%s): %s %s, want %s (error %+v)", st.Line, r.typ, st.Type, st.State, r.want, st.Error)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	code, evs, _ := run(t, "", "events", "--redis", url, "--batch", batch)
	if code != 0 || strings.Count(evs, `"job_id":`) != len(rows)-1 {
		t.Fatalf("events: %d jobs, want %d:\n%s", strings.Count(evs, `"job_id":`), len(rows)-1, evs)
	}
	for _, sec := range secrets {
		if strings.Contains(evs, sec) {
			t.Errorf("events show a secret %q…", sec[:4])
		}
	}
	for _, typ := range []string{tasks.TypeBigQuery, tasks.TypeKinesis, tasks.TypeIBMCloudLog, tasks.TypeSentinelOne} {
		if !strings.Contains(evs, `"destination_type":"`+typ+`"`) {
			t.Errorf("no event of type %s", typ)
		}
	}
	st := e.sim.Stats()
	if st.JobsCreated != len(rows)-1 || st.Count(simulator.EndpointCreateJob, 200) != len(rows)-1 {
		t.Errorf("simulator: %s", st)
	}
	// The account-owned token: the user endpoint refuses it, its account's verifies it.
	env := map[string]string{"CLOUDFLARE_API_TOKEN": "e2e-api-token", "CLOUDFLARE_API_URL": e.simURL}
	code, out, stderr = runEnv(t, env, fmt.Sprintf("zone_id,account_id,destination_conf\n,%s,%s\n", acct, rows[7].conf), "preflight", "-")
	if code != 0 || !strings.Contains(out, "account-owned API token of account "+acct) {
		t.Fatalf("preflight = %d: %s %s", code, out, stderr)
	}
}

// sasContainer is a container with a SAS and the SAS's signature (a
// secret).
type sasContainer struct{ name, sas, sig string }

// writeOnlyContainer is an azurite container and a SAS that creates and
// writes but does not read, as Cloudflare advises for the destination_conf.
func writeOnlyContainer(t *testing.T) sasContainer {
	t.Helper()
	return writeOnlySAS(t, azuriteContainer(t).name, time.Now().Add(24*time.Hour))
}

// writeOnlySAS is a write-only SAS of an azurite container, expiring at
// expiry: SASes of one container with different expiries have different
// signatures, as a renewed SAS does.
func writeOnlySAS(t *testing.T, container string, expiry time.Time) sasContainer {
	t.Helper()
	cred, err := service.NewSharedKeyCredential(azuriteAccount, azuriteKey)
	if err != nil {
		t.Fatal(err)
	}
	q, err := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: expiry,
		Permissions: (&sas.ContainerPermissions{Write: true, Create: true}).String(), ContainerName: container}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	return sasContainer{name: container, sas: q.Encode(), sig: q.Signature()}
}

// TestStorageFromEnv: the worker's Azure read identity and blob endpoint
// come from the environment, never from the conf; a half-set key or an
// endpoint that is no http URL is an error that does not quote it.
func TestStorageFromEnv(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) Env { return Env{Getenv: func(k string) string { return m[k] }} }
	c, err := storageFromEnv(env(map[string]string{"AZURE_STORAGE_ACCOUNT": " acct ", "AZURE_STORAGE_KEY": "a2V5", "AZURE_DEFAULT_CREDENTIAL": "true"}))
	if err != nil || c.AzureAccountName != "acct" || c.AzureAccountKey != "a2V5" || !c.AzureDefaultCredential {
		t.Fatalf("storageFromEnv = %+v, %v", c.AzureAccountName, err)
	}
	c, err = storageFromEnv(env(map[string]string{"AZURE_STORAGE_BLOB_ENDPOINT": " http://127.0.0.1:10000/devstoreaccount1 "}))
	if err != nil || c.AzureEndpoint != "http://127.0.0.1:10000/devstoreaccount1" {
		t.Fatalf("storageFromEnv: endpoint %q, %v", c.AzureEndpoint, err)
	}
	for _, m := range []map[string]string{{"AZURE_STORAGE_ACCOUNT": "acct"}, {"AZURE_DEFAULT_CREDENTIAL": "maybe"},
		{"AZURE_STORAGE_BLOB_ENDPOINT": "127.0.0.1:10000"}, {"AZURE_STORAGE_BLOB_ENDPOINT": "https://a2V5.blob.core.windows.net/?sig=a2V5"}} {
		if _, err := storageFromEnv(env(m)); err == nil || strings.Contains(err.Error(), "a2V5") {
			t.Errorf("storageFromEnv(%v) = %v, want an error", m, err)
		}
	}
}
