package worker_test

import (
	"context"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

func createJobTask(t *testing.T, d tasks.Dest, token string) *asynq.Task {
	t.Helper()
	task, err := tasks.NewCreateJobTask(tasks.CreateJobPayload{Dest: d, Token: token}, tasks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// TestCreateJobIdentity: a job is (scope, id, dataset, conf). Rows that need
// no challenge get their job at once; a job of another dataset to the same
// destination does not count as the row's; one of the same dataset does,
// and is not created again; the zone's jobs are listed once for all rows.
func TestCreateJobIdentity(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const conf = "https://logs.example.com/in?header_Authorization=Basic%20x"
	b.api.jobs = []cloudflare.Job{
		{ID: 1, Dataset: "firewall_events", DestinationConf: conf},
		{ID: 2, Dataset: "dns_logs", DestinationConf: conf},
	}
	rows := []struct {
		dataset string
		wantID  int
		existed bool
	}{
		{"http_requests", 102, false}, // another dataset's job to the same destination is not this row's
		{"dns_logs", 2, true},         // this row's job is there: reported, not duplicated
		{"spectrum_events", 103, false},
	}
	for _, r := range rows {
		d := b.dest
		d.DestinationConf = conf
		d.Job = &tasks.JobSpec{Dataset: r.dataset}
		if err := b.h.CreateJob(ctx, createJobTask(t, d, "")); err != nil {
			t.Fatalf("%s: %v", r.dataset, err)
		}
	}
	if b.api.lists != 1 {
		t.Errorf("ListJobs called %d times for one zone, want 1", b.api.lists)
	}
	if len(b.api.creates) != 2 || b.api.creates[0].OwnershipChallenge != "" {
		t.Errorf("creates = %v", b.api.creates)
	}
	evs := b.events(t)
	if len(evs) != len(rows) {
		t.Fatalf("events = %+v", evs)
	}
	for i, r := range rows {
		ev := evs[i]
		if ev.Event != events.NotRequired || ev.JobID != r.wantID || ev.JobExisted != r.existed || ev.Attempts.Job != 1 {
			t.Errorf("%s: event %+v, want not_required with job %d (existed %v)", r.dataset, ev, r.wantID, r.existed)
		}
	}
}

// TestCreateJobTransientLooksAgain: a create that fails transiently may have
// made the job; the retry lists again and finds it rather than creating a
// second one.
func TestCreateJobTransientLooksAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.api.createErr = &cloudflare.APIError{Endpoint: cloudflare.EndpointCreateJob, HTTPStatus: 504, Kind: cloudflare.Transient}
	d := b.dest
	d.Job = &tasks.JobSpec{Dataset: "http_requests"}
	task := createJobTask(t, d, b.api.token)
	if err := b.h.CreateJob(ctx, task); err == nil {
		t.Fatal("CreateJob after a 504 succeeded")
	}
	if err := b.h.CreateJob(ctx, task); err != nil {
		t.Fatal(err)
	}
	if len(b.api.creates) != 1 || b.api.lists != 2 {
		t.Fatalf("creates %d, lists %d; want 1 and 2", len(b.api.creates), b.api.lists)
	}
	evs := b.events(t)
	if len(evs) != 1 || evs[0].Event != events.Validated || !evs[0].JobExisted || evs[0].JobID != 100 {
		t.Fatalf("events = %+v", evs)
	}
}

// TestChallengeWithoutFilename: result.filename is optional in
// Cloudflare's schema; without it the poll looks for Cloudflare's fixed
// name in the destination's path.
func TestChallengeWithoutFilename(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.api.noFilename = true
	if err := b.h.Challenge(context.Background(), challengeTask(t, b.dest)); err != nil {
		t.Fatal(err)
	}
	var p tasks.PollPayload
	if err := tasks.Decode(b.enq.take(t, tasks.TypePoll), &p); err != nil || p.Filename != "logs/ownership-challenge.txt" {
		t.Fatalf("poll filename %q, %v", p.Filename, err)
	}
}
