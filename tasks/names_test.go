package tasks

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// TestTaskQueues: a challenge goes to Queue and every later stage to
// FollowUpQueue, which Queues lists first (the workers serve it first).
func TestTaskQueues(t *testing.T) {
	mr := miniredis.RunT(t)
	client := asynq.NewClientFromRedisClient(redis.NewClient(&redis.Options{Addr: mr.Addr()}))
	defer client.Close()
	d := Dest{BatchID: "b", Scope: "zones", ScopeID: "023e105f4ecef8ad9ca31a8372d0c353", DestinationConf: "s3://b/p?region=us-east-1"}
	mk := map[string]func() (*asynq.Task, error){
		TypeChallenge: func() (*asynq.Task, error) { return NewChallengeTask(d, Options{}, time.Second) },
		TypePoll:      func() (*asynq.Task, error) { return NewPollTask(PollPayload{Dest: d}, Options{}, time.Second) },
		TypeValidate:  func() (*asynq.Task, error) { return NewValidateTask(ValidatePayload{Dest: d}, Options{}) },
		TypeCreateJob: func() (*asynq.Task, error) { return NewCreateJobTask(CreateJobPayload{Dest: d}, Options{}) },
	}
	for typ, f := range mk {
		task, err := f()
		if err != nil {
			t.Fatal(err)
		}
		want := FollowUpQueue
		if typ == TypeChallenge {
			want = Queue
		}
		if QueueOf(typ) != want {
			t.Errorf("QueueOf(%s) = %s, want %s", typ, QueueOf(typ), want)
		}
		info, err := client.Enqueue(task)
		if err != nil {
			t.Fatal(err)
		}
		if info.Queue != want {
			t.Errorf("%s task enqueued into %s, want %s", typ, info.Queue, want)
		}
	}
	if !slices.Equal(Queues(), []string{FollowUpQueue, Queue}) {
		t.Errorf("Queues() = %v: the follow-up queue must come first", Queues())
	}
}

// TestDecodeErrorQuotesNoPayload: the error of an undecodable payload
// names where and why, never the payload's bytes (they hold the conf's
// secrets), whatever part of encoding/json refused it.
func TestDecodeErrorQuotesNoPayload(t *testing.T) {
	const secret = "SECRETSASSIG0006"
	for name, payload := range map[string]string{
		"time":   `{"destination_conf":"azure://logs/p?sig=x","enqueued_at":"` + secret + `"}`,
		"number": `{"destination_conf":"azure://logs/p?sig=x","line":98765432109876543210}`,
		"syntax": `{"destination_conf":"azure://logs/p?sig=x"` + secret + `}`,
		"cut":    `{"destination_conf":"azure://logs/p?sig=` + secret,
	} {
		var p ChallengePayload
		err := Decode(asynq.NewTask(TypeChallenge, []byte(payload)), &p)
		if err == nil {
			t.Fatalf("%s: decoded %q", name, payload)
		}
		for _, quoted := range []string{secret, "98765432109876543210", "'S'"} {
			if strings.Contains(err.Error(), quoted) {
				t.Errorf("%s: error %q quotes the payload (%s)", name, err, quoted)
			}
		}
		if !strings.Contains(err.Error(), TypeChallenge) {
			t.Errorf("%s: error %q does not name the task type", name, err)
		}
	}
}
