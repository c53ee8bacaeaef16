package producer_test

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// Enqueue a batch from Go: the workers of the same Redis (worker.New)
// onboard it, and Batch reads its progress.
func Example() {
	mr := miniredis.RunT(nopT{}) // a service passes its own Redis client
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	p, err := producer.NewClient(rdb, &producer.ClientConfig{Format: tasks.FormatCSV, Source: "signup-42"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	csv := "zone_id,destination_conf\n" +
		"023e105f4ecef8ad9ca31a8372d0c353,s3://logs-bucket/zone-a?region=us-east-1\n" +
		"8f9e6ad7e9c3b8a1d2f4e5c6b7a89012,https://logs.example.com/ingest\n"
	res, err := p.Enqueue(context.Background(), func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(csv)), nil })
	if err != nil {
		fmt.Println(err)
		return
	}
	st, err := p.BatchStatus(context.Background(), res.BatchID)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d rows, %d enqueued, %d need no challenge; done %d of %d\n", res.Rows, res.Enqueued, res.NotRequired, st.Done(), st.Total)
	// Output: 2 rows, 1 enqueued, 1 need no challenge; done 1 of 2
}

// A line error names the line and the column, and nothing is enqueued.
func ExampleCheck() {
	csv := "zone_id,destination_conf\n" +
		"023e105f4ecef8ad9ca31a8372d0c35,s3://logs-bucket/zone-a?region=us-east-1\n"
	plan, err := producer.Check(context.Background(), func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(csv)), nil },
		producer.ClientConfig{Format: tasks.FormatCSV})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, le := range plan.Errors {
		fmt.Println(le)
	}
	// Output: line 2: zone_id: must be 32 hex characters, got 31
}

// nopT is the miniredis.Tester of an example, which has no *testing.T.
type nopT struct{}

func (nopT) Fatalf(string, ...any) { panic("miniredis did not start") }
func (nopT) Cleanup(func())        {}
func (nopT) Logf(string, ...any)   {}
