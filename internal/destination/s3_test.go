package destination

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

const (
	testKeyID  = "AKIASECRETEXAMPLE"
	testSecret = "sEcReTkEy"
	testBucket = "bucket"
)

var testCreds = credentials.NewStaticCredentialsProvider(testKeyID, testSecret, "")

// s3Bundle is an S3 reader and writer talking to an in-process gofakes3.
type s3Bundle struct {
	s3      *S3
	backend *s3mem.Backend
	url     string
	// bodyRead counts the response body bytes the S3 client consumed.
	bodyRead *atomic.Int64
	// observed collects Observe calls as "op outcome".
	observed *observations
}

type observations struct {
	mu  sync.Mutex
	got []string
}

func (o *observations) observe(op, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, op+" "+outcome)
}

func (o *observations) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.got...)
}

type s3Config struct {
	fakeOpts []gofakes3.Option
	opts     S3Options
}

func setupS3(t testing.TB, cfg s3Config) *s3Bundle {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend, cfg.fakeOpts...).Server())
	t.Cleanup(srv.Close)
	return setupS3Server(t, srv.URL, backend, cfg.opts)
}

// setupS3Server returns a bundle whose S3 talks to url.
func setupS3Server(t testing.TB, url string, backend *s3mem.Backend, opts S3Options) *s3Bundle {
	t.Helper()
	b := &s3Bundle{backend: backend, url: url, bodyRead: new(atomic.Int64), observed: new(observations)}
	if opts.Endpoint == "" {
		opts.Endpoint = url
	}
	if opts.Credentials == nil {
		opts.Credentials = testCreds
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &countingClient{read: b.bodyRead}
	}
	if opts.Observe == nil {
		opts.Observe = b.observed.observe
	}
	s, err := NewS3(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	b.s3 = s
	return b
}

// countingClient counts the response body bytes its caller reads.
type countingClient struct {
	read *atomic.Int64
}

func (c *countingClient) Do(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &countingBody{ReadCloser: resp.Body, n: c.read}
	return resp, nil
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func s3Loc(key string) Location {
	return Location{Scheme: "s3", Bucket: testBucket, Key: key, Region: "us-east-1"}
}

func requireError(t *testing.T, err error, kind Kind) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if e.Kind != kind {
		t.Fatalf("error %q: kind %v, want %v", err, e.Kind, kind)
	}
	return e
}

func TestS3WriteThenRead(t *testing.T) {
	t.Parallel()
	b := setupS3(t, s3Config{})
	loc := s3Loc("logs/challenge.txt")
	before := time.Now()
	if err := b.s3.Write(t.Context(), loc, []byte("token-1")); err != nil {
		t.Fatal(err)
	}
	// Last-Modified has whole seconds: a notBefore one second early accepts
	// a file written just after it.
	obj, err := b.s3.Read(t.Context(), loc, before.Add(-time.Second))
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
	if got, want := b.observed.list(), []string{"write ok", "read ok"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("observed %q, want %q", got, want)
	}
}

// TestS3LastModifiedPrecision pins what gofakes3 (like S3) sends: whole
// seconds. A file written at 12:00:00.700 reads back as 12:00:00, so a caller
// that passes its exact request time as notBefore would take a fresh file for
// a stale one; it must subtract at least a second (plus clock skew).
func TestS3LastModifiedPrecision(t *testing.T) {
	t.Parallel()
	written := time.Date(2025, 6, 1, 12, 0, 0, 700*int(time.Millisecond), time.UTC)
	b := setupS3(t, s3Config{fakeOpts: []gofakes3.Option{
		gofakes3.WithTimeSource(gofakes3.FixedTimeSource(written)),
		gofakes3.WithTimeSkewLimit(0),
	}})
	loc := s3Loc("challenge.txt")
	if err := b.s3.Write(t.Context(), loc, []byte("tok")); err != nil {
		t.Fatal(err)
	}
	obj, err := b.s3.Read(t.Context(), loc, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if want := written.Truncate(time.Second); !obj.ModTime.Equal(want) {
		t.Errorf("mod time %v, want %v (whole seconds)", obj.ModTime, want)
	}
	if _, err := b.s3.Read(t.Context(), loc, written); !errors.Is(err, ErrStale) {
		t.Errorf("notBefore = write time: err = %v, want ErrStale (second truncation)", err)
	}
	if _, err := b.s3.Read(t.Context(), loc, written.Add(-time.Second)); err != nil {
		t.Errorf("notBefore = write time - 1s: %v", err)
	}
}

func TestS3ReadBucketMissing(t *testing.T) {
	t.Parallel()
	b := setupS3(t, s3Config{})
	loc := Location{Scheme: "s3", Bucket: "nobucket", Key: "k"}
	_, err := b.s3.Read(t.Context(), loc, time.Time{})
	e := requireError(t, err, Permanent)
	if e.Permission != "" {
		t.Errorf("permission = %q", e.Permission)
	}
	if !strings.HasPrefix(err.Error(), "read s3://nobucket/k: bucket does not exist: ") {
		t.Errorf("err = %q", err)
	}
	err = b.s3.Write(t.Context(), loc, []byte("x"))
	requireError(t, err, Permanent)
	if !strings.HasPrefix(err.Error(), "write s3://nobucket/k: bucket does not exist: ") {
		t.Errorf("err = %q", err)
	}
}

// errorServer answers every request with an S3 XML error and counts them.
func errorServer(t *testing.T, status int, code string, header http.Header) (url string, requests *atomic.Int64) {
	t.Helper()
	requests = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		writeS3Error(w, r, status, code, header)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, requests
}

// writeS3Error answers r with an S3 XML error.
func writeS3Error(w http.ResponseWriter, r *http.Request, status int, code string, header http.Header) {
	for k, v := range header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("X-Amz-Request-Id", "REQ123")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+
			`<Error><Code>%s</Code><Message>message for %s</Message><RequestId>REQ123</RequestId></Error>`, code, code)
	}
}

func TestS3ReadTimeout(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	b := setupS3Server(t, srv.URL, nil, S3Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := b.s3.Read(ctx, s3Loc("k"), time.Time{})
	requireError(t, err, Transient)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v does not wrap context.DeadlineExceeded", err)
	}
}

func TestS3ReadConnectionRefused(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	b := setupS3Server(t, url, nil, S3Options{MaxAttempts: 1})
	_, err = b.s3.Read(t.Context(), s3Loc("k"), time.Time{})
	requireError(t, err, Transient)
}

func TestS3InvalidLocation(t *testing.T) {
	t.Parallel()
	b := setupS3(t, s3Config{})
	for _, loc := range []Location{
		{Scheme: "s3", Key: "k"},
		{Scheme: "s3", Bucket: "b"},
		{Scheme: "s3", Bucket: "b", Key: "k", Region: "us-east-1.evil.example/"},
	} {
		_, err := b.s3.Read(t.Context(), loc, time.Time{})
		requireError(t, err, Permanent)
		if !strings.Contains(err.Error(), "invalid location") {
			t.Errorf("err = %q", err)
		}
	}
}

func TestS3ClientPerRegion(t *testing.T) {
	t.Parallel()
	b := setupS3(t, s3Config{})
	if err := b.s3.Write(t.Context(), s3Loc("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	for _, region := range []string{"", "us-east-1", "eu-west-1", "eu-west-1"} {
		loc := s3Loc("k")
		loc.Region = region
		if _, err := b.s3.Read(t.Context(), loc, time.Time{}); err != nil {
			t.Fatalf("region %q: %v", region, err)
		}
	}
	b.s3.mu.Lock()
	defer b.s3.mu.Unlock()
	if len(b.s3.clients) != 2 {
		t.Errorf("%d clients, want 2 (us-east-1, eu-west-1)", len(b.s3.clients))
	}
}

func TestNewS3InvalidOptions(t *testing.T) {
	t.Parallel()
	for _, opts := range []S3Options{
		{MaxBodyBytes: -1},
		{MaxAttempts: -1},
		{Endpoint: "localhost:9000"},
		{Endpoint: "ftp://user:" + testSecret + "@host"},
	} {
		_, err := NewS3(t.Context(), opts)
		if err == nil {
			t.Errorf("NewS3(%+v) succeeded", opts)
			continue
		}
		if strings.Contains(err.Error(), testSecret) {
			t.Errorf("err = %q contains the secret", err)
		}
	}
}

// TestS3EndpointFromEnvironment checks that, with no Endpoint option, the
// SDK's AWS_ENDPOINT_URL_S3 is honoured, with path-style addressing (the
// fake serves no virtual hosts, and bucket.127.0.0.1 does not resolve).
// It sets the environment, so it cannot run in parallel.
func TestS3EndpointFromEnvironment(t *testing.T) {
	backend := s3mem.New()
	if err := backend.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ENDPOINT_URL_S3", srv.URL)
	t.Setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "")

	s, err := NewS3(t.Context(), S3Options{Credentials: testCreds})
	if err != nil {
		t.Fatal(err)
	}
	loc := s3Loc("from-env.txt")
	if err := s.Write(t.Context(), loc, []byte("env")); err != nil {
		t.Fatal(err)
	}
	obj, err := s.Read(t.Context(), loc, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if string(obj.Body) != "env" {
		t.Errorf("body = %q", obj.Body)
	}
}

// TestS3NoSecretsInErrors runs the failure paths with static credentials,
// including against a hostile server that quotes the Authorization header and
// the secret key itself (which it could not know, but a broken proxy could
// echo anything) in its error message.
func TestS3NoSecretsInErrors(t *testing.T) {
	t.Parallel()
	const (
		realKeyID  = "AKIAIOSFODNN7EXAMPLE"
		realSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	)
	echoServer := func(keyID, secret string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `<Error><Code>InvalidAccessKeyId</Code><Message>key %s, auth %s, secret %s, url %s, token=abc</Message></Error>`,
				keyID, r.Header.Get("Authorization"), secret, r.URL)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	echo := setupS3Server(t, echoServer(testKeyID, testSecret), nil, S3Options{})
	echoReal := setupS3Server(t, echoServer(realKeyID, realSecret), nil, S3Options{
		Credentials: credentials.NewStaticCredentialsProvider(realKeyID, realSecret, "")})
	fake := setupS3(t, s3Config{opts: S3Options{MaxBodyBytes: 1}})
	if err := fake.s3.Write(t.Context(), s3Loc("big"), []byte("too big")); err != nil {
		t.Fatal(err)
	}
	deniedURL, _ := errorServer(t, 403, "AccessDenied", nil)
	denied := setupS3Server(t, deniedURL, nil, S3Options{})
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	read := func(b *s3Bundle, ctx context.Context, loc Location, notBefore time.Time) error {
		_, err := b.s3.Read(ctx, loc, notBefore)
		return err
	}
	noBucket := Location{Scheme: "s3", Bucket: "nobucket", Key: "k"}

	errs := []error{
		read(echo, t.Context(), s3Loc("k"), time.Time{}),
		echo.s3.Write(t.Context(), s3Loc("k"), []byte("x")),
		read(echoReal, t.Context(), s3Loc("k"), time.Time{}),
		read(fake, t.Context(), s3Loc("missing"), time.Time{}),
		read(fake, t.Context(), s3Loc("big"), time.Time{}),
		read(fake, t.Context(), s3Loc("big"), time.Now().Add(time.Hour)),
		read(fake, t.Context(), noBucket, time.Time{}),
		fake.s3.Write(t.Context(), noBucket, []byte("x")),
		read(fake, canceled, s3Loc("k"), time.Time{}),
		fake.s3.Write(canceled, s3Loc("k"), []byte("x")),
		read(denied, t.Context(), s3Loc("k"), time.Time{}),
		denied.s3.Write(t.Context(), s3Loc("k"), []byte("x")),
	}
	for i, err := range errs {
		if err == nil {
			t.Errorf("case %d: no error", i)
			continue
		}
		for _, secret := range []string{testKeyID, testSecret, realKeyID, realSecret, "token=abc"} {
			if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v", err), secret) {
				t.Errorf("case %d: error contains %q: %s", i, secret, err)
			}
		}
	}
	// The echo really carried the secrets, and the SDK error is still there
	// for errors.As.
	if !strings.Contains(errs[0].Error(), "REDACTED") {
		t.Errorf("echo error %q was not redacted", errs[0])
	}
	var apiErr smithy.APIError
	if !errors.As(errs[0], &apiErr) || !strings.Contains(apiErr.ErrorMessage(), testSecret) {
		t.Errorf("the original cause is not reachable with errors.As")
	}
	if loc := (Location{Scheme: "s3", Bucket: "b", Key: "k", Region: "us-east-1"}).String(); loc != "s3://b/k" {
		t.Errorf("location = %q", loc)
	}
	t.Logf("redacted echo: %s", errs[2])
}

var _ aws.HTTPClient = (*countingClient)(nil)

// TestS3Identity: a per-row profile that does not exist fails that
// destination with an error naming the profile, not the default chain.
func TestS3Identity(t *testing.T) {
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "credentials"))
	s, err := NewS3(context.Background(), S3Options{Endpoint: "http://127.0.0.1:1", Credentials: credentials.NewStaticCredentialsProvider("AKIAEXAMPLE", "secret", "")})
	if err != nil {
		t.Fatal(err)
	}
	loc := Location{Scheme: "s3", Bucket: "b", Key: "k", Region: "us-east-1", As: Identity{AWSProfile: "customer-a"}}
	_, err = s.Read(context.Background(), loc, time.Time{})
	var e *Error
	if !errors.As(err, &e) || e.Kind != Permanent || !strings.Contains(err.Error(), `aws profile "customer-a"`) || !strings.Contains(err.Error(), "as aws profile customer-a") {
		t.Fatalf("Read with a missing profile = %v", err)
	}
}

// TestS3NoCredentials: with no AWS credentials anywhere, a read says so
// and what to set, permanently: not a permission problem, not a retry.
// It changes the environment, so it does not run in parallel.
func TestS3NoCredentials(t *testing.T) {
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	s, err := NewS3(context.Background(), S3Options{Endpoint: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.cfg.Logger.(logging.Nop); !ok {
		t.Errorf("the SDK logs with %T: its WARN lines would reach the terminal", s.cfg.Logger)
	}
	_, err = s.Read(context.Background(), Location{Bucket: "b", Key: "k"}, time.Time{})
	var e *Error
	if !errors.As(err, &e) || e.Kind != Permanent || e.Permission != "" || !errors.Is(err, ErrNoAWSCredentials) ||
		!strings.Contains(err.Error(), "no AWS credentials found: set AWS_PROFILE") {
		t.Fatalf("read without credentials = %v", err)
	}
}

// TestS3AccessDeniedNamesPrincipal: a read denied with AWS's message names
// the principal AWS names, keeps the storage's status, and is marked as
// possibly a file not written yet (S3's answer without s3:ListBucket).
func TestS3AccessDeniedNamesPrincipal(t *testing.T) {
	t.Parallel()
	const principal = "arn:aws:sts::123456789012:assumed-role/logpush-reader/onboard"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>User: %s is not authorized to perform: `+
			`s3:GetObject on resource: "arn:aws:s3:::bucket/k" because no identity-based policy allows the s3:GetObject action</Message></Error>`, principal)
	}))
	t.Cleanup(srv.Close)
	b := setupS3Server(t, srv.URL, nil, S3Options{})
	_, err := b.s3.Read(t.Context(), s3Loc("k"), time.Time{})
	var e *Error
	if !errors.As(err, &e) || e.Principal != principal || !e.MaybeAbsent || e.HTTPStatus != 403 || e.Permission != "s3:GetObject" {
		t.Fatalf("err = %v (%+v)", err, e)
	}
	if want := "access denied: the reading identity " + principal + " needs s3:GetObject on arn:aws:s3:::bucket/k: unless"; !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want ~%q", err, want)
	}
	// Write is not ambiguous.
	err = b.s3.Write(t.Context(), s3Loc("k"), []byte("x"))
	if !errors.As(err, &e) || e.MaybeAbsent || e.Principal != principal {
		t.Fatalf("write err = %v (%+v)", err, e)
	}
}

// TestS3KeepsAWorkersConnections: the default HTTP client keeps enough idle
// connections per endpoint for a worker's concurrent reads (the SDK's own
// default, 10, closed and reopened connections beyond it on every burst),
// and still is the SDK's buildable client, which AWS_CA_BUNDLE applies to.
func TestS3KeepsAWorkersConnections(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		opts S3Options
		want int
	}{
		{S3Options{Credentials: testCreds}, DefaultS3MaxIdleConnsPerHost},
		{S3Options{Credentials: testCreds, MaxIdleConnsPerHost: 7}, 7},
	} {
		s, err := NewS3(context.Background(), tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		bc, ok := s.cfg.HTTPClient.(*awshttp.BuildableClient)
		if !ok {
			t.Fatalf("HTTP client %T, want the SDK's *BuildableClient", s.cfg.HTTPClient)
		}
		if got := bc.GetTransport().MaxIdleConnsPerHost; got != tc.want {
			t.Errorf("MaxIdleConnsPerHost = %d, want %d", got, tc.want)
		}
	}
	if DefaultS3MaxIdleConnsPerHost < 20 {
		t.Errorf("DefaultS3MaxIdleConnsPerHost %d is below the worker's default concurrency", DefaultS3MaxIdleConnsPerHost)
	}
	if _, err := NewS3(context.Background(), S3Options{MaxIdleConnsPerHost: -1}); err == nil {
		t.Error("NewS3 accepted a negative MaxIdleConnsPerHost")
	}
}

// TestS3ReadAsksNoChecksum: GetObject does not ask for the object's
// checksum (x-amz-checksum-mode) and does not validate one the response
// carries anyway (a wrong one here): the SDK's validation on every read is
// off (ResponseChecksumValidation).
func TestS3ReadAsksNoChecksum(t *testing.T) {
	t.Parallel()
	var mode atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mode.Store(r.Header.Values("X-Amz-Checksum-Mode"))
		w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
		w.Header().Set("X-Amz-Checksum-Crc32", "AAAAAA==") // wrong for "token"
		fmt.Fprint(w, "token")
	}))
	t.Cleanup(srv.Close)
	b := setupS3Server(t, srv.URL, nil, S3Options{})
	obj, err := b.s3.Read(t.Context(), s3Loc("k"), time.Time{})
	if err != nil || string(obj.Body) != "token" {
		t.Fatalf("read = %q, %v", obj.Body, err)
	}
	if got := mode.Load().([]string); len(got) != 0 {
		t.Errorf("x-amz-checksum-mode: %q, want none", got)
	}
}

// TestS3MissingIsFinal: the error of a GetObject of a missing key, as the
// SDK gives it, is not retryable to the SDK's own retryers either:
// missingIsFinal changes no answer, only how fast it comes. Other errors
// get the SDK's answer.
func TestS3MissingIsFinal(t *testing.T) {
	t.Parallel()
	c := setupS3(t, s3Config{}).s3.mustClient(t)
	_, missing := c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String("missing")})
	var nsk *types.NoSuchKey
	if !errors.As(missing, &nsk) {
		t.Fatalf("GetObject of a missing key = %v, want a NoSuchKey", missing)
	}
	for name, r := range map[string]aws.Retryer{
		"client":   c.Options().Retryer,
		"standard": retry.NewStandard(),
		"adaptive": retry.NewAdaptiveMode(),
	} {
		if r.IsErrorRetryable(missing) {
			t.Errorf("the %s retryer retries a missing key", name)
		}
	}
	unavailableURL, _ := errorServer(t, http.StatusServiceUnavailable, "ServiceUnavailable", nil)
	_, unavailable := setupS3Server(t, unavailableURL, nil, S3Options{MaxAttempts: 1}).s3.mustClient(t).GetObject(t.Context(),
		&s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String("k")})
	if unavailable == nil || !(missingIsFinal{retry.NewStandard()}).IsErrorRetryable(unavailable) {
		t.Errorf("a 503 (%v) is not retryable", unavailable)
	}
}

// mustClient is the client of the default region and identity.
func (s *S3) mustClient(t *testing.T) *s3.Client {
	t.Helper()
	c, err := s.client(t.Context(), DefaultS3Region, Identity{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
