package worker_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// lateFiles is a worker that has seen 8 challenge files appear 5 s after
// their challenge: far enough past the default ClockSkew (1 s) for a
// file's date to tell it from one written before the challenge.
func lateFiles(t *testing.T) *sharedBundle {
	t.Helper()
	sb := setupShared(t, worker.HandlerConfig{})
	sb.api.noFilename = true // Cloudflare's fixed name, which the read before a challenge reads
	for range 8 {
		sb.h.Observe(5 * time.Second)
	}
	return sb
}

// The challenge file, and the opaque token Cloudflare writes there.
const (
	lateFile  = "bucket/logs/ownership-challenge.txt"
	lateToken = "opaque-token-of-this-challenge"
)

// TestSkipReadWhenFilesComeLate: where files appear seconds after their
// challenge, a first challenge goes without the read before it, and its
// poll takes the file by its date: one storage read for the destination.
func TestSkipReadWhenFilesComeLate(t *testing.T) {
	t.Parallel()
	sb := lateFiles(t)
	sb.skipsThenTakes(t, sb.a, 5*time.Second, "files come 5 s after")
}

// skipsThenTakes challenges d without a read before it (why: what makes
// that safe), then polls once its file is there, written after, and
// expects it validated after that one read, with its token.
func (sb *sharedBundle) skipsThenTakes(t *testing.T, d tasks.Dest, after time.Duration, why string) {
	t.Helper()
	ctx := context.Background()
	requested := sb.clock.Now()
	if err := sb.h.Challenge(ctx, challengeTask(t, d)); err != nil {
		t.Fatal(err)
	}
	if sb.rd.reads != 0 {
		t.Fatalf("%d reads before the challenge, want none: %s", sb.rd.reads, why)
	}
	poll := sb.enq.take(t, tasks.TypePoll)
	sb.api.token = lateToken
	sb.rd.put(lateFile, lateToken, requested.Add(after).Truncate(time.Second)) // S3: to the second
	sb.clock.Advance(after + time.Second)
	if err := sb.h.Poll(ctx, poll); err != nil {
		t.Fatal(err)
	}
	if st := sb.state(t, d); st != events.Validated || sb.rd.reads != 1 || !slices.Equal(sb.api.validations, []string{lateToken}) {
		t.Fatalf("state %s after %d reads, validate calls %q; want validated after 1 read, with the token", st, sb.rd.reads, sb.api.validations)
	}
}

// TestSkipReadNeverTakesAnEarlierFile: without the read before the
// challenge, a file written just before it (another tool's challenge on
// the path, 300 ms before) is not taken, however new: no validate call
// carries its token. The destination asks for a fresh challenge, which
// reads first and then takes its own file.
func TestSkipReadNeverTakesAnEarlierFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb := lateFiles(t)
	requested := sb.clock.Now()
	sb.rd.put(lateFile, "another-tools-token", requested.Add(-300*time.Millisecond).Truncate(time.Second))
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.a)); err != nil {
		t.Fatal(err)
	}
	poll := sb.enq.take(t, tasks.TypePoll)
	sb.clock.Advance(time.Second)
	if err := sb.h.Poll(ctx, poll); err != nil {
		t.Fatalf("poll that found an earlier file = %v, want a fresh challenge asked", err)
	}
	if n := sb.api.validateCalls(); n != 0 {
		t.Fatalf("%d validate calls with a file written before the challenge, want 0", n)
	}
	fresh := sb.enq.take(t, tasks.TypeChallenge)
	reads := sb.rd.reads
	if err := sb.h.Challenge(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	if sb.rd.reads != reads+1 {
		t.Fatalf("the fresh challenge read %d times before asking, want once", sb.rd.reads-reads)
	}
	poll = sb.enq.take(t, tasks.TypePoll)
	var snooze *worker.SnoozeError
	if err := sb.h.Poll(ctx, poll); !errors.As(err, &snooze) {
		t.Fatalf("poll of the fresh challenge before its file = %v (state %s), want a snooze: the file is the one read before; validations %q, reads %d", err, sb.state(t, sb.a), sb.api.validations, sb.rd.reads)
	}
	sb.api.token = lateToken
	sb.rd.put(lateFile, lateToken, sb.clock.Now().Add(time.Second))
	sb.clock.Advance(2 * time.Second)
	if err := sb.h.Poll(ctx, poll); err != nil {
		t.Fatal(err)
	}
	if st := sb.state(t, sb.a); st != events.Validated || !slices.Equal(sb.api.validations, []string{lateToken}) {
		t.Fatalf("state %s, validate calls %q; want validated with the fresh challenge's token only", st, sb.api.validations)
	}
}

// TestFewLateFilesSkipTheReadBefore: before 8 files were seen, half the
// least of those seen bounds the fastest file: 2 files 6 s after their
// challenge are enough to go without the read before the next one, which
// then takes its file by its date.
func TestFewLateFilesSkipTheReadBefore(t *testing.T) {
	t.Parallel()
	sb := setupShared(t, worker.HandlerConfig{})
	sb.api.noFilename = true
	sb.h.Observe(6 * time.Second)
	sb.h.Observe(6 * time.Second)
	sb.skipsThenTakes(t, sb.b, 4*time.Second, "2 files came 6 s after their challenge")
}

// TestColdScoutsMissSkipsTheReadBefore: in a worker that has seen no file
// yet, its scout's misses bound the files' delays as a file seen would:
// the scout missed its file at 1 to 5 s, so the next challenge, on a path
// of its own, goes without the read before it and takes its file, 5 s
// later, by its date. Before any miss, a cold challenge reads first.
func TestColdScoutsMissSkipsTheReadBefore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb := setupShared(t, worker.HandlerConfig{PollFirst: 4 * time.Second, PollInterval: time.Second})
	sb.api.noFilename = true
	scout, own := sb.a, sb.b
	own.DestinationConf = "s3://bucket/own?region=us-east-1"
	if err := sb.h.Challenge(ctx, challengeTask(t, scout)); err != nil {
		t.Fatal(err)
	}
	if sb.rd.reads != 1 {
		t.Fatalf("the cold scout's challenge read %d times before it, want once: nothing is known yet", sb.rd.reads)
	}
	scoutPoll := sb.enq.take(t, tasks.TypePoll)
	for range 5 {
		sb.clock.Advance(time.Second)
		var s *worker.SnoozeError
		if err := sb.h.Poll(ctx, scoutPoll); !errors.As(err, &s) {
			t.Fatalf("the scout's poll before its file = %v, want a snooze", err)
		}
	}
	reads := sb.rd.reads
	requested := sb.clock.Now()
	if err := sb.h.Challenge(ctx, challengeTask(t, own)); err != nil {
		t.Fatal(err)
	}
	if n := sb.rd.reads - reads; n != 0 {
		t.Fatalf("%d reads before the challenge, want none: the scout missed its file at 5 s", n)
	}
	poll := sb.enq.take(t, tasks.TypePoll)
	sb.api.token = lateToken
	sb.rd.put("bucket/own/ownership-challenge.txt", lateToken, requested.Add(5*time.Second).Truncate(time.Second))
	sb.clock.Advance(6 * time.Second)
	if err := sb.h.Poll(ctx, poll); err != nil {
		t.Fatal(err)
	}
	if st := sb.state(t, own); st != events.Validated || sb.rd.reads-reads != 1 || !slices.Equal(sb.api.validations, []string{lateToken}) {
		t.Fatalf("state %s after %d reads, validate calls %q; want validated after 1 read, with the token", st, sb.rd.reads-reads, sb.api.validations)
	}
}
