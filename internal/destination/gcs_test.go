package destination

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// gcsBundle is a GCS reader and writer talking to an in-process
// fake-gcs-server.
type gcsBundle struct {
	gcs    *GCS
	server *fakestorage.Server
	// bodyRead counts the response body bytes the GCS client consumed;
	// requests counts its requests.
	bodyRead, requests *atomic.Int64
	observed           *observations
}

// setupGCS starts fake-gcs-server on 127.0.0.1, without TLS, with bucket
// testBucket.
func setupGCS(t *testing.T, opts GCSOptions) *gcsBundle {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http",
		Host:   "127.0.0.1",
		// The XML API answers on the public host; without a port in it, any
		// port matches.
		PublicHost: "127.0.0.1",
		Writer:     io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: testBucket})
	b := setupGCSServer(t, srv.URL(), opts)
	b.server = srv
	return b
}

// setupGCSServer returns a bundle whose GCS talks to url as an emulator.
func setupGCSServer(t *testing.T, url string, opts GCSOptions) *gcsBundle {
	t.Helper()
	b := &gcsBundle{bodyRead: new(atomic.Int64), requests: new(atomic.Int64), observed: new(observations)}
	if opts.Endpoint == "" {
		opts.Endpoint = url
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Transport: &countingTransport{read: b.bodyRead, requests: b.requests}}
	}
	if opts.Observe == nil {
		opts.Observe = b.observed.observe
	}
	g, err := NewGCS(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	b.gcs = g
	return b
}

// countingTransport counts requests and the response body bytes its
// caller reads; rewrite, when set, changes each request first.
type countingTransport struct {
	read, requests *atomic.Int64
	rewrite        func(*http.Request)
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.rewrite != nil {
		r = r.Clone(r.Context())
		c.rewrite(r)
	}
	if c.requests != nil {
		c.requests.Add(1)
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if c.read != nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, n: c.read}
	}
	return resp, nil
}

func gcsLoc(key string) Location {
	return Location{Scheme: "gs", Bucket: testBucket, Key: key}
}

func TestGCSReadNotFound(t *testing.T) {
	t.Parallel()
	b := setupGCS(t, GCSOptions{})
	_, err := b.gcs.Read(t.Context(), gcsLoc("logs/challenge.txt"), time.Time{})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if IsTransient(err) {
		t.Error("not found is transient, want not-yet")
	}
	if want := "read gs://bucket/logs/challenge.txt: object not found"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	if got := b.observed.list(); len(got) != 1 || got[0] != "read not_found" {
		t.Errorf("observed %q, want [read not_found]", got)
	}
}

func TestGCSWriteThenRead(t *testing.T) {
	t.Parallel()
	b := setupGCS(t, GCSOptions{})
	loc := gcsLoc("logs/challenge.txt")
	before := time.Now()
	if err := b.gcs.Write(t.Context(), loc, []byte("token-1")); err != nil {
		t.Fatal(err)
	}
	b.requests.Store(0)
	// Last-Modified has whole seconds: a notBefore one second early accepts
	// a file written just after it.
	obj, err := b.gcs.Read(t.Context(), loc, before.Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if string(obj.Body) != "token-1" {
		t.Errorf("body = %q", obj.Body)
	}
	if d := obj.ModTime.Sub(before); d < -time.Second || d > 5*time.Second {
		t.Errorf("mod time %v is not near the write at %v", obj.ModTime, before)
	}
	if n := b.requests.Load(); n != 1 {
		t.Errorf("%d requests for a fresh file, want 1", n)
	}
	if got, want := b.observed.list(), []string{"write ok", "read ok"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("observed %q, want %q", got, want)
	}
	// The object the fake holds is the one written.
	o, err := b.server.GetObject(testBucket, loc.Key)
	if err != nil || string(o.Content) != "token-1" {
		t.Errorf("fake holds %q, %v", o.Content, err)
	}
}

func TestGCSReadStale(t *testing.T) {
	t.Parallel()
	b := setupGCS(t, GCSOptions{})
	loc := gcsLoc("logs/challenge.txt")
	// A body large enough that the transport would not have it all buffered.
	if err := b.gcs.Write(t.Context(), loc, bytes.Repeat([]byte("x"), 32<<10)); err != nil {
		t.Fatal(err)
	}
	notBefore := time.Now().Add(2 * time.Second)
	b.bodyRead.Store(0)
	b.requests.Store(0)
	obj, err := b.gcs.Read(t.Context(), loc, notBefore)
	if !errors.Is(err, ErrStale) {
		t.Fatalf("err = %v, want ErrStale", err)
	}
	if IsTransient(err) {
		t.Error("stale is transient, want not-yet")
	}
	if obj.Body != nil {
		t.Errorf("stale read returned a body")
	}
	if n := b.bodyRead.Load(); n != 0 {
		t.Errorf("read %d body bytes of a stale object, want 0", n)
	}
	if n := b.requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	if !strings.HasPrefix(err.Error(), "read gs://bucket/logs/challenge.txt: last modified ") ||
		!strings.HasSuffix(err.Error(), ": object last modified before the challenge request") {
		t.Errorf("err = %q", err)
	}
}

func TestGCSReadBodyCap(t *testing.T) {
	t.Parallel()
	b := setupGCS(t, GCSOptions{MaxBodyBytes: 16})
	exact, over := gcsLoc("exact"), gcsLoc("over")
	if err := b.gcs.Write(t.Context(), exact, bytes.Repeat([]byte("a"), 16)); err != nil {
		t.Fatal(err)
	}
	if err := b.gcs.Write(t.Context(), over, bytes.Repeat([]byte("a"), 17)); err != nil {
		t.Fatal(err)
	}
	checkBodyCap(t, b.gcs, exact, over, b.bodyRead, "read gs://bucket/over: challenge file larger than 16 bytes")
}

// TestGCSReadBodyCapNoContentLength covers a response streamed without a
// Content-Length: the cap holds while reading.
func TestGCSReadBodyCapNoContentLength(t *testing.T) {
	t.Parallel()
	b := setupGCSServer(t, chunkedServer(t), GCSOptions{MaxBodyBytes: 100})
	checkChunkedCap(t, b.gcs, gcsLoc("k"), b.bodyRead)
}

func TestGCSReadBucketMissing(t *testing.T) {
	t.Parallel()
	b := setupGCS(t, GCSOptions{})
	loc := Location{Scheme: "gs", Bucket: "nobucket", Key: "k"}
	_, err := b.gcs.Read(t.Context(), loc, time.Time{})
	e := requireError(t, err, Permanent)
	if e.Permission != "" {
		t.Errorf("permission = %q", e.Permission)
	}
	if !strings.HasPrefix(err.Error(), "read gs://nobucket/k: bucket does not exist: HTTP 404") {
		t.Errorf("err = %q", err)
	}
	err = b.gcs.Write(t.Context(), loc, []byte("x"))
	requireError(t, err, Permanent)
	if !strings.HasPrefix(err.Error(), "write gs://nobucket/k: bucket does not exist: HTTP 404") {
		t.Errorf("err = %q", err)
	}
}

// gcsErrorServer answers object requests with a GCS error, XML for the XML
// API (reads) and JSON for the JSON API (uploads), and bucket metadata
// requests with the bucket. It counts the object requests.
func gcsErrorServer(t *testing.T, status int, code, message string) (url string, requests *atomic.Int64) {
	t.Helper()
	requests = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/storage/v1/b/"+testBucket {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"kind":"storage#bucket","name":%q}`, testBucket)
			return
		}
		requests.Add(1)
		if strings.HasPrefix(r.URL.Path, "/upload/") {
			w.Header().Set("Content-Type", "application/json; charset=UTF-8")
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
				"code": status, "message": message,
				"errors": []map[string]string{{"message": message, "domain": "global", "reason": code}},
			}})
			return
		}
		w.Header().Set("Content-Type", "application/xml; charset=UTF-8")
		w.WriteHeader(status)
		if code != "" {
			fmt.Fprintf(w, `<?xml version='1.0' encoding='UTF-8'?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, message)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, requests
}

func TestGCSErrorMapping(t *testing.T) {
	t.Parallel()
	const denied = "sa@p.iam.gserviceaccount.com does not have storage.objects.get access to the Google Cloud Storage object."
	tests := []struct {
		name       string
		status     int
		code, msg  string
		op         string
		notFound   bool
		kind       Kind
		permission string
		prefix     string // of the error text
		requests   int64  // with MaxAttempts 2
	}{
		{name: "no such key", status: 404, code: "NoSuchKey", msg: "The specified key does not exist.", op: opRead, notFound: true, requests: 1},
		{name: "bare 404", status: 404, op: opRead, notFound: true, requests: 1},
		{name: "no such bucket", status: 404, code: "NoSuchBucket", msg: "The specified bucket does not exist.", op: opRead, kind: Permanent, requests: 1,
			prefix: "read gs://bucket/k: bucket does not exist: HTTP 404 NoSuchBucket: The specified bucket does not exist."},
		{name: "no bucket write", status: 404, code: "notFound", msg: "The specified bucket does not exist.", op: opWrite, kind: Permanent, requests: 1,
			prefix: "write gs://bucket/k: bucket does not exist: HTTP 404 notFound: "},
		{name: "access denied read", status: 403, code: "AccessDenied", msg: "Access denied.", op: opRead, kind: Permanent, permission: "storage.objects.get", requests: 1,
			prefix: "read gs://bucket/k: access denied: the reading identity (the default credentials of this process) needs storage.objects.get: HTTP 403 AccessDenied: Access denied."},
		{name: "access denied write", status: 403, code: "forbidden", msg: denied, op: opWrite, kind: Permanent, requests: 1,
			permission: "storage.objects.create (and storage.objects.delete to replace a file)",
			prefix:     "write gs://bucket/k: access denied: the writing identity sa@p.iam.gserviceaccount.com needs storage.objects.create (and storage.objects.delete to replace a file): HTTP 403 forbidden: " + denied},
		{name: "unauthorized", status: 401, code: "AuthenticationRequired", msg: "Invalid Credentials", op: opRead, kind: Permanent, requests: 1,
			prefix: "read gs://bucket/k: storage rejected the credentials of this process: HTTP 401"},
		{name: "other 400", status: 400, code: "InvalidArgument", msg: "Invalid argument.", op: opRead, kind: Permanent, requests: 1},
		{name: "429", status: 429, code: "SlowDown", msg: "Please reduce your request rate.", op: opRead, kind: Transient, requests: 2,
			prefix: "read gs://bucket/k: throttled by storage: HTTP 429 SlowDown: Please reduce your request rate."},
		{name: "rate limit write", status: 429, code: "rateLimitExceeded", msg: "The object exceeded the rate limit.", op: opWrite, kind: Transient, requests: 1,
			prefix: "write gs://bucket/k: throttled by storage: "},
		{name: "service unavailable", status: 503, code: "ServiceUnavailable", msg: "Service unavailable.", op: opRead, kind: Transient, requests: 2,
			prefix: "read gs://bucket/k: storage unavailable: HTTP 503 ServiceUnavailable"},
		{name: "internal error", status: 500, code: "InternalError", msg: "We encountered an internal error.", op: opRead, kind: Transient, requests: 2},
		{name: "bad gateway write", status: 502, code: "backendError", msg: "Backend Error", op: opWrite, kind: Transient, requests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url, requests := gcsErrorServer(t, tt.status, tt.code, tt.msg)
			b := setupGCSServer(t, url, GCSOptions{})
			err := checkErrorCase(t, b.gcs, gcsLoc("k"), requests, errorCase{op: tt.op, notFound: tt.notFound, kind: tt.kind,
				permission: tt.permission, prefix: tt.prefix, code: tt.code, requests: tt.requests})
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %q spans lines", err)
			}
		})
	}
}

func TestGCSReadContextCanceled(t *testing.T) {
	t.Parallel()
	b := setupGCS(t, GCSOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := b.gcs.Read(ctx, gcsLoc("k"), time.Time{})
	requireError(t, err, Transient)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v does not wrap context.Canceled", err)
	}
}

func TestGCSReadTimeout(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	b := setupGCSServer(t, srv.URL, GCSOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := b.gcs.Read(ctx, gcsLoc("k"), time.Time{})
	requireError(t, err, Transient)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v does not wrap context.DeadlineExceeded", err)
	}
}

func TestGCSReadConnectionRefused(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	b := setupGCSServer(t, url, GCSOptions{MaxAttempts: 1})
	_, err = b.gcs.Read(t.Context(), gcsLoc("k"), time.Time{})
	requireError(t, err, Transient)
}

func TestGCSInvalidLocation(t *testing.T) {
	t.Parallel()
	b := setupGCS(t, GCSOptions{})
	for _, loc := range []Location{{Scheme: "gs", Key: "k"}, {Scheme: "gs", Bucket: "b"}} {
		_, err := b.gcs.Read(t.Context(), loc, time.Time{})
		requireError(t, err, Permanent)
		if !strings.Contains(err.Error(), "invalid location") {
			t.Errorf("err = %q", err)
		}
	}
}

func TestNewGCSInvalidOptions(t *testing.T) {
	t.Parallel()
	for _, opts := range []GCSOptions{
		{Endpoint: "http://127.0.0.1:1", MaxBodyBytes: -1},
		{Endpoint: "http://127.0.0.1:1", MaxAttempts: -1},
		{Endpoint: "localhost:4443"},
		{Endpoint: "http://user:" + testSecret + "@host"},
	} {
		_, err := NewGCS(t.Context(), opts)
		if err == nil {
			t.Errorf("NewGCS(%+v) succeeded", opts)
			continue
		}
		if strings.Contains(err.Error(), testSecret) {
			t.Errorf("err = %q contains the secret", err)
		}
	}
}

// TestGCSEmulatorHostFromEnvironment checks that, with no Endpoint option,
// STORAGE_EMULATOR_HOST is honoured, without credentials. It sets the
// environment, so it cannot run in parallel.
func TestGCSEmulatorHostFromEnvironment(t *testing.T) {
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1", PublicHost: "127.0.0.1", Writer: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: testBucket})
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(srv.URL(), "http://"))
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "missing.json"))

	g, err := NewGCS(t.Context(), GCSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	loc := gcsLoc("from-env.txt")
	if err := g.Write(t.Context(), loc, []byte("env")); err != nil {
		t.Fatal(err)
	}
	obj, err := g.Read(t.Context(), loc, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if string(obj.Body) != "env" {
		t.Errorf("body = %q", obj.Body)
	}
}

// serviceAccountFile writes a service account key file whose token_uri is
// tokenURL.
func serviceAccountFile(t *testing.T, tokenURL string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "test-project",
		"private_key_id": "key1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "reader@test-project.iam.gserviceaccount.com",
		"client_id":      "1",
		"token_uri":      tokenURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(name, sa, 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestGCSCredentialsFile runs the authenticated path (no emulator) without
// leaving the machine: the key file's token_uri is a local token server, and
// the HTTP client sends what would go to storage.googleapis.com to a local
// fake. The token reaches storage; a token server that refuses the key makes
// a Permanent error naming the identity.
func TestGCSCredentialsFile(t *testing.T) {
	t.Parallel()
	var tokenCalls atomic.Int64
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokenCalls.Add(1)
		r.ParseForm()
		if r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || r.Form.Get("assertion") == "" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"ya29.test-token","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(tokenSrv.Close)
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`)
	}))
	t.Cleanup(refusing.Close)

	var auth atomic.Value
	storageSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth.Store(r.Header.Get("Authorization"))
		w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
		fmt.Fprint(w, "tok")
	}))
	t.Cleanup(storageSrv.Close)
	local := strings.TrimPrefix(storageSrv.URL, "http://")
	client := &http.Client{Transport: &countingTransport{rewrite: func(r *http.Request) {
		if r.URL.Hostname() != "127.0.0.1" {
			r.URL.Scheme, r.URL.Host, r.Host = "http", local, local
		}
	}}}

	g, err := NewGCS(t.Context(), GCSOptions{CredentialsFile: serviceAccountFile(t, tokenSrv.URL), HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	obj, err := g.Read(t.Context(), gcsLoc("k"), time.Time{})
	if err != nil || string(obj.Body) != "tok" {
		t.Fatalf("read %q, %v", obj.Body, err)
	}
	if got := auth.Load(); got != "Bearer ya29.test-token" {
		t.Errorf("Authorization = %q", got)
	}
	if tokenCalls.Load() != 1 {
		t.Errorf("%d token requests", tokenCalls.Load())
	}

	// A per-location identity whose key the token server refuses.
	refused := serviceAccountFile(t, refusing.URL)
	loc := gcsLoc("k")
	loc.As = Identity{GCPCredentialsFile: refused}
	_, err = g.Read(t.Context(), loc, time.Time{})
	requireError(t, err, Permanent)
	if want := "read gs://bucket/k as gcp credentials file " + refused + ": cannot get an access token with the credentials of this process: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %q\nwant prefix %q", err, want)
	}

	// Only service account keys are accepted.
	user := filepath.Join(t.TempDir(), "user.json")
	if err := os.WriteFile(user, []byte(`{"type":"authorized_user","client_id":"c","client_secret":"s3cr3t-value","refresh_token":"r"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = NewGCS(t.Context(), GCSOptions{CredentialsFile: user, HTTPClient: client})
	if err == nil {
		t.Fatal("NewGCS accepted an authorized_user file")
	}
	if strings.Contains(err.Error(), "s3cr3t-value") {
		t.Errorf("err = %q contains the secret", err)
	}
	t.Logf("authorized_user: %v", err)
}
