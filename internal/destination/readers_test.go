package destination

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The checks every storage reader (S3, GCS, Azure) must pass in the same
// way; each reader's tests bring their own server and locations.

// checkBodyCap reads exact (16 bytes) and over (17 bytes) through r, whose
// body cap is 16: the first whole, the second refused with wantErr before
// any of its body is read (bodyRead counts the bytes consumed).
func checkBodyCap(t *testing.T, r Reader, exact, over Location, bodyRead *atomic.Int64, wantErr string) {
	t.Helper()
	if obj, err := r.Read(t.Context(), exact, time.Time{}); err != nil || len(obj.Body) != 16 {
		t.Fatalf("16 bytes with a 16-byte cap: %d bytes, %v", len(obj.Body), err)
	}
	bodyRead.Store(0)
	_, err := r.Read(t.Context(), over, time.Time{})
	requireError(t, err, Permanent)
	if err.Error() != wantErr {
		t.Errorf("err = %q, want %q", err, wantErr)
	}
	if n := bodyRead.Load(); n != 0 {
		t.Errorf("read %d body bytes despite Content-Length over the cap", n)
	}
}

// chunkedServer answers every request with 1000 bytes and no
// Content-Length.
func chunkedServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush() // chunked: no Content-Length
		w.Write(bytes.Repeat([]byte("a"), 1000))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// checkChunkedCap reads loc through r, whose body cap is 100, from a
// chunkedServer: the cap holds while reading.
func checkChunkedCap(t *testing.T, r Reader, loc Location, bodyRead *atomic.Int64) {
	t.Helper()
	_, err := r.Read(t.Context(), loc, time.Time{})
	requireError(t, err, Permanent)
	if !strings.Contains(err.Error(), "challenge file larger than 100 bytes") {
		t.Errorf("err = %q", err)
	}
	if n := bodyRead.Load(); n > 1000 || n < 101 {
		t.Errorf("read %d body bytes", n)
	}
}

// errorCase is what one error answer of a storage service must become.
type errorCase struct {
	op         string // opRead or opWrite
	notFound   bool   // ErrNotFound rather than an *Error
	kind       Kind
	permission string
	prefix     string // of the error text
	code       string // the service's error code, which the text names
	requests   int64  // HTTP requests the server saw
}

// checkErrorCase runs c.op on loc through rw against a server answering
// with an error, whose requests are counted in requests, and checks the
// error against c. It returns the error, nil for a not-found case.
func checkErrorCase(t *testing.T, rw interface {
	Reader
	Writer
}, loc Location, requests *atomic.Int64, c errorCase) error {
	t.Helper()
	var err error
	if c.op == opRead {
		_, err = rw.Read(t.Context(), loc, time.Time{})
	} else {
		err = rw.Write(t.Context(), loc, []byte("x"))
	}
	if n := requests.Load(); n != c.requests {
		t.Errorf("%d requests, want %d", n, c.requests)
	}
	if c.notFound {
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
		return nil
	}
	e := requireError(t, err, c.kind)
	if e.Permission != c.permission {
		t.Errorf("permission = %q, want %q", e.Permission, c.permission)
	}
	if IsTransient(err) != (c.kind == Transient) {
		t.Errorf("IsTransient = %v", IsTransient(err))
	}
	if !strings.HasPrefix(err.Error(), c.prefix) {
		t.Errorf("err = %q\nwant prefix %q", err, c.prefix)
	}
	if !strings.Contains(err.Error(), c.code) {
		t.Errorf("err = %q does not name the code %s", err, c.code)
	}
	return err
}
