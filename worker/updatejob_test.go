package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// UpdateJob plays Cloudflare's PUT: the job takes what the body says.
func (f *fakeAPI) UpdateJob(_ context.Context, _ cloudflare.Target, id int, j cloudflare.JobRequest) (cloudflare.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, j)
	if err := f.updateErr; err != nil {
		f.updateErr = nil
		return cloudflare.Job{}, err
	}
	for i, old := range f.jobs {
		if old.ID == id {
			f.jobs[i] = cloudflare.Job{ID: id, Dataset: old.Dataset, Name: j.Name, DestinationConf: j.DestinationConf, Enabled: j.Enabled,
				Kind: j.Kind, Frequency: j.Frequency, LogpullOptions: j.LogpullOptions, OutputOptions: j.OutputOptions, Filter: j.Filter,
				MaxUploadBytes: j.MaxUploadBytes, MaxUploadIntervalSeconds: j.MaxUploadIntervalSeconds, MaxUploadRecords: j.MaxUploadRecords}
			return f.jobs[i], nil
		}
	}
	return cloudflare.Job{}, fmt.Errorf("no job %d", id)
}

// TestUpdateJobKeepsSettings: the PUT carries the new conf, the token and
// every setting as read, output_options whole; a redelivered task finds
// the job moved and PUTs nothing again; one migrated event names the job.
func TestUpdateJobKeepsSettings(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const old = "s3://old/logs?region=us-east-1"
	job := cloudflare.Job{ID: 7, Dataset: "http_requests", Name: "a.example", DestinationConf: old, Enabled: true, Kind: "edge",
		OutputOptions: json.RawMessage(`{"field_names":["RayID"],"sample_rate":0.5}`), Filter: `{"where":{}}`, MaxUploadRecords: 5000}
	b.api.jobs = []cloudflare.Job{job}
	d := b.dest
	d.Update = &tasks.JobUpdate{ID: 7, Dataset: "http_requests", From: tasks.ConfDigest(old)}
	task, err := tasks.NewUpdateJobTask(tasks.UpdateJobPayload{Dest: d, Token: b.api.token}, tasks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := b.h.UpdateJob(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	if len(b.api.updates) != 1 {
		t.Fatalf("%d PUTs, want 1", len(b.api.updates))
	}
	want := cloudflare.UpdateFrom(job, d.DestinationConf, b.api.token)
	if got := b.api.updates[0]; fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) || string(got.OutputOptions) != string(job.OutputOptions) ||
		got.OwnershipChallenge != b.api.token || got.Name != job.Name || got.Filter != job.Filter || got.Kind != "edge" || !got.Enabled ||
		got.MaxUploadRecords != 5000 || got.Dataset != "http_requests" {
		t.Errorf("PUT %+v", got)
	}
	evs := b.events(t)
	if len(evs) != 1 || evs[0].Event != events.Migrated || evs[0].JobID != 7 {
		t.Fatalf("events %+v", evs)
	}
}

// TestUpdateJobLeavesChangedJob: a job whose conf or dataset changed since
// its selection is failed, not touched.
func TestUpdateJobLeavesChangedJob(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		u    tasks.JobUpdate
	}{
		{"conf", tasks.JobUpdate{ID: 7, From: tasks.ConfDigest("s3://elsewhere/x?region=us-east-1")}},
		{"dataset", tasks.JobUpdate{ID: 7, Dataset: "dns_logs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.api.jobs = []cloudflare.Job{{ID: 7, Dataset: "http_requests", DestinationConf: "s3://old/logs?region=us-east-1"}}
			d := b.dest
			d.Update = &tc.u
			task, err := tasks.NewUpdateJobTask(tasks.UpdateJobPayload{Dest: d, Token: b.api.token}, tasks.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := b.h.UpdateJob(context.Background(), task); err != nil {
				t.Fatal(err)
			}
			evs := b.events(t)
			if len(b.api.updates) != 0 || len(evs) != 1 || evs[0].Event != events.Failed || evs[0].JobID != 7 {
				t.Fatalf("updates %d, events %+v", len(b.api.updates), evs)
			}
		})
	}
}

// TestUpdateJobStaleToken: a PUT refused for a stale token (400 code 1002)
// asks for a fresh challenge of the new conf; the job is not reported and
// stays as it was.
func TestUpdateJobStaleToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.api.jobs = []cloudflare.Job{{ID: 7, Dataset: "http_requests", DestinationConf: "s3://old/logs?region=us-east-1"}}
	b.api.updateErr = &cloudflare.APIError{Endpoint: cloudflare.EndpointUpdateJob, HTTPStatus: 400, Codes: []int{1002}, Kind: cloudflare.StaleChallenge}
	d := b.dest
	d.Update = &tasks.JobUpdate{ID: 7}
	task, err := tasks.NewUpdateJobTask(tasks.UpdateJobPayload{Dest: d, Token: b.api.token}, tasks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.h.UpdateJob(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	next := b.enq.take(t, tasks.TypeChallenge)
	var p tasks.ChallengePayload
	if err := json.Unmarshal(next.Payload(), &p); err != nil || p.Gen != 1 || p.Update == nil || p.Update.ID != 7 {
		t.Fatalf("fresh challenge %s: %v", next.Payload(), err)
	}
	if evs := b.events(t); len(evs) != 0 || b.api.jobs[0].DestinationConf != "s3://old/logs?region=us-east-1" {
		t.Fatalf("events %+v, job %v", evs, b.api.jobs[0])
	}
}
