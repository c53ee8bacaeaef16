package destination

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// clockSamples collects what WithClock reports.
type clockSamples struct {
	mu  sync.Mutex
	got []ClockSample
}

func (c *clockSamples) ctx() context.Context {
	return WithClock(context.Background(), func(s ClockSample) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.got = append(c.got, s)
	})
}

func (c *clockSamples) list() []ClockSample {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ClockSample(nil), c.got...)
}

// checkSample checks that s bounds a storage clock that is this host's.
func checkSample(t *testing.T, s ClockSample, res time.Duration) {
	t.Helper()
	if s.Resolution != res || s.Sent.After(s.Received) {
		t.Errorf("sample %+v: want resolution %s, sent no later than received", s, res)
	}
	if lo, hi := s.Offset(); lo > 0 || hi < 0 {
		t.Errorf("sample %+v: offset bounds [%s, %s] exclude 0, this host's own clock", s, lo, hi)
	}
}

// TestS3ReportsTheStorageClock: every S3 response, found or not, tells the
// context's WithClock function its Date and when it was sent and received.
func TestS3ReportsTheStorageClock(t *testing.T) {
	b := setupS3(t, s3Config{})
	ctx := context.Background()
	loc := Location{Scheme: "s3", Bucket: testBucket, Key: "logs/a.txt"}
	var c clockSamples
	if _, err := b.s3.Read(c.ctx(), loc, time.Time{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read of a missing key = %v, want not found", err)
	}
	if err := b.s3.Write(ctx, loc, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.s3.Read(c.ctx(), loc, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.s3.Read(ctx, loc, time.Time{}); err != nil {
		t.Fatal(err)
	}
	got := c.list()
	if len(got) != 2 {
		t.Fatalf("got %d samples, want one per read made with WithClock (2)", len(got))
	}
	for _, s := range got {
		checkSample(t, s, time.Second)
	}
}

// TestFileReportsTheLocalClock: a local file's clock is this host's.
func TestFileReportsTheLocalClock(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &File{Root: dir}
	var c clockSamples
	if _, err := f.Read(c.ctx(), Location{Scheme: "file", Key: "a.txt"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	got := c.list()
	if len(got) != 1 {
		t.Fatalf("got %d samples, want 1", len(got))
	}
	checkSample(t, got[0], localResolution)
}
