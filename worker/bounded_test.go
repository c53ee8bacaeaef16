package worker_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

const sasSig = "c2VjcmV0LXNhcy1zaWduYXR1cmU"

// noSuchHost is the read error of a storage account that does not resolve.
func noSuchHost() error {
	return &destination.Error{Kind: destination.Transient, Op: "read",
		Err: errors.New("Get https://nosuchacct.blob.core.windows.net/logs/x?sig=" + sasSig + ": dial tcp: lookup nosuchacct.blob.core.windows.net: no such host")}
}

// TestReadBeforeChallengeBounded: the read of a path before its challenge
// fails transiently (an account that does not resolve). The destination
// keeps its path and snoozes (no retry spent, nothing in asynq's retry
// set), spends no challenge, and by --poll-deadline fails with the storage
// error named; its path goes to the next destination, which proceeds.
func TestReadBeforeChallengeBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb := setupShared(t, worker.HandlerConfig{PollDeadline: 15 * time.Second})
	sb.rd.err = noSuchHost()
	task := challengeTask(t, sb.a)
	var snooze *worker.SnoozeError
	err := sb.h.Challenge(ctx, task)
	if !errors.As(err, &snooze) || worker.IsFailure(err) || snooze.Delay > 16*time.Second {
		t.Fatalf("Challenge with the path unreadable = %v, want a snooze within the deadline", err)
	}
	if strings.Contains(err.Error(), sasSig) {
		t.Fatalf("snooze reason shows the SAS signature: %v", err)
	}
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.b)); !errors.As(err, &snooze) || !strings.Contains(snooze.Reason, "busy") {
		t.Fatalf("b while a holds the path = %v, want it waiting", err)
	}
	sb.clock.Advance(10 * time.Second)
	if err := sb.h.Challenge(ctx, task); !errors.As(err, &snooze) || snooze.Delay > 6*time.Second {
		t.Fatalf("Challenge before the deadline = %v, want a snooze up to the deadline", err)
	}
	sb.clock.Advance(6 * time.Second)
	if err := sb.h.Challenge(ctx, task); err != nil {
		t.Fatalf("Challenge past the deadline = %v, want nil (failed, recorded)", err)
	}
	if sb.api.challenges != 0 {
		t.Fatalf("%d challenges for an unreadable path, want 0", sb.api.challenges)
	}
	evs, err := sb.store.Read(ctx, "0", 10, 0)
	if err != nil || len(evs) != 1 || evs[0].Event.Event != events.Failed {
		t.Fatalf("events = %+v, %v; want a's failure", evs, err)
	}
	msg := evs[0].Event.Error.Message
	if !strings.Contains(msg, "before the challenge") || !strings.Contains(msg, "no such host") ||
		!strings.Contains(msg, "within 15s") || strings.Contains(msg, sasSig) {
		t.Fatalf("failure = %q, want the storage error named, redacted", msg)
	}
	if len(sb.waker.woken) != 1 || sb.waker.woken[0] != tasks.ChallengeTaskID(sb.b) {
		t.Fatalf("woken %v, want b's challenge", sb.waker.woken)
	}
	sb.rd.err = nil
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.b)); err != nil {
		t.Fatalf("b after a failed = %v", err)
	}
	sb.enq.take(t, tasks.TypePoll)
	if sb.api.challenges != 1 {
		t.Fatalf("%d challenges, want b's", sb.api.challenges)
	}
}

// TestRefusedReadBeforeChallengeFails: a storage that refuses the key
// (InvalidAccessKeyId) fails the destination at its read before the
// challenge: no challenge is spent, for it or for the bucket's next
// destination.
func TestRefusedReadBeforeChallengeFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb := setupShared(t, worker.HandlerConfig{})
	sb.rd.err = &destination.Error{Kind: destination.Permanent, Op: "read", HTTPStatus: 403,
		Err: errors.New("storage rejected the credentials of this process: InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records.")}
	for _, d := range []tasks.Dest{sb.a, sb.b} {
		if err := sb.h.Challenge(ctx, challengeTask(t, d)); err != nil {
			t.Fatalf("line %d: Challenge = %v, want nil (failed, recorded)", d.Line, err)
		}
		if st := sb.state(t, d); st != events.Failed {
			t.Fatalf("line %d: state %q, want failed", d.Line, st)
		}
	}
	if sb.api.challenges != 0 {
		t.Fatalf("%d challenges with an unknown storage key, want 0", sb.api.challenges)
	}
	evs, _ := sb.store.Read(ctx, "0", 10, 0)
	if len(evs) != 2 || !strings.Contains(evs[0].Event.Error.Message, "InvalidAccessKeyId") || evs[0].Event.Error.StorageStatus != 403 {
		t.Fatalf("events = %+v", evs)
	}
}

// TestTransientRetriesEndAtDeadline: the stages that retry a transient
// Cloudflare error through asynq (job creation, a submitted token's
// validate, the poll's validate) retry no later than --poll-deadline after
// the stage first failed, and past it fail the destination (the task ends,
// nothing keeps the conf in Redis) instead of retrying on asynq's schedule.
func TestTransientRetriesEndAtDeadline(t *testing.T) {
	t.Parallel()
	unavailable := &cloudflare.APIError{Endpoint: "x", HTTPStatus: 503, Kind: cloudflare.Transient}
	backoff := worker.Backoff{}.WithDefaults()
	for _, tt := range []struct {
		name string
		run  func(b *testBundle) (func() error, error)
	}{
		{"create_job", func(b *testBundle) (func() error, error) {
			b.api.listErr = unavailable
			d := b.dest
			d.Job = &tasks.JobSpec{Dataset: "http_requests"}
			task, err := tasks.NewCreateJobTask(tasks.CreateJobPayload{Dest: d, Token: b.api.token}, tasks.Options{})
			return func() error { return b.h.CreateJob(context.Background(), task) }, err
		}},
		{"validate", func(b *testBundle) (func() error, error) {
			b.api.validateErr = unavailable
			task, err := tasks.NewValidateTask(tasks.ValidatePayload{Dest: b.dest, Filename: "f.txt", Token: b.api.token}, tasks.Options{})
			return func() error { return b.h.Validate(context.Background(), task) }, err
		}},
		{"poll", func(b *testBundle) (func() error, error) {
			b.api.validateErr = unavailable
			now := b.clock.Now()
			b.rd.put("bucket/logs/ownership-challenge.txt", b.api.token, now.Add(time.Second))
			task, err := tasks.NewPollTask(tasks.PollPayload{Dest: b.dest, Filename: "logs/ownership-challenge.txt",
				RequestedAt: now, Deadline: now.Add(time.Minute)}, tasks.Options{}, 0)
			return func() error { return b.h.Poll(context.Background(), task) }, err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupWith(t, worker.HandlerConfig{PollDeadline: time.Minute})
			run, err := tt.run(b)
			if err != nil {
				t.Fatal(err)
			}
			err = run()
			if err == nil || errors.Is(err, asynq.SkipRetry) || !worker.IsFailure(err) {
				t.Fatalf("first failure = %v, want a retry", err)
			}
			// Late retries (asynq's backoff reaches minutes) come back by the deadline.
			if d := backoff.Delay(10, err); d > time.Minute {
				t.Fatalf("retry delay %v after 10 retries, want at most the deadline's minute", d)
			}
			b.clock.Advance(40 * time.Second)
			if err := run(); err == nil || errors.Is(err, asynq.SkipRetry) {
				t.Fatalf("before the deadline = %v, want a retry", err)
			}
			b.clock.Advance(21 * time.Second)
			if err := run(); err != nil {
				t.Fatalf("past the deadline = %v, want nil (failed, recorded)", err)
			}
			evs := b.events(t)
			if len(evs) != 1 || evs[0].Event != events.Failed || evs[0].Error.HTTPStatus != 503 ||
				!strings.Contains(evs[0].Error.Message, "still failing after 1m0s") {
				t.Fatalf("events = %+v", evs)
			}
		})
	}
}

// TestRedisOutageRetryIsPrompt: a task that failed because Redis was
// unreachable returns once Redis answers again (awaitRedis), so its retry
// comes after Backoff.Initial, however many retries earlier outages cost:
// not on asynq's growing schedule, which would hold a poll past its
// deadline.
func TestRedisOutageRetryIsPrompt(t *testing.T) {
	t.Parallel()
	b := worker.Backoff{}.WithDefaults()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	if d := b.Delay(10, refused); d != b.Initial {
		t.Fatalf("delay after an outage at retry 10 = %v, want %v", d, b.Initial)
	}
	if d := b.Delay(10, errors.New("other")); d <= time.Minute {
		t.Fatalf("delay of another error at retry 10 = %v, want asynq's long backoff", d)
	}
}

// TestStaleRecordIsReadAgain: what the previous holder of a path read
// there is trusted for its successor's challenge only within ClockSkew.
// A file another tool wrote on the path after that read, and more than
// ClockSkew before the challenge, is read before the challenge and not
// taken for the new destination's own; a successor that follows at once
// spends no read before its challenge.
func TestStaleRecordIsReadAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const file = "bucket/logs/ownership-challenge-1.txt"
	for _, tt := range []struct {
		name      string
		gap       time.Duration // from a's validation to b's challenge
		other     bool          // another tool writes the path in the gap
		readsWant int           // reads before b's challenge
	}{
		{"at once", 200 * time.Millisecond, false, 0},
		{"later, another tool wrote", 3 * time.Second, true, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sb := setupShared(t, worker.HandlerConfig{PollInline: -1})
			if err := sb.h.Challenge(ctx, challengeTask(t, sb.a)); err != nil {
				t.Fatal(err)
			}
			pollA := sb.enq.take(t, tasks.TypePoll)
			sb.api.token = claimToken("zone", sb.a.ScopeID, sharedConf, "1")
			sb.rd.put(file, sb.api.token, sb.clock.Now())
			if err := sb.h.Poll(ctx, pollA); err != nil {
				t.Fatal(err)
			}
			if tt.other {
				sb.clock.Advance(500 * time.Millisecond)
				sb.rd.put(file, jwt(sb.clock.Now()), sb.clock.Now()) // no claims to tell whose
			}
			sb.clock.Advance(tt.gap)
			reads := sb.rd.reads
			if err := sb.h.Challenge(ctx, challengeTask(t, sb.b)); err != nil {
				t.Fatal(err)
			}
			// b's file is due at once (a's came at once): its challenge
			// task also looks once after the challenge (lookFirst).
			if got := sb.rd.reads - reads; got != tt.readsWant+1 {
				t.Fatalf("%d reads in b's challenge task, want %d before its challenge and its first look", got, tt.readsWant)
			}
			pollB := sb.enq.take(t, tasks.TypePoll)
			var snooze *worker.SnoozeError
			if err := sb.h.Poll(ctx, pollB); !errors.As(err, &snooze) {
				t.Fatalf("b's poll of a file written before its challenge = %v, want a snooze", err)
			}
			if n := sb.api.validateCalls(); n != 1 {
				t.Fatalf("%d validate calls, want a's only", n)
			}
		})
	}
}
