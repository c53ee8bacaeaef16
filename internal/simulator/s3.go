package simulator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/logpush-onboard/logpush-onboard/internal/destination"
)

// S3 is an in-memory S3 (gofakes3) in which every bucket exists: the
// simulate command's --serve-s3 and the bench's, where the simulator
// writes s3:// challenge files. It serves readers over HTTP (ServeHTTP)
// and writes challenge files straight into its store (Write).
//
// A request that names a bucket (path-style, as readers given an endpoint
// send) creates it first, once, under a lock: gofakes3's own
// WithAutoBucket checks and creates without one, so of two first requests
// at once, one was answered NoSuchBucket, which a reader rightly takes for
// good. WithAutoBucket stays for virtual-hosted requests.
type S3 struct {
	backend *s3mem.Backend
	h       http.Handler

	mu   sync.Mutex
	made map[string]bool
}

var (
	_ http.Handler       = (*S3)(nil)
	_ destination.Writer = (*S3)(nil)
)

// NewS3 returns an empty in-memory S3.
func NewS3() *S3 {
	backend := s3mem.New()
	return &S3{
		backend: backend,
		h:       gofakes3.New(backend, gofakes3.WithAutoBucket(true)).Server(),
		made:    map[string]bool{},
	}
}

func (s *S3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if b, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/"); b != "" {
		s.bucket(b)
	}
	s.h.ServeHTTP(w, r)
}

// bucket creates bucket b unless it exists.
func (s *S3) bucket(b string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.made[b] {
		if ok, err := s.backend.BucketExists(b); err == nil && !ok {
			_ = s.backend.CreateBucket(b) // an invalid name: gofakes3 answers the request
		}
		s.made[b] = true
	}
}

// Write puts body at loc.Bucket and loc.Key (loc.Region aside: every
// region is this server), the object a reader then gets exactly as if the
// AWS SDK's PutObject had sent it through ServeHTTP, which is how the
// simulator wrote challenge files before: the same key and body, the
// Last-Modified of the moment of the write (to the second, as gofakes3
// keeps it), and the headers gofakes3 keeps from such a request and
// answers every GET with: the content type the SDK sends
// (application/octet-stream), its CRC32 checksum and payload hash, and its
// signing time (TestS3WriteAsPutObject compares the two). Not going
// through the SDK, HTTP and the server spares the simulator's process a
// quarter of its CPU in the bench, which shares the machine with the
// worker it measures.
func (s *S3) Write(_ context.Context, loc destination.Location, body []byte) error {
	switch {
	case loc.Bucket == "":
		return errors.New("s3 write: empty bucket")
	case loc.Key == "":
		return errors.New("s3 write: empty key")
	case len(loc.Key) > gofakes3.KeySizeLimit:
		return fmt.Errorf("s3 write: key longer than %d bytes", gofakes3.KeySizeLimit)
	}
	s.bucket(loc.Bucket)
	now := time.Now().UTC()
	sum := sha256.Sum256(body)
	meta := map[string]string{
		"Content-Type":         "application/octet-stream",
		"Last-Modified":        now.Format(http.TimeFormat),
		"X-Amz-Checksum-Crc32": base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(body))),
		"X-Amz-Content-Sha256": hex.EncodeToString(sum[:]),
		"X-Amz-Date":           now.Format("20060102T150405Z"),
	}
	if _, err := s.backend.PutObject(loc.Bucket, loc.Key, meta, bytes.NewReader(body), int64(len(body)), nil); err != nil {
		return fmt.Errorf("s3 write: %w", err)
	}
	return nil
}
