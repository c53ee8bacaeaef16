package tasks

import (
	"slices"
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
