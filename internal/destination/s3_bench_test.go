//go:build unix

package destination

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// BenchmarkS3Read is the CPU and memory of one Read, the SDK's GetObject
// path, against an in-process gofakes3: a ~100-byte challenge file found,
// and a missing key (NoSuchKey). The server runs in the same process, so its
// work is in the figures too; it is the same before and after a change to
// the client. Besides ns/op it reports cpu-ns/op, the process's user and
// system CPU time per read, which other load on the machine changes less
// than it changes the elapsed time.
//
// Each Read runs on a new goroutine, as each of the worker's tasks does
// (asynq starts one per task), beneath as much stack as the worker's own
// frames take there (workerFrames): the growth of the goroutine's stack,
// which the SDK's deep middleware chain and its large frames cause, is
// counted as it is in the worker.
//
// "test" reads like the other tests, path-style from a configured endpoint.
// "aws" reads like the worker in production, with no endpoint: the SDK
// resolves the virtual-hosted AWS endpoint (bucket.s3.us-east-1.amazonaws.com)
// through the AWS partition rules, and a client sends every request to the
// fake instead, over plain HTTP, with the Host header S3 would get.
func BenchmarkS3Read(b *testing.B) {
	body := []byte(strings.Repeat("challenge-token-", 7)[:100])
	for _, endpoint := range []string{"test", "aws"} {
		b.Run(endpoint, func(b *testing.B) {
			var bundle *s3Bundle
			if endpoint == "aws" {
				bundle = setupS3AWS(b)
			} else {
				bundle = setupS3(b, s3Config{})
			}
			// Put straight into the backend: a PutObject to an https AWS URL
			// carries an aws-chunked body with a trailing checksum, which
			// gofakes3 stores as is.
			if _, err := bundle.backend.PutObject(testBucket, "challenge.txt", nil, bytes.NewReader(body), int64(len(body)), nil); err != nil {
				b.Fatal(err)
			}
			b.Run("found", func(b *testing.B) {
				benchmarkS3Read(b, bundle, s3Loc("challenge.txt"), nil)
			})
			b.Run("missing", func(b *testing.B) {
				benchmarkS3Read(b, bundle, s3Loc("missing.txt"), ErrNotFound)
			})
		})
	}
}

func benchmarkS3Read(b *testing.B, bundle *s3Bundle, loc Location, wantErr error) {
	ctx := context.Background()
	b.ReportAllocs()
	cpu := processCPU(b)
	for b.Loop() {
		var (
			obj  Object
			err  error
			done = make(chan struct{})
		)
		go func() {
			defer close(done)
			underFrames(workerFrames, func() { obj, err = bundle.s3.Read(ctx, loc, time.Time{}) })
		}()
		<-done
		if !errors.Is(err, wantErr) || (err == nil && len(obj.Body) != 100) {
			b.Fatalf("read %s: %d bytes, err %v, want %v", loc, len(obj.Body), err, wantErr)
		}
	}
	b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
}

// workerFrames is how many underFrames frames make the stack a worker task
// has when it reads a challenge file: from asynq's task goroutine down to
// the poll handler's call of the reader (worker.(*handlers).look), about
// 2.6 KiB (go1.26, amd64). Where the SDK's stack grows depends on it: read
// beneath 2 to 4 KiB of frames, GetObject grew its goroutine's stack once
// more than on a bare goroutine.
const workerFrames = 9

// underFrames calls f beneath n frames of 288 bytes each (amd64).
//
//go:noinline
func underFrames(n int, f func()) byte {
	var frame [256]byte
	frame[n%len(frame)] = byte(n)
	if n <= 1 {
		f()
		return frame[1]
	}
	return underFrames(n-1, f) + frame[(n+1)%len(frame)]
}

// processCPU is the user plus system CPU time of this process so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// setupS3AWS is setupS3 with no endpoint, as in production: requests go to
// AWS's virtual-hosted endpoints, which redirectClient sends to a gofakes3
// that takes the bucket from the Host header.
func setupS3AWS(t testing.TB) *s3Bundle {
	t.Helper()
	t.Setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
	backend := s3mem.New()
	if err := backend.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend, gofakes3.WithHostBucketBase("s3.us-east-1.amazonaws.com")).Server())
	t.Cleanup(srv.Close)
	addr, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewS3(context.Background(), S3Options{Credentials: testCreds, HTTPClient: redirectClient{addr.Host}})
	if err != nil {
		t.Fatal(err)
	}
	return &s3Bundle{s3: s, backend: backend, url: srv.URL}
}

// redirectClient sends every request to host over plain HTTP, keeping the
// Host header of the URL the SDK resolved.
type redirectClient struct{ host string }

func (c redirectClient) Do(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if r.Host == "" {
		r.Host = r.URL.Host
	}
	if !strings.HasSuffix(r.Host, ".amazonaws.com") {
		return nil, errors.New("redirectClient: request to " + r.Host + ", not AWS")
	}
	r.URL.Scheme, r.URL.Host = "http", c.host
	return http.DefaultTransport.RoundTrip(r)
}
