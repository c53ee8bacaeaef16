package destinationtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/destination"
)

// Backend is one reader under test: how to make it, and what its storage
// answers that the suite cannot know.
type Backend struct {
	// New returns a reader and writer on a fresh bucket (container,
	// directory) of the storage, configured as cfg says. The suite calls it
	// once per subtest, from parallel subtests.
	New func(t *testing.T, cfg Config) *Storage
	// HTTP says the reader talks HTTP: it sends every request through
	// Config.Transport and honours Config.Endpoint. The suite then counts
	// its requests and the body bytes it reads, and runs the subtests that
	// need a server of its own (no Content-Length, error mapping). false
	// for the file reader.
	HTTP bool
	// Resolution is the granularity of the ModTime the storage reports:
	// time.Second for an HTTP Last-Modified, 0 for a file system.
	Resolution time.Duration
	// NotFoundRequests is how many requests a read of a missing object
	// makes (HTTP only); 0 means 1. A GCS emulator's 404 does not say
	// whether the bucket or the object is missing, and the GCS reader then
	// asks for the bucket: 2.
	NotFoundRequests int64
	// DeniedPermission is the Permission of the error of a read that
	// Storage.Deny made the storage refuse.
	DeniedPermission string
	// DeleteDeniedPermission is the Permission of the error of a delete
	// that Storage.Deny made the storage refuse; "": Deny does not refuse
	// deletes (a file system's), and the suite skips that subtest.
	DeleteDeniedPermission string
	// ErrorCases are the storage's error answers and what the reader makes
	// of each (HTTP only).
	ErrorCases []ErrorCase
	// ErrorResponse writes the storage's answer to r for c: the status, the
	// headers and the error document of the storage's API for r. It
	// returns false for a request that is not the operation's own (such as
	// a bucket lookup the reader makes to tell a missing bucket from a
	// missing object), which ErrorCase.Requests does not count. HTTP only.
	ErrorResponse func(w http.ResponseWriter, r *http.Request, c ErrorCase) (counted bool)
}

// Config is how the suite wants one Storage made.
type Config struct {
	// MaxBodyBytes is the reader's body cap; 0: the reader's default.
	MaxBodyBytes int64
	// Observe is the reader's destination.ObserveFunc. A writer may share
	// it: the suite checks what it saw only where it wrote nothing.
	Observe destination.ObserveFunc
	// Transport carries every HTTP request of the reader (HTTP backends);
	// the writer's may go through it or not. It is never nil.
	Transport http.RoundTripper
	// Endpoint, when not "", is the base URL of an HTTP server of the
	// suite that plays the storage; the reader must talk to it, and
	// Storage.Loc return locations it accepts (in a bucket of the
	// backend's choosing). No fake storage is needed then, and Writer and
	// Deny may be nil.
	Endpoint string
}

// Storage is a reader and writer on one fresh bucket.
type Storage struct {
	// Reader is the reader under test.
	Reader destination.Reader
	// Writer writes objects for Reader to read, as Cloudflare would.
	Writer destination.Writer
	// Loc returns the location of key in the bucket.
	Loc func(key string) destination.Location
	// Deny makes the storage refuse reads of key (written already) by
	// Reader, and returns the location to read it by; it may skip the
	// test (t.Skip) where it cannot deny. nil: the suite skips the
	// access-denied subtest.
	Deny func(t *testing.T, key string) destination.Location
	// Secrets are the credentials Reader and Writer hold, and any part of
	// them (a SAS's signature, in its encodings): no error may show them.
	Secrets []string
}

// ErrorCase is one error answer of a storage, and what an operation must
// make of it.
type ErrorCase struct {
	// Name names the subtest.
	Name string
	// Op is the operation: "read" or "write".
	Op string
	// Status, Code, Message and Header are the answer: the HTTP status, the
	// storage's error code and message, extra response headers.
	Status  int
	Code    string
	Message string
	Header  http.Header
	// NotFound says the answer means "no such object": ErrNotFound rather
	// than an *Error.
	NotFound bool
	// Kind is the error's kind; zero means the kind of the status class:
	// Transient for 429 and 5xx (throttling, server errors), Permanent for
	// any other. Set it only where the storage's code overrides the status.
	Kind destination.Kind
	// Permission is the error's Permission ("" for none).
	Permission string
	// Prefix, when not "", is how the error text begins.
	Prefix string
	// Requests is how many requests the operation makes (the readers'
	// default of two attempts for what they retry).
	Requests int64
}

// kind returns c.Kind, or the kind of c's status class.
func (c ErrorCase) kind() destination.Kind {
	switch {
	case c.Kind != 0:
		return c.Kind
	case c.Status == http.StatusTooManyRequests || c.Status >= 500:
		return destination.Transient
	default:
		return destination.Permanent
	}
}

const (
	opRead  = "read"
	opWrite = "write"
	// capBytes is the body cap of the body cap subtests.
	capBytes = 16
	// clockSlack allows for the storage's clock (Azurite's, a file
	// system's coarse one) running a little behind the test's.
	clockSlack = 50 * time.Millisecond
)

// Exercise runs the conformance suite on b, as parallel subtests of t.
func Exercise(t *testing.T, b Backend) {
	t.Helper()
	s := &suite{b: b}
	t.Run("NotFound", s.notFound)
	t.Run("Fresh", s.fresh)
	t.Run("Stale", s.stale)
	t.Run("BodyCap", s.bodyCap)
	t.Run("BodyCapNoContentLength", s.chunkedCap)
	t.Run("AccessDenied", s.accessDenied)
	t.Run("Canceled", s.canceled)
	t.Run("ErrorMapping", s.errorMapping)
	t.Run("Delete", s.delete)
	t.Run("DeleteDenied", s.deleteDenied)
}

// delete deletes a written object: a read finds nothing after it, and a
// second delete of the missing object succeeds.
func (s *suite) delete(t *testing.T) {
	t.Parallel()
	b := s.setup(t, Config{})
	d, ok := b.Reader.(destination.Deleter)
	if !ok {
		t.Fatal("the reader is no destination.Deleter")
	}
	b.write(t, "gone", []byte("tok"))
	b.write(t, "kept", []byte("tok"))
	if err := d.Delete(t.Context(), b.Loc("gone")); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := b.Reader.Read(t.Context(), b.Loc("gone"), time.Time{}); !errors.Is(err, destination.ErrNotFound) {
		t.Fatalf("read after delete: %v, want not found", err)
	}
	if _, err := b.Reader.Read(t.Context(), b.Loc("kept"), time.Time{}); err != nil {
		t.Fatalf("another object: %v", err)
	}
	if err := d.Delete(t.Context(), b.Loc("gone")); err != nil {
		t.Fatalf("delete of a missing object: %v, want nil", err)
	}
}

// deleteDenied: a delete the storage refuses is a Permanent error naming
// the permission to grant, and the object stays.
func (s *suite) deleteDenied(t *testing.T) {
	t.Parallel()
	b := s.setup(t, Config{})
	if b.Deny == nil || s.b.DeleteDeniedPermission == "" {
		t.Skip("the backend cannot deny deletes")
	}
	b.write(t, "denied", []byte("tok"))
	loc := b.Deny(t, "denied")
	err := b.Reader.(destination.Deleter).Delete(t.Context(), loc)
	e := requireError(t, err, destination.Permanent)
	if e.Permission != s.b.DeleteDeniedPermission || !strings.Contains(err.Error(), "the deleting identity") ||
		!strings.Contains(err.Error(), " needs "+s.b.DeleteDeniedPermission) {
		t.Errorf("err = %q (permission %q), want it to name %s", err, e.Permission, s.b.DeleteDeniedPermission)
	}
	noSecrets(t, b.Storage, err)
}

type suite struct {
	b Backend
}

// bundle is one Storage with what the suite counts around it.
type bundle struct {
	*Storage
	// requests and bodyRead count the reader's HTTP requests and the
	// response body bytes it read; observed its Observe calls.
	requests, bodyRead *atomic.Int64
	observed           *observations
}

func (s *suite) setup(t *testing.T, cfg Config) *bundle {
	t.Helper()
	b := &bundle{requests: new(atomic.Int64), bodyRead: new(atomic.Int64), observed: new(observations)}
	cfg.Observe = b.observed.observe
	cfg.Transport = &countingTransport{requests: b.requests, read: b.bodyRead}
	b.Storage = s.b.New(t, cfg)
	return b
}

// reset zeroes the counters, after the writes that prepare a read.
func (b *bundle) reset() {
	b.requests.Store(0)
	b.bodyRead.Store(0)
}

func (b *bundle) write(t *testing.T, key string, body []byte) destination.Location {
	t.Helper()
	loc := b.Loc(key)
	if err := b.Writer.Write(t.Context(), loc, body); err != nil {
		t.Fatalf("write %s: %v", loc, err)
	}
	return loc
}

// requests checks the number of requests of an HTTP reader.
func (s *suite) requests(t *testing.T, b *bundle, want int64) {
	t.Helper()
	if n := b.requests.Load(); s.b.HTTP && n != want {
		t.Errorf("%d requests, want %d", n, want)
	}
}

func (s *suite) notFound(t *testing.T) {
	t.Parallel()
	b := s.setup(t, Config{})
	loc := b.Loc("logs/challenge.txt")
	_, err := b.Reader.Read(t.Context(), loc, time.Time{})
	if !errors.Is(err, destination.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if destination.IsTransient(err) {
		t.Error("not found is transient, want not-yet")
	}
	if want := "read " + loc.String() + ": object not found"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	if got := b.observed.list(); fmt.Sprint(got) != "[read not_found]" {
		t.Errorf("observed %q, want [read not_found]", got)
	}
	s.requests(t, b, max(s.b.NotFoundRequests, 1))
	noSecrets(t, b.Storage, err)
}

// fresh reads a file just written: accepted with a notBefore one
// resolution step early (the storage truncates ModTime), and stale against
// a notBefore just after the ModTime it reports.
func (s *suite) fresh(t *testing.T) {
	t.Parallel()
	b := s.setup(t, Config{})
	before := time.Now()
	loc := b.write(t, "logs/challenge.txt", []byte("token-1"))
	b.reset()
	obj, err := b.Reader.Read(t.Context(), loc, before.Add(-s.b.Resolution-clockSlack))
	if err != nil {
		t.Fatal(err)
	}
	if string(obj.Body) != "token-1" {
		t.Errorf("body = %q", obj.Body)
	}
	if d := obj.ModTime.Sub(before); d < -s.b.Resolution-clockSlack || d > 5*time.Second {
		t.Errorf("mod time %v is not near the write at %v", obj.ModTime, before)
	}
	if r := s.b.Resolution; r > 0 && !obj.ModTime.Equal(obj.ModTime.Truncate(r)) {
		t.Errorf("mod time %v has a finer resolution than %v", obj.ModTime, r)
	}
	s.requests(t, b, 1)
	if got := b.observed.list(); len(got) == 0 || got[len(got)-1] != "read ok" {
		t.Errorf("observed %q, want read ok last", got)
	}
	// notBefore is inclusive; a nanosecond later the same file is stale.
	if _, err := b.Reader.Read(t.Context(), loc, obj.ModTime); err != nil {
		t.Errorf("notBefore = mod time: %v", err)
	}
	_, err = b.Reader.Read(t.Context(), loc, obj.ModTime.Add(time.Nanosecond))
	if !errors.Is(err, destination.ErrStale) {
		t.Fatalf("notBefore = mod time + 1ns: err = %v, want ErrStale", err)
	}
	noSecrets(t, b.Storage, err)
}

func (s *suite) stale(t *testing.T) {
	t.Parallel()
	b := s.setup(t, Config{})
	// A body large enough that the transport would not have it all buffered.
	loc := b.write(t, "logs/challenge.txt", bytes.Repeat([]byte("x"), 32<<10))
	notBefore := time.Now().Add(s.b.Resolution + 2*time.Second)
	b.reset()
	obj, err := b.Reader.Read(t.Context(), loc, notBefore)
	if !errors.Is(err, destination.ErrStale) {
		t.Fatalf("err = %v, want ErrStale", err)
	}
	if destination.IsTransient(err) {
		t.Error("stale is transient, want not-yet")
	}
	if o := destination.Outcome(err); o != destination.OutcomeStale {
		t.Errorf("outcome %q", o)
	}
	if obj.Body != nil {
		t.Errorf("stale read returned a body")
	}
	if n := b.bodyRead.Load(); n != 0 {
		t.Errorf("read %d body bytes of a stale object, want 0", n)
	}
	s.requests(t, b, 1)
	if !strings.HasPrefix(err.Error(), "read "+loc.String()+": last modified ") ||
		!strings.HasSuffix(err.Error(), ": object last modified before the challenge request") {
		t.Errorf("err = %q", err)
	}
	noSecrets(t, b.Storage, err)
}

// bodyCap reads a file of exactly the cap, whole, and one a byte over,
// refused before any of its body is read.
func (s *suite) bodyCap(t *testing.T) {
	t.Parallel()
	b := s.setup(t, Config{MaxBodyBytes: capBytes})
	exact := b.write(t, "exact", bytes.Repeat([]byte("a"), capBytes))
	over := b.write(t, "over", bytes.Repeat([]byte("a"), capBytes+1))
	if obj, err := b.Reader.Read(t.Context(), exact, time.Time{}); err != nil || len(obj.Body) != capBytes {
		t.Fatalf("%d bytes with a %d-byte cap: %d bytes, %v", capBytes, capBytes, len(obj.Body), err)
	}
	b.reset()
	_, err := b.Reader.Read(t.Context(), over, time.Time{})
	requireError(t, err, destination.Permanent)
	if want := fmt.Sprintf("read %s: challenge file larger than %d bytes", over, capBytes); err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	if n := b.bodyRead.Load(); n != 0 {
		t.Errorf("read %d body bytes despite Content-Length over the cap", n)
	}
	noSecrets(t, b.Storage, err)
}

// chunkedCap reads from a server that streams 1000 bytes without a
// Content-Length, with a cap of 100: the cap holds while reading.
func (s *suite) chunkedCap(t *testing.T) {
	if !s.b.HTTP {
		t.Skip("no HTTP")
	}
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush() // chunked: no Content-Length
		w.Write(bytes.Repeat([]byte("a"), 1000))
	}))
	t.Cleanup(srv.Close)
	b := s.setup(t, Config{MaxBodyBytes: 100, Endpoint: srv.URL})
	_, err := b.Reader.Read(t.Context(), b.Loc("k"), time.Time{})
	requireError(t, err, destination.Permanent)
	if !strings.Contains(err.Error(), "challenge file larger than 100 bytes") {
		t.Errorf("err = %q", err)
	}
	if n := b.bodyRead.Load(); n > 1000 || n < 101 {
		t.Errorf("read %d body bytes", n)
	}
	noSecrets(t, b.Storage, err)
}

// accessDenied reads a file the storage refuses to this reader: a
// permanent error that names the missing permission.
func (s *suite) accessDenied(t *testing.T) {
	t.Parallel()
	b := s.setup(t, Config{})
	if b.Deny == nil {
		t.Skip("the backend cannot deny access")
	}
	b.write(t, "denied", []byte("tok"))
	loc := b.Deny(t, "denied")
	_, err := b.Reader.Read(t.Context(), loc, time.Time{})
	if errors.Is(err, destination.ErrNotFound) {
		t.Fatalf("err = %v, want access denied, not not-found", err)
	}
	e := requireError(t, err, destination.Permanent)
	if e.Permission == "" || e.Permission != s.b.DeniedPermission {
		t.Errorf("permission = %q, want %q", e.Permission, s.b.DeniedPermission)
	}
	if want := "read " + loc.String() + ": access denied: the reading identity "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %q\nwant prefix %q", err, want)
	}
	if !strings.Contains(err.Error(), " needs "+s.b.DeniedPermission) {
		t.Errorf("err = %q does not name the permission %s", err, s.b.DeniedPermission)
	}
	noSecrets(t, b.Storage, err)
}

// canceled reads and writes with a canceled context: transient.
func (s *suite) canceled(t *testing.T) {
	t.Parallel()
	b := s.setup(t, Config{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := b.Reader.Read(ctx, b.Loc("k"), time.Time{})
	requireError(t, err, destination.Transient)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v does not wrap context.Canceled", err)
	}
	noSecrets(t, b.Storage, err)
	err = b.Writer.Write(ctx, b.Loc("k"), []byte("x"))
	requireError(t, err, destination.Transient)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("write: err = %v does not wrap context.Canceled", err)
	}
	noSecrets(t, b.Storage, err)
}

// errorMapping runs each of the backend's error cases against a server
// that answers every request with it.
func (s *suite) errorMapping(t *testing.T) {
	if !s.b.HTTP {
		t.Skip("no HTTP")
	}
	t.Parallel()
	if len(s.b.ErrorCases) == 0 {
		t.Fatal("an HTTP backend without error cases")
	}
	for _, c := range s.b.ErrorCases {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			var requests atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if s.b.ErrorResponse(w, r, c) {
					requests.Add(1)
				}
			}))
			t.Cleanup(srv.Close)
			b := s.setup(t, Config{Endpoint: srv.URL})
			loc := b.Loc("k")
			var err error
			if c.Op == opRead {
				_, err = b.Reader.Read(t.Context(), loc, time.Time{})
			} else {
				err = b.Writer.Write(t.Context(), loc, []byte("x"))
			}
			if n := requests.Load(); n != c.Requests {
				t.Errorf("%d requests, want %d", n, c.Requests)
			}
			if c.NotFound {
				if !errors.Is(err, destination.ErrNotFound) {
					t.Fatalf("err = %v, want ErrNotFound", err)
				}
				return
			}
			e := requireError(t, err, c.kind())
			if e.Permission != c.Permission {
				t.Errorf("permission = %q, want %q", e.Permission, c.Permission)
			}
			if destination.IsTransient(err) != (c.kind() == destination.Transient) {
				t.Errorf("IsTransient = %v", destination.IsTransient(err))
			}
			if !strings.HasPrefix(err.Error(), c.Prefix) {
				t.Errorf("err = %q\nwant prefix %q", err, c.Prefix)
			}
			if !strings.Contains(err.Error(), c.Code) {
				t.Errorf("err = %q does not name the code %s", err, c.Code)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %q spans lines", err)
			}
			noSecrets(t, b.Storage, err)
		})
	}
}

func requireError(t *testing.T, err error, kind destination.Kind) *destination.Error {
	t.Helper()
	var e *destination.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if e.Kind != kind {
		t.Fatalf("error %q: kind %v, want %v", err, e.Kind, kind)
	}
	return e
}

// noSecrets fails the test if err shows one of the storage's secrets, in
// its text or in a Go dump of it.
func noSecrets(t *testing.T, s *Storage, err error) {
	t.Helper()
	for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		for _, secret := range s.Secrets {
			if secret != "" && strings.Contains(text, secret) {
				t.Errorf("error shows a secret (%.8s...): %s", secret, text)
			}
		}
	}
}

// countingTransport counts requests and the response body bytes its
// caller reads.
type countingTransport struct {
	requests, read *atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.requests.Add(1)
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

// observations collects Observe calls as "op outcome".
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
	return slices.Clone(o.got)
}
