package worker_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/location"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// TestChallengeFileRemoved: once the job exists the challenge file is
// deleted; not with KeepChallengeFiles, nor while another destination's
// challenge holds or waits for the path; a refused delete is a warning
// naming the permission, and the destination still ends validated.
func TestChallengeFileRemoved(t *testing.T) {
	t.Parallel()
	const (
		filename = "logs/ownership-challenge.txt"
		key      = "bucket/" + filename
	)
	cases := []struct {
		name     string
		keep     bool
		busy     string // "holder" or "waiter": another destination on the path
		refused  bool
		wantGone bool
	}{
		{name: "deleted", wantGone: true},
		{name: "kept by the flag", keep: true},
		{name: "another challenge holds the path", busy: "holder"},
		{name: "another destination waits for the path", busy: "waiter"},
		{name: "delete refused", refused: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			var logs bytes.Buffer
			rdb, _ := testutil.Mini(t)
			leases, err := location.New(rdb, location.Config{})
			if err != nil {
				t.Fatal(err)
			}
			b.h = worker.NewHandlers(worker.Deps{API: b.api, Reader: b.rd, Store: b.store, Enqueue: b.enq, Metrics: b.m, Now: b.clock.Now,
				Leases: leases, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, worker.HandlerConfig{KeepChallengeFiles: c.keep})
			b.rd.put(key, b.api.token, b.clock.Now())
			if c.refused {
				b.rd.deleteErr = &destination.Error{Kind: destination.Permanent, Op: "delete", Permission: "s3:DeleteObject",
					Location: destination.Location{Scheme: "s3", Bucket: "bucket", Key: filename}}
			}
			id := location.ID("s3://@bucket/" + filename)
			switch c.busy {
			case "holder":
				if _, err := leases.Acquire(context.Background(), id, location.Waiter{Holder: "other:1", Queue: "q", TaskID: "t1"}); err != nil {
					t.Fatal(err)
				}
			case "waiter":
				if _, err := leases.Acquire(context.Background(), id, location.Waiter{Holder: "other:1", Queue: "q", TaskID: "t1"}); err != nil {
					t.Fatal(err)
				}
				if _, err := leases.Acquire(context.Background(), id, location.Waiter{Holder: "other:2", Order: 1, Queue: "q", TaskID: "t2"}); err != nil {
					t.Fatal(err)
				}
				if _, err := leases.Release(context.Background(), id, "other:1", ""); err != nil {
					t.Fatal(err)
				}
				if h, _ := leases.Holder(context.Background(), id); h != "" {
					t.Fatalf("holder %q after the release", h)
				}
			}
			d := b.dest
			d.Job = &tasks.JobSpec{Dataset: "http_requests", Enabled: true}
			task, err := tasks.NewCreateJobTask(tasks.CreateJobPayload{Dest: d, Filename: filename, Token: b.api.token}, tasks.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.h.CreateJob(context.Background(), task); err != nil {
				t.Fatal(err)
			}
			if gone := !b.rd.has(key); gone != c.wantGone {
				t.Errorf("challenge file gone = %v, want %v (%d deletes)\n%s", gone, c.wantGone, b.rd.deletes, logs.String())
			}
			evs := b.events(t)
			if len(evs) != 1 || evs[0].Event != events.Validated {
				t.Errorf("events %+v", evs)
			}
			if c.refused && !strings.Contains(logs.String(), "grant s3:DeleteObject") {
				t.Errorf("no warning naming the permission:\n%s", logs.String())
			}
		})
	}
}
