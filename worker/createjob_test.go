package worker_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
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

// TestCreateJobExisted: a validated destination whose job (same dataset,
// byte-identical conf) is in the zone's listing gets that job reported,
// not a second one.
func TestCreateJobExisted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.api.jobs = []cloudflare.Job{{ID: 7, Dataset: "http_requests", DestinationConf: b.dest.DestinationConf}}
	d := b.dest
	d.Job = &tasks.JobSpec{Dataset: "http_requests"}
	if err := b.h.CreateJob(context.Background(), createJobTask(t, d, b.api.token)); err != nil {
		t.Fatal(err)
	}
	if len(b.api.creates) != 0 || b.api.lists != 1 {
		t.Fatalf("creates %d, lists %d; want 0 and 1", len(b.api.creates), b.api.lists)
	}
	evs := b.events(t)
	if len(evs) != 1 || evs[0].Event != events.Validated || evs[0].JobID != 7 || !evs[0].JobExisted || evs[0].Attempts.Job != 1 {
		t.Fatalf("events = %+v, want validated with existing job 7", evs)
	}
}

// TestCreateJobCreated: with no such job, the job is created from the
// row's spec with the validated token, and the event names it.
func TestCreateJobCreated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	d := b.dest
	d.Job = &tasks.JobSpec{Dataset: "http_requests", Name: "edge-logs", Enabled: true, LogpullOptions: "fields=RayID&timestamps=rfc3339",
		Frequency: "high", MaxUploadBytes: 5000000, MaxUploadIntervalSeconds: 30, MaxUploadRecords: 1000, Filter: `{"where":{}}`}
	if err := b.h.CreateJob(context.Background(), createJobTask(t, d, b.api.token)); err != nil {
		t.Fatal(err)
	}
	if len(b.api.creates) != 1 {
		t.Fatalf("creates = %+v, want 1", b.api.creates)
	}
	want := cloudflare.JobRequest{DestinationConf: d.DestinationConf, OwnershipChallenge: b.api.token, JobSpec: cloudflare.JobSpec{Dataset: "http_requests",
		Name: "edge-logs", Enabled: true, LogpullOptions: "fields=RayID&timestamps=rfc3339", Frequency: "high",
		MaxUploadBytes: 5000000, MaxUploadIntervalSeconds: 30, MaxUploadRecords: 1000, Filter: `{"where":{}}`}}
	// JobRequest's Format hides the secrets: compare the fields themselves.
	if got := b.api.creates[0]; got.DestinationConf != want.DestinationConf || got.OwnershipChallenge != want.OwnershipChallenge ||
		!reflect.DeepEqual(got.JobSpec, want.JobSpec) {
		t.Errorf("create request\n%+v\nwant\n%+v", got, want)
	}
	evs := b.events(t)
	if len(evs) != 1 || evs[0].Event != events.Validated || evs[0].JobID != 100 || evs[0].JobExisted || evs[0].Attempts.Job != 1 {
		t.Fatalf("events = %+v, want validated with new job 100", evs)
	}
}

// TestCreateJobListErrorTransient: a listing that fails transiently is a
// retry, with nothing created and no outcome; the retry lists again (the
// failed listing is not trusted) and creates.
func TestCreateJobListErrorTransient(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.api.listErr = &cloudflare.APIError{Endpoint: cloudflare.EndpointJobs, HTTPStatus: 503, Kind: cloudflare.Transient}
	d := b.dest
	d.Job = &tasks.JobSpec{Dataset: "http_requests"}
	task := createJobTask(t, d, b.api.token)
	err := b.h.CreateJob(ctx, task)
	if err == nil || errors.Is(err, asynq.SkipRetry) || !worker.IsFailure(err) {
		t.Fatalf("CreateJob with a 503 listing = %v, want a retryable failure", err)
	}
	if len(b.api.creates) != 0 {
		t.Fatalf("created %+v without a listing", b.api.creates)
	}
	if evs := b.events(t); len(evs) != 0 {
		t.Fatalf("events = %+v for a transient error, want none", evs)
	}
	last, err := b.store.LastErrors(ctx, d.BatchID)
	if le, ok := last[d.Hash()]; err != nil || !ok || le.HTTPStatus != 503 || le.State != events.CreatingJob {
		t.Errorf("last error = %+v (%v), want the 503 while creating the job", last, err)
	}
	b.api.listErr = nil
	if err := b.h.CreateJob(ctx, task); err != nil {
		t.Fatal(err)
	}
	if b.api.lists != 2 || len(b.api.creates) != 1 {
		t.Fatalf("lists %d, creates %d; want 2 and 1", b.api.lists, len(b.api.creates))
	}
	if evs := b.events(t); len(evs) != 1 || evs[0].Event != events.Validated || evs[0].JobID != 100 || evs[0].Attempts.Job != 2 {
		t.Fatalf("events = %+v", evs)
	}
}

// TestCreateJobPermanentFails: a 4xx of the listing or of the create
// fails the destination at once (recorded, the task ends with nil).
func TestCreateJobPermanentFails(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name             string
		listErr, makeErr error
		creates          int
	}{
		{name: "list", listErr: &cloudflare.APIError{Endpoint: cloudflare.EndpointJobs, HTTPStatus: 403, Codes: []int{10000},
			Message: "Authentication error", Kind: cloudflare.Permanent}},
		{name: "create", makeErr: &cloudflare.APIError{Endpoint: cloudflare.EndpointCreateJob, HTTPStatus: 400, Codes: []int{1004},
			Message: "job already exists for another dataset", Kind: cloudflare.Permanent}, creates: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.api.listErr, b.api.createErr = tt.listErr, tt.makeErr
			d := b.dest
			d.Job = &tasks.JobSpec{Dataset: "http_requests"}
			if err := b.h.CreateJob(context.Background(), createJobTask(t, d, b.api.token)); err != nil {
				t.Fatalf("CreateJob = %v, want nil (failed, recorded)", err)
			}
			if len(b.api.creates) != tt.creates {
				t.Errorf("creates %d, want %d", len(b.api.creates), tt.creates)
			}
			want := tt.listErr
			if want == nil {
				want = tt.makeErr
			}
			ae := want.(*cloudflare.APIError)
			evs := b.events(t)
			if len(evs) != 1 || evs[0].Event != events.Failed || evs[0].Error == nil || evs[0].Error.HTTPStatus != ae.HTTPStatus ||
				fmt.Sprint(evs[0].Error.Codes) != fmt.Sprint(ae.Codes) || evs[0].JobID != 0 || evs[0].Attempts.Job != 1 {
				t.Fatalf("events = %+v, want failed with HTTP %d", evs, ae.HTTPStatus)
			}
		})
	}
}

// TestCreateJobIdempotentRerun: the task delivered again after its
// outcome does nothing; a re-run of the input (another batch) finds the
// job made by the first and reports it rather than creating it again.
func TestCreateJobIdempotentRerun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	d := b.dest
	d.Job = &tasks.JobSpec{Dataset: "http_requests"}
	task := createJobTask(t, d, b.api.token)
	for range 2 {
		if err := b.h.CreateJob(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	if len(b.api.creates) != 1 || b.api.lists != 1 {
		t.Fatalf("creates %d, lists %d after a redelivery; want 1 and 1", len(b.api.creates), b.api.lists)
	}
	rerun := d
	rerun.BatchID = "b2"
	if err := b.h.CreateJob(ctx, createJobTask(t, rerun, b.api.token)); err != nil {
		t.Fatal(err)
	}
	if len(b.api.creates) != 1 || b.api.lists != 2 {
		t.Fatalf("creates %d, lists %d after a re-run; want 1 and 2", len(b.api.creates), b.api.lists)
	}
	evs := b.events(t)
	if len(evs) != 2 || evs[0].JobID != 100 || evs[0].JobExisted || evs[1].BatchID != "b2" || evs[1].JobID != 100 || !evs[1].JobExisted {
		t.Fatalf("events = %+v, want job 100 created, then found", evs)
	}
}

// TestCreateJobRefusedPayload: a payload without a job, or a destination
// that needs a challenge without a validated token, fails without a call.
func TestCreateJobRefusedPayload(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, token, want string
		job               *tasks.JobSpec
	}{
		{name: "no job", token: "tok", want: "payload has no job"},
		{name: "no token", job: &tasks.JobSpec{Dataset: "http_requests"}, want: "no validated ownership challenge"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			d := b.dest
			d.Job = tt.job
			if err := b.h.CreateJob(context.Background(), createJobTask(t, d, tt.token)); err != nil {
				t.Fatalf("CreateJob = %v, want nil (failed, recorded)", err)
			}
			if b.api.lists != 0 || len(b.api.creates) != 0 {
				t.Errorf("lists %d, creates %d; want no calls", b.api.lists, len(b.api.creates))
			}
			evs := b.events(t)
			if len(evs) != 1 || evs[0].Event != events.Failed || evs[0].Error == nil || !strings.Contains(evs[0].Error.Message, tt.want) {
				t.Fatalf("events = %+v, want failed: %s", evs, tt.want)
			}
		})
	}
}

// TestCreateJobDefaultFields: a job whose row gives no output_options gets
// every field of its dataset, sorted, and the fields are asked once per
// dataset; a row's own output_options, or its logpull_options, are sent as
// they are.
func TestCreateJobDefaultFields(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.api.fields = map[string]map[string]string{
		"http_requests": {"RayID": "", "ClientIP": "", "EdgeStartTimestamp": ""},
		"dns_logs":      {"QueryName": "", "ColoCode": ""},
	}
	specs := []*tasks.JobSpec{
		{Dataset: "http_requests", Enabled: true},
		{Dataset: "dns_logs", Enabled: true},
		{Dataset: "http_requests", Enabled: true},
		{Dataset: "firewall_events", OutputOptions: []byte(`{"field_names":["Action"]}`)},
		{Dataset: "spectrum_events", LogpullOptions: "fields=Event"},
	}
	for i, j := range specs {
		d := b.dest
		d.DestinationConf = fmt.Sprintf("https://logs.example.com/in%d", i)
		d.Job = j
		if err := b.h.CreateJob(ctx, createJobTask(t, d, "")); err != nil {
			t.Fatalf("%d: %v", i, err)
		}
	}
	want := []string{
		`{"field_names":["ClientIP","EdgeStartTimestamp","RayID"]}`,
		`{"field_names":["ColoCode","QueryName"]}`,
		`{"field_names":["ClientIP","EdgeStartTimestamp","RayID"]}`,
		`{"field_names":["Action"]}`,
		``,
	}
	if len(b.api.creates) != len(want) {
		t.Fatalf("creates = %v", b.api.creates)
	}
	for i, w := range want {
		c := b.api.creates[i]
		if string(c.OutputOptions) != w || c.Enabled != specs[i].Enabled || c.LogpullOptions != specs[i].LogpullOptions {
			t.Errorf("job %d: output_options %s enabled %v; want %s", i, c.OutputOptions, c.Enabled, w)
		}
	}
	if fmt.Sprint(b.api.fieldCalls) != "map[dns_logs:1 http_requests:1]" {
		t.Errorf("Fields calls %v, want one per dataset", b.api.fieldCalls)
	}
}
