package simulator_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
)

// TestS3EveryBucketExists: the first requests to a bucket, many at once,
// find it: a missing object is NoSuchKey, never NoSuchBucket (which a
// reader takes for good and fails its destination on).
func TestS3EveryBucketExists(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(simulator.NewS3())
	t.Cleanup(srv.Close)
	var wg sync.WaitGroup
	errs := make(chan string, 400)
	for b := range 20 {
		for i := range 20 {
			wg.Go(func() {
				resp, err := http.Get(fmt.Sprintf("%s/bucket-%d/logs/%d/ownership-challenge.txt", srv.URL, b, i))
				if err != nil {
					errs <- err.Error()
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "NoSuchKey") {
					errs <- fmt.Sprintf("bucket-%d: %d %s", b, resp.StatusCode, body)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
