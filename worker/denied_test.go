package worker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

func pollTask(t *testing.T, d tasks.Dest, deadline time.Time) *asynq.Task {
	t.Helper()
	task, err := tasks.NewPollTask(tasks.PollPayload{Dest: d, Filename: "logs/ownership-challenge.txt", RequestedAt: time.Now(), Deadline: deadline}, tasks.Options{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// TestAccessDeniedIsNotYet: S3 answers AccessDenied for a file not written
// yet to a reader without s3:ListBucket, so a denied read polls on until
// the deadline, then fails saying so, with the storage's status; another
// destination of the same bucket then fails at once, and a successful read
// of the bucket clears that.
func TestAccessDeniedIsNotYet(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.rd.err = &destination.Error{Kind: destination.Permanent, Op: "read", Permission: "s3:GetObject", MaybeAbsent: true, HTTPStatus: 403,
		Principal: "arn:aws:iam::123456789012:role/reader", Location: destination.Location{Scheme: "s3", Bucket: "bucket", Key: "logs/x"},
		Err: errors.New("unless the file is not written yet: without s3:ListBucket on arn:aws:s3:::bucket, S3 answers access denied for a missing file too")}
	var snooze *worker.SnoozeError
	if err := b.h.Poll(ctx, pollTask(t, b.dest, time.Now().Add(time.Hour))); !errors.As(err, &snooze) || worker.IsFailure(err) {
		t.Fatalf("denied before the deadline = %v, want a snooze", err)
	}
	if evs := b.events(t); len(evs) != 0 {
		t.Fatalf("events before the deadline = %+v", evs)
	}
	if err := b.h.Poll(ctx, pollTask(t, b.dest, time.Now().Add(-time.Second))); err != nil {
		t.Fatalf("denied at the deadline = %v, want nil (failed, recorded)", err)
	}
	evs := b.events(t)
	if len(evs) != 1 || evs[0].Event != events.Failed || evs[0].Error.StorageStatus != 403 || evs[0].Error.HTTPStatus != 0 ||
		!strings.Contains(evs[0].Error.Message, "still access denied at the poll deadline") ||
		!strings.Contains(evs[0].Error.Message, "arn:aws:iam::123456789012:role/reader needs s3:GetObject") ||
		!strings.Contains(evs[0].Error.Message, "s3:ListBucket") {
		t.Fatalf("events = %+v", evs)
	}

	// Another destination of the bucket: failed at once.
	other := b.dest
	other.DestinationConf = "s3://bucket/other?region=us-east-1"
	if err := b.h.Poll(ctx, pollTask(t, other, time.Now().Add(time.Hour))); err != nil {
		t.Fatalf("second destination of a denied bucket = %v, want nil (failed, recorded)", err)
	}
	if evs := b.events(t); len(evs) != 2 || evs[1].Event != events.Failed {
		t.Fatalf("second destination of a denied bucket: events %+v, want it failed at once", evs)
	}
	// A read that works clears the bucket: the next denial is "not yet" again.
	b.rd.err = nil
	b.rd.put("bucket/logs/ownership-challenge.txt", b.api.token, time.Now().Add(time.Second))
	third := b.dest
	third.DestinationConf = "s3://bucket/third?region=us-east-1"
	if err := b.h.Poll(ctx, pollTask(t, third, time.Now().Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	b.rd.err = &destination.Error{Kind: destination.Permanent, Op: "read", Permission: "s3:GetObject", MaybeAbsent: true, Err: errors.New("denied")}
	fourth := b.dest
	fourth.DestinationConf = "s3://bucket/fourth?region=us-east-1"
	if err := b.h.Poll(ctx, pollTask(t, fourth, time.Now().Add(time.Hour))); !errors.As(err, &snooze) {
		t.Fatalf("denied after a good read = %v, want a snooze", err)
	}
}

// TestDeniedReadsBackOff: the holder of a path others wait for, whose
// reads are denied, backs off as after any miss instead of reading every
// PollContended until its deadline.
func TestDeniedReadsBackOff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb := setupShared(t, worker.HandlerConfig{PollInline: -1})
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.a)); err != nil {
		t.Fatal(err)
	}
	poll := sb.enq.take(t, tasks.TypePoll)
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.b)); err == nil {
		t.Fatal("b challenged while a held the path")
	}
	sb.rd.err = &destination.Error{Kind: destination.Permanent, Op: "read", Permission: "s3:GetObject", MaybeAbsent: true, HTTPStatus: 403,
		Err: errors.New("denied")}
	var snooze *worker.SnoozeError
	var delays []time.Duration
	for range 5 {
		if err := sb.h.Poll(ctx, poll); !errors.As(err, &snooze) {
			t.Fatalf("denied poll = %v, want a snooze", err)
		}
		delays = append(delays, snooze.Delay)
	}
	if last := delays[len(delays)-1]; last < 2*time.Second {
		t.Fatalf("delays after denied reads with a waiter %v, want them growing past 2s", delays)
	}
}
