package destination

import (
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
	// Written between before and now (whole seconds, so a second early).
	if after := time.Now(); obj.ModTime.Before(before.Add(-time.Second)) || obj.ModTime.After(after) {
		t.Errorf("mod time %v is not between the write's start %v and the read's end %v", obj.ModTime, before, after)
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
