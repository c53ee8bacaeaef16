package simulator_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	awscreds "github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/logpush-onboard/logpush-onboard/internal/destination"
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

// TestS3WriteAsPutObject: a challenge file Write puts straight into the
// store is, to a reader, the object the AWS SDK's PutObject makes through
// the server: the same body, content type, checksum and payload hash, ETag
// and Last-Modified (to the clock's second), and the same headers.
func TestS3WriteAsPutObject(t *testing.T) {
	t.Parallel()
	s3 := simulator.NewS3()
	srv := httptest.NewServer(s3)
	t.Cleanup(srv.Close)
	ctx := context.Background()
	sdk, err := destination.NewS3(ctx, destination.S3Options{Endpoint: srv.URL, UsePathStyle: true,
		Credentials: awscreds.NewStaticCredentialsProvider("AKIDSIM", "sim-secret", "")})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("a-challenge-token." + strings.Repeat("x", 80))
	put := destination.Location{Scheme: "s3", Bucket: "logs-bucket", Key: "logs/put/ownership-challenge-1a2b3c4d.txt", Region: "eu-west-1"}
	direct := put
	direct.Key = "logs/direct/ownership-challenge-1a2b3c4d.txt"
	before := time.Now().Truncate(time.Second)
	if err := sdk.Write(ctx, put, body); err != nil {
		t.Fatal(err)
	}
	if err := s3.Write(ctx, direct, body); err != nil {
		t.Fatal(err)
	}
	after := time.Now()

	get := func(loc destination.Location) (http.Header, []byte) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/" + loc.Bucket + "/" + loc.Key)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", loc.Key, resp.StatusCode, err)
		}
		return resp.Header, b
	}
	hp, bp := get(put)
	hd, bd := get(direct)
	if !bytes.Equal(bp, body) || !bytes.Equal(bd, body) {
		t.Errorf("bodies: put %q, direct %q, want %q", bp, bd, body)
	}
	// Date and the request ids are the response's; the times are checked
	// below.
	for _, k := range []string{"Date", "X-Amz-Request-Id", "X-Amz-Id-2", "Last-Modified", "X-Amz-Date"} {
		if (hp.Get(k) == "") != (hd.Get(k) == "") {
			t.Errorf("%s: put %q, direct %q", k, hp.Get(k), hd.Get(k))
		}
		hp.Del(k)
		hd.Del(k)
	}
	if !reflect.DeepEqual(hp, hd) {
		t.Errorf("headers differ:\nput    %v\ndirect %v", hp, hd)
	}
	for _, loc := range []destination.Location{put, direct} {
		obj, err := sdk.Read(ctx, loc, before)
		if err != nil {
			t.Fatalf("read %s: %v", loc.Key, err)
		}
		if !bytes.Equal(obj.Body, body) || obj.ModTime.Before(before) || obj.ModTime.After(after) {
			t.Errorf("read %s: %q modified %v, want %q in [%v, %v]", loc.Key, obj.Body, obj.ModTime, body, before, after)
		}
	}
	l, err := sdk.List(ctx, destination.Location{Scheme: "s3", Bucket: put.Bucket, Key: "logs/"})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.ModTimes) != 2 {
		t.Errorf("listing: %v, want both keys", l.ModTimes)
	}
	for k, mt := range l.ModTimes {
		if mt.Before(before) || mt.After(after) {
			t.Errorf("listing: %s modified %v, want in [%v, %v]", k, mt, before, after)
		}
	}
}

// TestS3WriteRefuses: what the server refuses, Write refuses.
func TestS3WriteRefuses(t *testing.T) {
	t.Parallel()
	s3 := simulator.NewS3()
	for _, loc := range []destination.Location{
		{Scheme: "s3", Key: "k"},
		{Scheme: "s3", Bucket: "b"},
		{Scheme: "s3", Bucket: "b", Key: strings.Repeat("k", 1025)},
	} {
		if err := s3.Write(context.Background(), loc, []byte("x")); err == nil {
			t.Errorf("Write(%q, %d-byte key) = nil, want an error", loc.Bucket, len(loc.Key))
		}
	}
}
