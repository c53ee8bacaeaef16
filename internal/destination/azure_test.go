package destination

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
)

// Azurite's well-known development account, published in its README and
// Microsoft's documentation: not a secret anywhere, but the tests treat it
// as one.
const (
	azuriteAccount = "devstoreaccount1"
	azuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// azuriteStart starts Azurite once for the whole test binary, with
// scripts/azurite, when nothing answers on its port.
var azuriteStart = sync.OnceValues(startAzurite)

func azuritePort() string {
	if p := os.Getenv("AZURITE_PORT"); p != "" {
		return p
	}
	return "10000"
}

func azuriteAnswers() bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", azuritePort()), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// startAzurite runs scripts/azurite (found from the module root) unless
// Azurite already answers, and returns the blob endpoint of the dev account.
func startAzurite() (string, error) {
	endpoint := "http://127.0.0.1:" + azuritePort() + "/" + azuriteAccount
	if azuriteAnswers() {
		return endpoint, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's directory: cannot find scripts/azurite")
		}
		dir = parent
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // an npm install may come first
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "scripts", "azurite"))
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("scripts/azurite: %w\n%s", err, out)
	}
	if !azuriteAnswers() {
		return "", fmt.Errorf("scripts/azurite succeeded but nothing answers on port %s:\n%s", azuritePort(), out)
	}
	return endpoint, nil
}

// requireAzurite returns the Azurite endpoint, starting Azurite if needed.
// It fails the test when Azurite cannot be had, unless
// LOGPUSH_SKIP_AZURITE=1.
func requireAzurite(t *testing.T) string {
	t.Helper()
	if os.Getenv("LOGPUSH_SKIP_AZURITE") == "1" {
		t.Skip("LOGPUSH_SKIP_AZURITE=1: not running the Azurite tests")
	}
	endpoint, err := azuriteStart()
	if err != nil {
		t.Fatalf("azurite is needed (set LOGPUSH_SKIP_AZURITE=1 to skip): %v", err)
	}
	return endpoint
}

// azureBundle is a container of its own in Azurite, a shared-key writer
// (Cloudflare's side) and a reader whose options the test chooses.
type azureBundle struct {
	endpoint  string
	container string
	writer    *Azure
	reader    *Azure
	cred      *service.SharedKeyCredential
	// bodyRead counts the response body bytes the reader consumed;
	// requests counts its requests.
	bodyRead, requests *atomic.Int64
	observed           *observations
}

func setupAzure(t *testing.T, opts AzureOptions) *azureBundle {
	t.Helper()
	endpoint := requireAzurite(t)
	b := &azureBundle{endpoint: endpoint, bodyRead: new(atomic.Int64), requests: new(atomic.Int64), observed: new(observations)}
	var err error
	b.cred, err = service.NewSharedKeyCredential(azuriteAccount, azuriteKey)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.NewClientWithSharedKeyCredential(endpoint+"/", b.cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	suffix := make([]byte, 8)
	rand.Read(suffix)
	b.container = "t" + hex.EncodeToString(suffix)
	if _, err := svc.CreateContainer(t.Context(), b.container, nil); err != nil {
		t.Fatalf("create container: %v", err)
	}
	t.Cleanup(func() { svc.DeleteContainer(context.Background(), b.container, nil) })

	b.writer, err = NewAzure(t.Context(), AzureOptions{Endpoint: endpoint, AccountName: azuriteAccount, AccountKey: azuriteKey})
	if err != nil {
		t.Fatal(err)
	}
	b.reader = b.newReader(t, opts)
	return b
}

// newReader returns an Azure reader of the bundle's Azurite that counts
// requests and body bytes in the bundle.
func (b *azureBundle) newReader(t *testing.T, opts AzureOptions) *Azure {
	t.Helper()
	if opts.Endpoint == "" {
		opts.Endpoint = b.endpoint
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Transport: &countingTransport{read: b.bodyRead, requests: b.requests}}
	}
	if opts.Observe == nil {
		opts.Observe = b.observed.observe
	}
	r, err := NewAzure(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sas returns a container SAS of the bundle's container, signed with the
// account key, granting perms.
func (b *azureBundle) sas(t *testing.T, perms sas.ContainerPermissions, expiry time.Time) string {
	t.Helper()
	q, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		ExpiryTime:    expiry,
		Permissions:   perms.String(),
		ContainerName: b.container,
	}.SignWithSharedKey(b.cred)
	if err != nil {
		t.Fatal(err)
	}
	return q.Encode()
}

func (b *azureBundle) readSAS(t *testing.T) string {
	return b.sas(t, sas.ContainerPermissions{Read: true}, time.Now().Add(time.Hour))
}

func (b *azureBundle) loc(key, sas string) Location {
	return Location{Scheme: "azure", Bucket: b.container, Key: key, Account: azuriteAccount, SAS: sas}
}

func (b *azureBundle) write(t *testing.T, key string, body []byte) {
	t.Helper()
	if err := b.writer.Write(t.Context(), b.loc(key, ""), body); err != nil {
		t.Fatal(err)
	}
}

func TestAzureReadWithSAS(t *testing.T) {
	t.Parallel()
	b := setupAzure(t, AzureOptions{}) // no credential but the location's SAS
	before := time.Now()
	b.write(t, "logs/challenge.txt", []byte("token-1"))
	// Last-Modified has whole seconds: a notBefore one second early accepts
	// a file written just after it.
	obj, err := b.reader.Read(t.Context(), b.loc("logs/challenge.txt", b.readSAS(t)), before.Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if string(obj.Body) != "token-1" {
		t.Errorf("body = %q", obj.Body)
	}
	// Written between before and now (whole seconds, so a second early).
	if after := time.Now(); obj.ModTime.Before(before.Add(-time.Second)) || obj.ModTime.After(after) {
		t.Errorf("mod time %v is not between the write's start %v and the read's end %v", obj.ModTime, before, after)
	}
	if n := b.requests.Load(); n != 1 {
		t.Errorf("%d requests for a fresh file, want 1", n)
	}
	if got := b.observed.list(); fmt.Sprint(got) != "[read ok]" {
		t.Errorf("observed %q, want [read ok]", got)
	}
}

func TestAzureReadWithSharedKey(t *testing.T) {
	t.Parallel()
	b := setupAzure(t, AzureOptions{AccountName: azuriteAccount, AccountKey: azuriteKey})
	b.write(t, "k", []byte("tok"))
	// No SAS: the account key.
	obj, err := b.reader.Read(t.Context(), b.loc("k", ""), time.Time{})
	if err != nil || string(obj.Body) != "tok" {
		t.Fatalf("read %q, %v", obj.Body, err)
	}
	// The same with the connection string of the account.
	conn := fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;", azuriteAccount, azuriteKey, b.endpoint)
	r := b.newReader(t, AzureOptions{Endpoint: b.endpoint, ConnectionString: conn})
	if obj, err := r.Read(t.Context(), b.loc("k", ""), time.Time{}); err != nil || string(obj.Body) != "tok" {
		t.Fatalf("connection string: read %q, %v", obj.Body, err)
	}
}

// checkSASWithout checks err, of an operation whose SAS does not grant it
// and with no other credential configured: Permanent, naming permission,
// saying want, and made without a request.
func (b *azureBundle) checkSASWithout(t *testing.T, err error, permission, want string) {
	t.Helper()
	e := requireError(t, err, Permanent)
	if e.Permission != permission {
		t.Errorf("permission = %q, want %q", e.Permission, permission)
	}
	if err.Error() != want {
		t.Errorf("err = %q\nwant %q", err, want)
	}
	if n := b.requests.Load(); n != 0 {
		t.Errorf("%d requests with a SAS that does not grant the operation, want 0", n)
	}
}

func TestAzureReadSASWithoutRead(t *testing.T) {
	t.Parallel()
	b := setupAzure(t, AzureOptions{})
	b.write(t, "k", []byte("tok"))
	// What Cloudflare needs: create and write, no read.
	writeOnly := b.sas(t, sas.ContainerPermissions{Create: true, Write: true}, time.Now().Add(time.Hour))
	_, err := b.reader.Read(t.Context(), b.loc("k", writeOnly), time.Time{})
	b.checkSASWithout(t, err, "Blob read (sp=r in the SAS, or Storage Blob Data Reader)",
		"read azure://"+b.container+"/k: access denied: the reading identity needs Blob read (sp=r in the SAS, or Storage Blob Data Reader) "+
			"on container "+b.container+" of storage account devstoreaccount1: the SAS grants sp=cw, without read (r), "+
			"and no account key or Entra ID credential is configured for storage account devstoreaccount1")

	// With the account key configured, the key reads.
	r := b.newReader(t, AzureOptions{AccountName: azuriteAccount, AccountKey: azuriteKey})
	if obj, err := r.Read(t.Context(), b.loc("k", writeOnly), time.Time{}); err != nil || string(obj.Body) != "tok" {
		t.Fatalf("with the key: read %q, %v", obj.Body, err)
	}
}

// TestAzureReadSASRefused covers a SAS that says it reads but that storage
// refuses (here: signed with another key): Azurite answers 403
// AuthenticationFailed, a Permanent error naming the permission; with an
// account key configured, the key is tried next.
func TestAzureReadSASRefused(t *testing.T) {
	t.Parallel()
	b := setupAzure(t, AzureOptions{})
	b.write(t, "k", []byte("tok"))
	forged := forgeSig(t, b.readSAS(t))
	_, err := b.reader.Read(t.Context(), b.loc("k", forged), time.Time{})
	e := requireError(t, err, Permanent)
	if e.Permission == "" {
		t.Error("no permission named")
	}
	// Azure answers AuthenticationFailed (its error text then says that the
	// signature was rejected); Azurite AuthorizationFailure.
	if !strings.Contains(err.Error(), ": HTTP 403 Authenticat") && !strings.Contains(err.Error(), ": HTTP 403 AuthorizationFailure") {
		t.Errorf("err = %q", err)
	}
	assertNoAzureSecrets(t, err, forged)

	b.requests.Store(0)
	r := b.newReader(t, AzureOptions{AccountName: azuriteAccount, AccountKey: azuriteKey})
	if obj, err := r.Read(t.Context(), b.loc("k", forged), time.Time{}); err != nil || string(obj.Body) != "tok" {
		t.Fatalf("with the key after a refused SAS: read %q, %v", obj.Body, err)
	}
	if n := b.requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2 (the SAS, then the key)", n)
	}
}

// forgeSig replaces the signature of a SAS with another valid-looking one.
func forgeSig(t *testing.T, s string) string {
	t.Helper()
	q, err := url.ParseQuery(s)
	if err != nil {
		t.Fatal(err)
	}
	q.Set("sig", "Zm9yZ2VkLXNpZ25hdHVyZS1mb3ItdGVzdHMtb25seQ+/=")
	return q.Encode()
}

func TestAzureReadSASExpired(t *testing.T) {
	t.Parallel()
	b := setupAzure(t, AzureOptions{})
	b.write(t, "k", []byte("tok"))
	expired := b.sas(t, sas.ContainerPermissions{Read: true}, time.Now().Add(-time.Hour))
	_, err := b.reader.Read(t.Context(), b.loc("k", expired), time.Time{})
	requireError(t, err, Permanent)
	if !strings.Contains(err.Error(), ": the SAS expired at ") {
		t.Errorf("err = %q", err)
	}
	if n := b.requests.Load(); n != 0 {
		t.Errorf("%d requests with an expired SAS, want 0", n)
	}
}

func TestAzureContainerMissing(t *testing.T) {
	t.Parallel()
	b := setupAzure(t, AzureOptions{AccountName: azuriteAccount, AccountKey: azuriteKey})
	loc := Location{Scheme: "azure", Bucket: "nocontainer", Key: "k", Account: azuriteAccount}
	_, err := b.reader.Read(t.Context(), loc, time.Time{})
	e := requireError(t, err, Permanent)
	if e.Permission != "" {
		t.Errorf("permission = %q", e.Permission)
	}
	if want := "read azure://nocontainer/k: container does not exist: HTTP 404 ContainerNotFound: The specified container does not exist."; err.Error() != want {
		t.Errorf("err = %q\nwant %q", err, want)
	}
	err = b.reader.Write(t.Context(), loc, []byte("x"))
	requireError(t, err, Permanent)
	if !strings.HasPrefix(err.Error(), "write azure://nocontainer/k: container does not exist: ") {
		t.Errorf("err = %q", err)
	}
	// The same through a SAS of that (missing) container.
	q, err := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour),
		Permissions: "r", ContainerName: "nocontainer"}.SignWithSharedKey(b.cred)
	if err != nil {
		t.Fatal(err)
	}
	loc.SAS = q.Encode()
	_, err = b.newReader(t, AzureOptions{}).Read(t.Context(), loc, time.Time{})
	requireError(t, err, Permanent)
	if !strings.Contains(err.Error(), "container does not exist") {
		t.Errorf("err = %q", err)
	}
}

// TestAzureNoSecrets runs failure paths with a SAS and the account key and
// checks that neither the signature nor the key shows in any error, in a
// Location's String, GoString, LogValue or JSON.
func TestAzureNoSecrets(t *testing.T) {
	t.Parallel()
	b := setupAzure(t, AzureOptions{})
	b.write(t, "big", bytes.Repeat([]byte("x"), 100))
	good := b.readSAS(t)
	forged := forgeSig(t, good)
	keyed := b.newReader(t, AzureOptions{AccountName: azuriteAccount, AccountKey: azuriteKey, MaxBodyBytes: 10})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedURL := "http://" + l.Addr().String() + "/" + azuriteAccount
	l.Close()
	refused := b.newReader(t, AzureOptions{Endpoint: refusedURL, MaxAttempts: 1})
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	read := func(r *Azure, ctx context.Context, loc Location, notBefore time.Time) error {
		_, err := r.Read(ctx, loc, notBefore)
		return err
	}
	noContainer := Location{Scheme: "azure", Bucket: "nocontainer", Key: "k", Account: azuriteAccount, SAS: good}

	errs := []error{
		read(b.reader, t.Context(), b.loc("big", forged), time.Time{}),
		read(b.reader, t.Context(), b.loc("missing", good), time.Time{}),
		read(b.reader, t.Context(), b.loc("big", good), time.Now().Add(time.Hour)),
		read(b.reader, t.Context(), noContainer, time.Time{}),
		read(keyed, t.Context(), b.loc("big", ""), time.Time{}),
		read(keyed, t.Context(), Location{Scheme: "azure", Bucket: "nocontainer", Key: "k", Account: azuriteAccount}, time.Time{}),
		read(refused, t.Context(), b.loc("big", good), time.Time{}),
		read(b.reader, canceled, b.loc("big", good), time.Time{}),
		b.reader.Write(t.Context(), b.loc("k", good), []byte("x")), // read-only SAS
		b.reader.Write(t.Context(), b.loc("k", forged+"&sp=rw"), []byte("x")),
		keyed.Write(canceled, b.loc("k", ""), []byte("x")),
	}
	for i, err := range errs {
		if err == nil {
			t.Errorf("case %d: no error", i)
			continue
		}
		assertNoAzureSecrets(t, err, good, forged)
	}
	// The connection error really had the URL with the SAS in it.
	var uerr *url.Error
	if !errors.As(errs[6], &uerr) || !strings.Contains(uerr.URL, "sig=") {
		t.Errorf("connection error %v has no URL with a signature to hide", errs[6])
	} else if !IsTransient(errs[6]) {
		t.Errorf("connection refused: %v, want transient", errs[6])
	}

	loc := b.loc("k", good)
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "loc", loc, "err", errs[0])
	js, err := json.Marshal(loc)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{loc.String(), fmt.Sprint(loc), fmt.Sprintf("%+v", loc), fmt.Sprintf("%#v", loc), logged.String(), string(js)} {
		if strings.Contains(s, "sig=") || strings.Contains(s, good) {
			t.Errorf("location shown with its SAS: %s", s)
		}
	}
	if got := fmt.Sprintf("%#v", loc); !strings.HasPrefix(got, "destination.Location{Scheme:\"azure\"") || !strings.Contains(got, `SAS:"REDACTED"`) {
		t.Errorf("GoString = %s", got)
	}
}

// assertNoAzureSecrets fails the test if err shows the account key or the
// signature of one of the SASes, in any form.
func assertNoAzureSecrets(t *testing.T, err error, sases ...string) {
	t.Helper()
	secrets := []string{azuriteKey}
	for _, s := range sases {
		q, perr := url.ParseQuery(s)
		if perr != nil {
			t.Fatal(perr)
		}
		sig := q.Get("sig")
		secrets = append(secrets, s, sig, url.QueryEscape(sig), url.PathEscape(sig))
	}
	for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		for _, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("error shows a secret (%.8s...): %s", secret, text)
			}
		}
	}
}

// azureErrorServer answers every request with an Azure Storage error and
// counts them.
func azureErrorServer(t *testing.T, status int, code string) (url string, requests *atomic.Int64) {
	t.Helper()
	requests = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		writeAzureError(w, status, code)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/account1", requests
}

// writeAzureError answers with an Azure Storage error: its code in a
// header and in the XML body, whose message spans lines as Azure's do.
func writeAzureError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("X-Ms-Error-Code", code)
	w.Header().Set("X-Ms-Request-Id", "req-1")
	w.WriteHeader(status)
	fmt.Fprintf(w, "\ufeff<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>%s</Code><Message>message for %s\nRequestId:req-1\nTime:2025-06-01T12:00:00.0000000Z</Message></Error>", code, code)
}

// failingCredential is a token credential that gets no token.
type failingCredential struct{}

func (failingCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{}, errors.New("no managed identity endpoint")
}

func TestAzureTokenCredential(t *testing.T) {
	t.Parallel()
	url, requests := azureErrorServer(t, 500, "InternalError")
	r, err := NewAzure(t.Context(), AzureOptions{Endpoint: url, Credential: failingCredential{}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Read(t.Context(), Location{Scheme: "azure", Bucket: "c", Key: "k", Account: "account1"}, time.Time{})
	requireError(t, err, Permanent)
	if !strings.Contains(err.Error(), "cannot get an access token with the credentials of this process: ") ||
		!strings.Contains(err.Error(), "no managed identity endpoint") {
		t.Errorf("err = %q", err)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests without a token", n)
	}
}

func TestAzureLocationChecks(t *testing.T) {
	t.Parallel()
	r, err := NewAzure(t.Context(), AzureOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		loc  Location
		want string
	}{
		{Location{Scheme: "azure", Key: "k", Account: "acct"}, "invalid location: empty container"},
		{Location{Scheme: "azure", Bucket: "c", Account: "acct"}, "invalid location: empty blob name"},
		{Location{Scheme: "azure", Bucket: "c", Key: "k", SAS: "sp=r&sig=x"}, "the destination names no storage account"},
		{Location{Scheme: "azure", Bucket: "c", Key: "k", Account: "evil.example.com/x", SAS: "sp=r&sig=x"}, "invalid location: the storage account name"},
		{Location{Scheme: "azure", Bucket: "c", Key: "k", Account: "acct"}, "the destination has no SAS, and no account key or Entra ID credential is configured for storage account acct"},
		{Location{Scheme: "azure", Bucket: "c", Key: "k", Account: "acct", SAS: "sv=2024&sp=r"}, "the SAS is not a query string with a signature (sig=)"},
	}
	for _, tt := range tests {
		_, err := r.Read(t.Context(), tt.loc, time.Time{})
		requireError(t, err, Permanent)
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Read(%v): err = %q, want %q in it", tt.loc, err, tt.want)
		}
	}
}

func TestNewAzureInvalidOptions(t *testing.T) {
	t.Parallel()
	for _, opts := range []AzureOptions{
		{MaxBodyBytes: -1},
		{MaxAttempts: -1},
		{AccountName: azuriteAccount},
		{AccountKey: azuriteKey},
		{AccountName: "Not-An-Account", AccountKey: azuriteKey},
		{AccountName: azuriteAccount, AccountKey: azuriteKey, ConnectionString: "AccountName=a;AccountKey=" + azuriteKey},
		{AccountName: azuriteAccount, AccountKey: "not base64 " + testSecret},
		{ConnectionString: "nonsense;AccountKey=" + testSecret},
		{Endpoint: "127.0.0.1:10000"},
		{Endpoint: "http://user:" + testSecret + "@host"},
		{Endpoint: "http://host/acct?sig=" + testSecret},
		{DefaultCredential: true, Credential: failingCredential{}},
	} {
		_, err := NewAzure(t.Context(), opts)
		if err == nil {
			t.Errorf("NewAzure(%+v) succeeded", opts)
			continue
		}
		for _, secret := range []string{testSecret, azuriteKey} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("err = %q contains a secret", err)
			}
		}
	}
}
