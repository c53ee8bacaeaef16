package cli

import (
	"context"
	"errors"
	"testing"
	"time"

	awscreds "github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// TestSimulateServesS3: simulate --serve-s3 writes s3:// challenge files
// (writeFunc, from the destination_conf) into an S3 in which every bucket
// exists, and a reader pointed at it, as the bench points its workers,
// reads them back through the AWS SDK, modified no earlier than the write.
func TestSimulateServesS3(t *testing.T) {
	t.Parallel()
	addr := testutil.FreeAddr(t)
	ctx := context.Background()
	s3, stop, err := serveS3(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	r, err := destination.NewS3(ctx, destination.S3Options{Endpoint: "http://" + addr, UsePathStyle: true,
		Credentials: awscreds.NewStaticCredentialsProvider(demoAccessKey, demoSecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(ctx, destination.Location{Scheme: "s3", Bucket: "never-written", Key: "x.txt"}, time.Time{}); !errors.Is(err, destination.ErrNotFound) {
		t.Errorf("read in a bucket never written: %v, want not found (the bucket exists)", err)
	}
	const conf = "s3://logs-b/zone/1?region=eu-west-1"
	before := time.Now().Truncate(time.Second)
	if err := writeFunc(destination.WriterMux{"s3": s3})(ctx, conf, "ownership-challenge-abc.txt", []byte("token-body")); err != nil {
		t.Fatal(err)
	}
	c, err := tasks.ParseConf(conf)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := r.Read(ctx, destination.For(c, nil, "ownership-challenge-abc.txt"), before)
	if err != nil || string(obj.Body) != "token-body" {
		t.Fatalf("read back = %q, %v", obj.Body, err)
	}
}
