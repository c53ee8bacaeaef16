package worker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/redact"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// watched creates an enabled job for a destination of conf with watching
// on and returns its health task, checking the validated event and the
// watching state the job stage leaves.
func watched(t *testing.T, b *testBundle, conf string) (*asynq.Task, tasks.HealthPayload) {
	t.Helper()
	d := b.dest
	d.DestinationConf = conf
	d.Job = &tasks.JobSpec{Dataset: "http_requests", Enabled: true}
	if err := b.h.CreateJob(context.Background(), createJobTask(t, d, b.api.token)); err != nil {
		t.Fatal(err)
	}
	task := b.enq.take(t, tasks.TypeHealth)
	var p tasks.HealthPayload
	if err := tasks.Decode(task, &p); err != nil || p.JobID < 100 || !p.Deadline.Equal(b.clock.Now().Add(10*time.Minute)) {
		t.Fatalf("health payload %+v, %v", p, err)
	}
	st, err := b.store.Get(context.Background(), keyOf(d))
	if err != nil || st.State != events.Watching {
		t.Fatalf("state after the job stage: %+v %v", st.State, err)
	}
	return task, p
}

func keyOf(d tasks.Dest) ledger.Key { return ledger.Key{Batch: d.BatchID, Hash: d.Hash()} }

// TestHealthOutcomes: a watched job ends flowing once it pushed, job_failing
// with Cloudflare's message (redacted) once it fails, no_data_yet when the
// deadline passes without either; before that each read snoozes for the
// interval, one GetJob per read.
func TestHealthOutcomes(t *testing.T) {
	t.Parallel()
	b := setupWith(t, worker.HandlerConfig{HealthDeadline: 10 * time.Minute, HealthInterval: 30 * time.Second})
	ctx := context.Background()
	const secret = "c2VjcmV0LXNlY3JldA"
	failing := "https://logs.example.com/in?header_Authorization=Basic%20" + secret
	health := map[string]cloudflare.Job{}
	b.api.getJob = func(id int) (cloudflare.Job, error) {
		for _, j := range b.api.jobs {
			if j.ID == id {
				h := health[j.DestinationConf]
				j.LastComplete, j.LastError, j.ErrorMessage = h.LastComplete, h.LastError, h.ErrorMessage
				return j, nil
			}
		}
		return cloudflare.Job{}, errors.New("no such job")
	}
	confs := []string{"https://logs.example.com/flowing", failing, "https://logs.example.com/idle"}
	var hts []*asynq.Task
	for _, c := range confs {
		task, _ := watched(t, b, c)
		hts = append(hts, task)
	}
	// Nothing pushed yet: each read snoozes for the interval.
	for i, task := range hts {
		err := b.h.Health(ctx, task)
		var s *worker.SnoozeError
		if !errors.As(err, &s) || s.Delay != 30*time.Second || worker.IsFailure(err) {
			t.Fatalf("%s: first read = %v, want a 30s snooze", confs[i], err)
		}
	}
	if b.api.gets != 3 {
		t.Fatalf("GetJob calls %d, want one per job", b.api.gets)
	}
	now := b.clock.Now()
	health[confs[0]] = cloudflare.Job{LastComplete: now}
	health[failing] = cloudflare.Job{LastError: now, ErrorMessage: "401 Unauthorized writing to " + failing}
	b.clock.Advance(30 * time.Second)
	for _, task := range hts[:2] {
		if err := b.h.Health(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	// The idle job: snoozes up to the deadline, whose read ends it.
	b.clock.Advance(9*time.Minute + 20*time.Second)
	var s *worker.SnoozeError
	if err := b.h.Health(ctx, hts[2]); !errors.As(err, &s) || s.Delay != 10*time.Second {
		t.Fatalf("read before the deadline = %v, want a snooze to the deadline", err)
	}
	b.clock.Advance(10 * time.Second)
	if err := b.h.Health(ctx, hts[2]); err != nil {
		t.Fatal(err)
	}
	if b.api.gets != 7 {
		t.Errorf("GetJob calls %d, want 7", b.api.gets)
	}
	evs := b.events(t)
	var got []string
	for _, e := range evs {
		s := fmt.Sprintf("%s job %d", e.Event, e.JobID)
		if e.Error != nil {
			s += ": " + e.Error.Message
		}
		got = append(got, s)
	}
	want := []string{"not_required job 100", "not_required job 101", "not_required job 102", "flowing job 100",
		"job_failing job 101: logpush job 101 is failing: 401 Unauthorized writing to " + redact.String(failing), "no_data_yet job 102"}
	if strings.Contains(fmt.Sprint(evs), secret) {
		t.Errorf("an event shows the secret: %+v", evs)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	st, err := b.store.Batch(ctx, b.dest.BatchID)
	if err != nil || st.Counts[events.Flowing] != 1 || st.Counts[events.JobFailing] != 1 || st.Counts[events.NoDataYet] != 1 || st.Done() != 3 {
		t.Errorf("batch %+v %v", st, err)
	}
	// A finished destination's health task (redelivered) does nothing.
	if err := b.h.Health(ctx, hts[0]); err != nil || b.api.gets != 7 {
		t.Errorf("redelivered health task: %v, %d calls", err, b.api.gets)
	}
}

// TestHealthNotWatched: with watching off, or for a disabled job, the job
// stage ends the destination validated, with no health task.
func TestHealthNotWatched(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		deadline time.Duration
		enabled  bool
	}{{"watching off", 0, true}, {"disabled job", 10 * time.Minute, false}} {
		b := setupWith(t, worker.HandlerConfig{HealthDeadline: c.deadline})
		d := b.dest
		d.Job = &tasks.JobSpec{Dataset: "http_requests", Enabled: c.enabled}
		if err := b.h.CreateJob(context.Background(), createJobTask(t, d, b.api.token)); err != nil {
			t.Fatal(err)
		}
		if q := b.enq.queued(); len(q) != 0 {
			t.Errorf("%s: enqueued %v", c.name, q)
		}
		st, _ := b.store.Get(context.Background(), keyOf(d))
		if st.State != events.Validated {
			t.Errorf("%s: state %s", c.name, st.State)
		}
	}
}
