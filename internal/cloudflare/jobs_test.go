package cloudflare_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
)

// fullJobRequest sets every field, with a conf holding characters JSON
// encoders like to escape.
func fullJobRequest() cloudflare.JobRequest {
	return cloudflare.JobRequest{
		DestinationConf:    "s3://mybucket/logs/{DATE}?region=us-west-2&sse=AES256<x>",
		OwnershipChallenge: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
		JobSpec: cloudflare.JobSpec{Dataset: "http_requests",
			Name:                     "example.com",
			Enabled:                  true,
			OutputOptions:            json.RawMessage(`{"field_names":["ClientIP","RayID"],"output_type":"ndjson","CVE-2021-44228":true}`),
			LogpullOptions:           "fields=RayID,ClientIP&timestamps=rfc3339",
			Frequency:                "low",
			MaxUploadBytes:           5_000_000,
			MaxUploadIntervalSeconds: 30,
			MaxUploadRecords:         1000,
			Filter:                   `{"where":{"and":[{"key":"ClientCountry","operator":"neq","value":"ca"}]}}`,
			Kind:                     "edge"},
	}
}

// fullJobBody is fullJobRequest as it must reach Cloudflare, byte for byte.
const fullJobBody = `{"destination_conf":"s3://mybucket/logs/{DATE}?region=us-west-2&sse=AES256<x>",` +
	`"ownership_challenge":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl","dataset":"http_requests",` +
	`"name":"example.com","enabled":true,` +
	`"output_options":{"field_names":["ClientIP","RayID"],"output_type":"ndjson","CVE-2021-44228":true},` +
	`"logpull_options":"fields=RayID,ClientIP&timestamps=rfc3339","frequency":"low","max_upload_bytes":5000000,` +
	`"max_upload_interval_seconds":30,"max_upload_records":1000,` +
	`"filter":"{\"where\":{\"and\":[{\"key\":\"ClientCountry\",\"operator\":\"neq\",\"value\":\"ca\"}]}}","kind":"edge"}` + "\n"

// jobJSON is a job as Cloudflare answers it, with every field set.
const jobJSON = `{"id":7,"dataset":"http_requests","name":"example.com","destination_conf":"s3://mybucket/logs?region=us-west-2",` +
	`"enabled":true,"kind":"","frequency":"high","logpull_options":null,` +
	`"output_options":{"field_names":["ClientIP"],"output_type":"ndjson"},"filter":"{\"where\":{}}",` +
	`"max_upload_bytes":5000000,"max_upload_interval_seconds":30,"max_upload_records":1000,` +
	`"last_complete":"2026-03-01T12:01:00Z","last_error":"2026-03-01T11:00:00.5Z","error_message":"AccessDenied"}`

// wantJob is jobJSON decoded.
func wantJob() cloudflare.Job {
	return cloudflare.Job{
		ID: 7, Dataset: "http_requests", Name: "example.com", DestinationConf: "s3://mybucket/logs?region=us-west-2",
		Enabled: true, Frequency: "high", OutputOptions: json.RawMessage(`{"field_names":["ClientIP"],"output_type":"ndjson"}`),
		Filter: `{"where":{}}`, MaxUploadBytes: 5_000_000, MaxUploadIntervalSeconds: 30, MaxUploadRecords: 1000,
		LastComplete: time.Date(2026, 3, 1, 12, 1, 0, 0, time.UTC), LastError: time.Date(2026, 3, 1, 11, 0, 0, 5e8, time.UTC),
		ErrorMessage: "AccessDenied",
	}
}

// sameJob compares jobs field by field (Job's Format hides the conf, so
// %v cannot show a difference).
func sameJob(t *testing.T, got, want cloudflare.Job) {
	t.Helper()
	if !bytes.Equal(got.OutputOptions, want.OutputOptions) {
		t.Errorf("output options %s, want %s", got.OutputOptions, want.OutputOptions)
	}
	got.OutputOptions, want.OutputOptions = nil, nil
	if !got.LastComplete.Equal(want.LastComplete) || !got.LastError.Equal(want.LastError) {
		t.Errorf("times %v %v, want %v %v", got.LastComplete, got.LastError, want.LastComplete, want.LastError)
	}
	got.LastComplete, got.LastError, want.LastComplete, want.LastError = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	type plain cloudflare.Job // without the methods, to print the fields
	if !reflect.DeepEqual(plain(got), plain(want)) {
		t.Errorf("job =\n%+v\nwant\n%+v", plain(got), plain(want))
	}
}

func TestJobCallsScopesAndAuthModes(t *testing.T) {
	t.Parallel()
	for _, target := range []cloudflare.Target{{Scope: cloudflare.ScopeZone, ID: zoneID}, {Scope: cloudflare.ScopeAccount, ID: accountID}} {
		for mode, creds := range map[string]cloudflare.Credentials{"token": {APIToken: testToken}, "email_key": {Email: testEmail, APIKey: testKey}} {
			t.Run(target.Scope+"/"+mode, func(t *testing.T) {
				t.Parallel()
				b := setup(t, cloudflare.Config{Credentials: creds})
				base := "/client/v4/" + target.Scope + "s/" + target.ID + "/logpush"
				b.handle(func(w http.ResponseWriter, r *http.Request) {
					body, _ := io.ReadAll(r.Body)
					auth := r.Header.Get("Authorization") == "Bearer "+testToken && r.Header.Get("X-Auth-Key") == ""
					if creds.APIToken == "" {
						auth = r.Header.Get("X-Auth-Email") == testEmail && r.Header.Get("X-Auth-Key") == testKey && r.Header.Get("Authorization") == ""
					}
					if !auth {
						writeEnvelope(w, 403, nil, cfErr(10000, "Authentication error"))
						return
					}
					switch {
					case r.Method == http.MethodGet && r.URL.Path == base+"/jobs" && len(body) == 0 && r.Header.Get("Content-Type") == "":
						w.Header().Set("Content-Type", "application/json")
						_, _ = io.WriteString(w, `{"success":true,"errors":[],"messages":[],"result":[`+jobJSON+`,null,{"id":8,"dataset":null,"name":null,"destination_conf":"r2://b","enabled":false,"kind":null,"output_options":null,"last_complete":null,"last_error":null,"error_message":null}]}`)
					case r.Method == http.MethodPost && r.URL.Path == base+"/jobs" && string(body) == fullJobBody:
						w.Header().Set("Content-Type", "application/json")
						_, _ = io.WriteString(w, `{"success":true,"errors":[],"messages":[],"result":`+jobJSON+`}`)
					default:
						writeEnvelope(w, 400, nil, cfErr(1001, "unexpected "+r.Method+" "+r.URL.Path+" "+string(body)))
					}
				})
				ctx := context.Background()
				jobs, err := b.client.ListJobs(ctx, target)
				if err != nil || len(jobs) != 2 {
					t.Fatalf("ListJobs = %d jobs, %v", len(jobs), err)
				}
				sameJob(t, jobs[0], wantJob())
				sameJob(t, jobs[1], cloudflare.Job{ID: 8, DestinationConf: "r2://b"})
				job, err := b.client.CreateJob(ctx, target, fullJobRequest())
				if err != nil {
					t.Fatal(err)
				}
				sameJob(t, job, wantJob())
				var eps []string
				for _, o := range b.observations() {
					if o.status != 200 {
						t.Errorf("observed %+v", o)
					}
					eps = append(eps, o.endpoint)
				}
				if fmt.Sprint(eps) != "[jobs create_job]" {
					t.Fatalf("observed endpoints %v", eps)
				}
			})
		}
	}
}

func TestCreateJobSendsOnlyTheFieldsSet(t *testing.T) {
	t.Parallel()
	b := setup(t, cloudflare.Config{})
	var got []byte
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		writeEnvelope(w, 200, map[string]any{"id": 1, "destination_conf": "r2://bucket/p"})
	})
	req := cloudflare.JobRequest{DestinationConf: "r2://bucket/p?a=<b>&c=d"}
	if _, err := b.client.CreateJob(context.Background(), cloudflare.Target{Scope: "zone", ID: zoneID}, req); err != nil {
		t.Fatal(err)
	}
	if string(got) != `{"destination_conf":"r2://bucket/p?a=<b>&c=d"}`+"\n" {
		t.Fatalf("body = %s", got)
	}
	// A JSON null for output_options is sent as is: the schema allows it.
	req.OutputOptions = json.RawMessage("null")
	if _, err := b.client.CreateJob(context.Background(), cloudflare.Target{Scope: "zone", ID: zoneID}, req); err != nil {
		t.Fatal(err)
	}
	if string(got) != `{"destination_conf":"r2://bucket/p?a=<b>&c=d","output_options":null}`+"\n" {
		t.Fatalf("body = %s", got)
	}
}

func TestListJobsEmpty(t *testing.T) {
	t.Parallel()
	b := setup(t, cloudflare.Config{})
	b.handle(raw(200, "application/json", `{"success":true,"errors":[],"messages":[],"result":[]}`))
	jobs, err := b.client.ListJobs(context.Background(), cloudflare.Target{Scope: "account", ID: accountID})
	if err != nil || jobs == nil || len(jobs) != 0 {
		t.Fatalf("ListJobs = %v (nil: %t), %v", jobs, jobs == nil, err)
	}
}

// jobClassification is one row of TestJobClassification.
type jobClassification struct {
	name     string
	endpoint string // which call
	handler  http.HandlerFunc
	kind     cloudflare.Kind
	status   int
	codes    []int
	message  string // substring of Message
}

func jobClassifications() []jobClassification {
	ok := func(result string) http.HandlerFunc {
		return raw(200, "application/json", `{"success":true,"errors":[],"messages":[],"result":`+result+`}`)
	}
	const (
		create = cloudflare.EndpointCreateJob
		list   = cloudflare.EndpointJobs
	)
	cf := func(status, code int, msg string) http.HandlerFunc {
		return raw(status, "application/json", fmt.Sprintf(`{"success":false,"errors":[{"code":%d,"message":%q}],"messages":[],"result":null}`, code, msg))
	}
	return []jobClassification{
		// 1004 is "not allowed", told apart by Cloudflare's message; never
		// an authentication failure on job creation.
		{name: "create 403 1004 exceeded max jobs", endpoint: create, handler: cf(403, 1004, "Creating a new job is not allowed: exceeded max jobs allowed"),
			kind: cloudflare.Permanent, status: 403, codes: []int{1004}, message: "exceeded max jobs allowed"},
		{name: "create 403 1004 missing permission", endpoint: create, handler: cf(403, 1004, "reading job for product 'http_requests' is not allowed"),
			kind: cloudflare.Permanent, status: 403, codes: []int{1004}, message: "is not allowed"},
		{name: "create 403 1004 plan", endpoint: create, handler: cf(403, 1004, "creating a job with field ClientIP is not allowed on your plan"),
			kind: cloudflare.Permanent, status: 403, codes: []int{1004}, message: "plan"},
		{name: "create 403 9103", endpoint: create, handler: cf(403, 9103, "Unknown X-Auth-Key or X-Auth-Email"),
			kind: cloudflare.Auth, status: 403, codes: []int{9103}},
		{name: "list 400 7003", endpoint: list, handler: cf(400, 7003, "Could not route to /zones/x/logpush/jobs, perhaps your object identifier is invalid?"),
			kind: cloudflare.Permanent, status: 400, codes: []int{7003}},
		{name: "create 403 1004 job limit", endpoint: create, handler: raw(403, "application/json", failure(1004)),
			kind: cloudflare.Permanent, status: 403, codes: []int{1004}},
		{name: "create 403 10000", endpoint: create, handler: raw(403, "application/json", failure(10000)),
			kind: cloudflare.Auth, status: 403, codes: []int{10000}},
		{name: "create 403 HTML", endpoint: create, handler: raw(403, "text/html", htmlPage),
			kind: cloudflare.Auth, status: 403, message: "HTML response"},
		{name: "create 400 1004", endpoint: create, handler: raw(400, "application/json", failure(1004)),
			kind: cloudflare.Permanent, status: 400, codes: []int{1004}},
		{name: "create 400 1002", endpoint: create, handler: raw(400, "application/json", failure(1002)),
			kind: cloudflare.StaleChallenge, status: 400, codes: []int{1002}},
		{name: "create 400 1003 job exists", endpoint: create, handler: raw(400, "application/json", failure(1003)),
			kind: cloudflare.Permanent, status: 400, codes: []int{1003}},
		{name: "create 400 6003", endpoint: create, handler: raw(400, "application/json", failure(6003)),
			kind: cloudflare.Auth, status: 400, codes: []int{6003}},
		{name: "create 429", endpoint: create, handler: raw(429, "application/json", failure(1015), "Retry-After", "3"),
			kind: cloudflare.RateLimited, status: 429, codes: []int{1015}},
		{name: "create 502", endpoint: create, handler: raw(502, "text/html", htmlPage),
			kind: cloudflare.Transient, status: 502, message: "HTML response"},
		{name: "create 200 success false 1004", endpoint: create, handler: raw(200, "application/json", failure(1004)),
			kind: cloudflare.Permanent, status: 200, codes: []int{1004}},
		{name: "create 200 success false 1002", endpoint: create, handler: raw(200, "application/json", failure(1002)),
			kind: cloudflare.StaleChallenge, status: 200, codes: []int{1002}},
		{name: "create 200 null result", endpoint: create, handler: ok("null"),
			kind: cloudflare.Transient, status: 200, message: "success without a result object"},
		{name: "create 200 list result", endpoint: create, handler: ok("[]"),
			kind: cloudflare.Transient, status: 200, message: "success without a result object"},
		{name: "create 200 job without id", endpoint: create, handler: ok(`{"destination_conf":"s3://b"}`),
			kind: cloudflare.Transient, status: 200, message: "job without an id"},
		{name: "create 200 job with a string id", endpoint: create, handler: ok(`{"id":"7"}`),
			kind: cloudflare.Transient, status: 200, message: "result is not a job"},
		{name: "jobs 403 10000", endpoint: list, handler: raw(403, "application/json", failure(10000)),
			kind: cloudflare.Auth, status: 403, codes: []int{10000}},
		{name: "jobs 403 1004", endpoint: list, handler: raw(403, "application/json", failure(1004)),
			kind: cloudflare.Permanent, status: 403, codes: []int{1004}},
		{name: "jobs 404 7000", endpoint: list, handler: raw(404, "application/json", failure(7000)),
			kind: cloudflare.Permanent, status: 404, codes: []int{7000}},
		{name: "jobs 200 object result", endpoint: list, handler: ok(jobJSON),
			kind: cloudflare.Transient, status: 200, message: "success without a result list"},
		{name: "jobs 200 null result", endpoint: list, handler: ok("null"),
			kind: cloudflare.Transient, status: 200, message: "success without a result list"},
		{name: "jobs 200 job without id", endpoint: list, handler: ok(`[{"id":0}]`),
			kind: cloudflare.Transient, status: 200, message: "job without an id"},
		{name: "jobs 200 job with a wrong type", endpoint: list, handler: ok(`[{"id":1,"enabled":"yes"}]`),
			kind: cloudflare.Transient, status: 200, message: "result is not a list of jobs"},
	}
}

func TestJobClassification(t *testing.T) {
	t.Parallel()
	var golden bytes.Buffer
	target := cloudflare.Target{Scope: cloudflare.ScopeAccount, ID: accountID}
	for _, tc := range jobClassifications() {
		b := setup(t, cloudflare.Config{})
		b.handle(tc.handler)
		var err error
		ctx := context.Background()
		switch tc.endpoint {
		case cloudflare.EndpointCreateJob:
			_, err = b.client.CreateJob(ctx, target, cloudflare.JobRequest{DestinationConf: testConf, OwnershipChallenge: "token.value.sig"})
		case cloudflare.EndpointJobs:
			var jobs []cloudflare.Job
			jobs, err = b.client.ListJobs(ctx, target)
			if jobs != nil {
				t.Errorf("%s: jobs %v with an error", tc.name, jobs)
			}
		}
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		ae := asAPIError(t, err)
		if ae.Kind != tc.kind || ae.HTTPStatus != tc.status || ae.Endpoint != tc.endpoint ||
			fmt.Sprint(ae.Codes) != fmt.Sprint(tc.codes) || !strings.Contains(ae.Message, tc.message) {
			t.Errorf("%s: got kind %v status %d codes %v message %q; want kind %v status %d codes %v message ~%q",
				tc.name, ae.Kind, ae.HTTPStatus, ae.Codes, ae.Message, tc.kind, tc.status, tc.codes, tc.message)
		}
		if obs := b.observations(); len(obs) != 1 || obs[0].endpoint != tc.endpoint || obs[0].status != tc.status {
			t.Errorf("%s: observations %+v", tc.name, obs)
		}
		fmt.Fprintf(&golden, "%s\n\t%s\n", tc.name, err)
	}
	checkGolden(t, "jobs_errors.golden", golden.Bytes())
}

func TestJobRequestsAreNotSent(t *testing.T) {
	t.Parallel()
	b := setup(t, cloudflare.Config{})
	b.handle(func(w http.ResponseWriter, r *http.Request) { t.Errorf("request sent: %s", r.URL.Path) })
	zone := cloudflare.Target{Scope: "zone", ID: zoneID}
	bad := cloudflare.Target{Scope: "zone", ID: "../../user/tokens/verify0000000000"}
	ctx := context.Background()
	with := func(f func(r *cloudflare.JobRequest)) cloudflare.JobRequest {
		r := fullJobRequest()
		f(&r)
		return r
	}
	create := func(r cloudflare.JobRequest) func() (string, error) {
		return func() (string, error) {
			_, err := b.client.CreateJob(ctx, zone, r)
			return cloudflare.EndpointCreateJob, err
		}
	}
	cases := []struct {
		name string
		call func() (endpoint string, err error)
	}{
		{"jobs: bad scope", func() (string, error) {
			_, err := b.client.ListJobs(ctx, cloudflare.Target{Scope: "user", ID: zoneID})
			return cloudflare.EndpointJobs, err
		}},
		{"create: bad target", func() (string, error) {
			_, err := b.client.CreateJob(ctx, bad, fullJobRequest())
			return cloudflare.EndpointCreateJob, err
		}},
		{"create: empty conf", create(with(func(r *cloudflare.JobRequest) { r.DestinationConf = "" }))},
		{"create: conf too long", create(with(func(r *cloudflare.JobRequest) { r.DestinationConf = "s3://b/" + strings.Repeat("x", 4096) }))},
		{"create: challenge with a space", create(with(func(r *cloudflare.JobRequest) { r.OwnershipChallenge = "abc def" }))},
		{"create: dataset with a space", create(with(func(r *cloudflare.JobRequest) { r.Dataset = "http requests" }))},
		{"create: dataset too long", create(with(func(r *cloudflare.JobRequest) { r.Dataset = strings.Repeat("a", 257) }))},
		{"create: name with an underscore", create(with(func(r *cloudflare.JobRequest) { r.Name = "my_job" }))},
		{"create: unknown frequency", create(with(func(r *cloudflare.JobRequest) { r.Frequency = "medium" }))},
		{"create: unknown kind", create(with(func(r *cloudflare.JobRequest) { r.Kind = "instant" }))},
		{"create: logpull_options with a newline", create(with(func(r *cloudflare.JobRequest) { r.LogpullOptions = "fields=RayID\n" }))},
		{"create: max_upload_bytes too small", create(with(func(r *cloudflare.JobRequest) { r.MaxUploadBytes = 1000 }))},
		{"create: max_upload_interval_seconds negative", create(with(func(r *cloudflare.JobRequest) { r.MaxUploadIntervalSeconds = -30 }))},
		{"create: max_upload_records too large", create(with(func(r *cloudflare.JobRequest) { r.MaxUploadRecords = 10_000_000 }))},
		{"create: output_options a list", create(with(func(r *cloudflare.JobRequest) { r.OutputOptions = json.RawMessage(`["RayID"]`) }))},
		{"create: output_options not JSON", create(with(func(r *cloudflare.JobRequest) { r.OutputOptions = json.RawMessage(`{"a":`) }))},
		{"create: filter not JSON", create(with(func(r *cloudflare.JobRequest) { r.Filter = "ClientCountry != ca" }))},
	}
	for _, tc := range cases {
		endpoint, err := tc.call()
		ae := asAPIError(t, err)
		if ae.Kind != cloudflare.Permanent || !errors.Is(err, cloudflare.ErrInvalidRequest) || ae.HTTPStatus != 0 || ae.Endpoint != endpoint {
			t.Errorf("%s: %v (kind %v)", tc.name, err, ae.Kind)
		}
		if s := err.Error(); strings.Contains(s, "AES256") || strings.Contains(s, fullJobRequest().OwnershipChallenge) {
			t.Errorf("%s: the error quotes the conf or the challenge: %s", tc.name, s)
		}
	}
	if obs := b.observations(); len(obs) != 0 {
		t.Fatalf("observations = %+v, want none", obs)
	}
}

// TestJobsNeverShowSecrets checks that a Job's or JobRequest's raw conf and
// challenge show in no printed or logged form, that a job's error_message is
// redacted, and that errors of the job calls never carry secrets.
func TestJobsNeverShowSecrets(t *testing.T) {
	t.Parallel()
	const (
		secretKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
		accessKey = "AKIAIOSFODNN7EXAMPLE"
		challenge = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZWNyZXQifQ.c2lnbmF0dXJlLXNlY3JldA"
	)
	conf := "s3://bucket/logs?region=us-east-1&access-key-id=" + accessKey + "&secret-access-key=" + secretKey
	secrets := []string{testToken, testKey, challenge, secretKey, accessKey}
	reveals := func(name, s string) {
		t.Helper()
		for _, secret := range secrets {
			if strings.Contains(s, secret) {
				t.Errorf("%s reveals %q: %s", name, secret[:6]+"…", s)
			}
		}
	}

	job := cloudflare.Job{ID: 3, Dataset: "http_requests", DestinationConf: conf}
	req := cloudflare.JobRequest{DestinationConf: conf, OwnershipChallenge: challenge}
	var logged bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	log.Info("job", "job", job, "request", req)
	for _, v := range []any{job, req, &job, []cloudflare.Job{job}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
			reveals(verb, fmt.Sprintf(verb, v))
		}
	}
	reveals("slog", logged.String())
	if !strings.Contains(logged.String(), "REDACTED") || !strings.Contains(job.String(), "s3://bucket/logs") {
		t.Errorf("conf not shown redacted: %s / %s", logged.String(), job)
	}

	echo := func(r *http.Request) string {
		body, _ := io.ReadAll(r.Body)
		msg := "got " + string(body) + " auth " + r.Header.Get("Authorization") + " key " + r.Header.Get("X-Auth-Key")
		if len(body) > 0 { // a secret of the conf sent, quoted alone
			msg += " secret " + secretKey
		}
		return msg
	}
	answers := map[string]http.HandlerFunc{
		"400": func(w http.ResponseWriter, r *http.Request) { writeEnvelope(w, 400, nil, cfErr(1001, echo(r))) },
		"403": func(w http.ResponseWriter, r *http.Request) { writeEnvelope(w, 403, nil, cfErr(1004, echo(r))) },
		"500": func(w http.ResponseWriter, r *http.Request) { writeEnvelope(w, 500, nil, cfErr(10002, echo(r))) },
		"200 success false": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"success": false, "errors": []any{cfErr(1001, echo(r))}, "messages": []any{}, "result": nil})
		},
	}
	zone := cloudflare.Target{Scope: "zone", ID: zoneID}
	for _, creds := range []cloudflare.Credentials{{APIToken: testToken}, {Email: testEmail, APIKey: testKey}} {
		b := setup(t, cloudflare.Config{Credentials: creds})
		for name, h := range answers {
			b.handle(h)
			_, cerr := b.client.CreateJob(context.Background(), zone, req)
			_, lerr := b.client.ListJobs(context.Background(), zone)
			for _, err := range []error{cerr, lerr} {
				if err == nil {
					t.Fatalf("%s: no error", name)
				}
				reveals(name, err.Error())
				if err != lerr && !strings.Contains(err.Error(), "REDACTED") {
					t.Errorf("%s: echo not visibly redacted: %s", name, err)
				}
			}
		}

		// A failing job's error_message quotes its conf and secrets.
		b.handle(func(w http.ResponseWriter, r *http.Request) {
			msg := "error writing to " + conf + ": InvalidAccessKeyId: " + accessKey + " with " + secretKey
			writeEnvelope(w, 200, []any{map[string]any{"id": 1, "destination_conf": conf, "error_message": msg}})
		})
		jobs, err := b.client.ListJobs(context.Background(), zone)
		if err != nil || len(jobs) != 1 || jobs[0].DestinationConf != conf {
			t.Fatalf("ListJobs = %v, %v", jobs, err)
		}
		reveals("error_message", jobs[0].ErrorMessage)
		if !strings.Contains(jobs[0].ErrorMessage, "InvalidAccessKeyId") {
			t.Errorf("error_message lost: %s", jobs[0].ErrorMessage)
		}
	}
}
