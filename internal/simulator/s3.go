package simulator

import (
	"net/http"
	"strings"
	"sync"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// NewS3 returns an in-memory S3 (gofakes3) in which every bucket exists:
// the simulate command's --serve-s3 and the bench's, where the simulator
// writes s3:// challenge files. A request that names a bucket (path-style,
// as readers given an endpoint send) creates it first, once, under a lock:
// gofakes3's own WithAutoBucket checks and creates without one, so of two
// first requests at once, one was answered NoSuchBucket, which a reader
// rightly takes for good. WithAutoBucket stays for virtual-hosted requests.
func NewS3() http.Handler {
	backend := s3mem.New()
	h := gofakes3.New(backend, gofakes3.WithAutoBucket(true)).Server()
	var mu sync.Mutex
	made := map[string]bool{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/"); b != "" {
			mu.Lock()
			if !made[b] {
				if ok, err := backend.BucketExists(b); err == nil && !ok {
					_ = backend.CreateBucket(b) // an invalid name: gofakes3 answers the request
				}
				made[b] = true
			}
			mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}
