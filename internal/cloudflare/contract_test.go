package cloudflare_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
)

// contract validates every request and response passing through it against
// Cloudflare's Logpush schema (testdata/logpush-openapi.json, a copy of
// /work/shared/cloudflare/logpush-openapi.json).
type contract struct {
	t      *testing.T
	router routers.Router
	next   http.RoundTripper

	mu         sync.Mutex
	operations map[string]int // operationId → calls validated
	statuses   map[int]int    // statuses of validated responses
	answers    map[string]int // "operationId status" → responses validated
	unchecked  []string       // calls to routes the schema lacks
}

// newContract loads the schema for an API served at baseURL.
func newContract(t *testing.T, baseURL string) *contract {
	t.Helper()
	ctx := context.Background()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("testdata/logpush-openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	// Cloudflare's schema gives logpush_kind a default ("") outside its own
	// enum (["edge"]); defaults and examples are documentation, so only they
	// are exempt from the check. Values are checked: the client never sends
	// kind "", and the simulator answers null for it.
	if err := doc.Validate(ctx, openapi3.DisableSchemaDefaultsValidation(), openapi3.DisableExamplesValidation()); err != nil {
		t.Fatalf("schema: %v", err)
	}
	// The schema gives logpush_error_message format date-time, yet its
	// description (and the API) make it the failure's text ("no
	// permissions to write to destination bucket"): the format is a
	// copy-paste slip of last_error's, and only it is dropped.
	if s := doc.Components.Schemas["logpush_error_message"]; s != nil && s.Value != nil {
		s.Value.Format = ""
	}
	// Route the test server's URL: the schema's server is Cloudflare's.
	doc.Servers = openapi3.Servers{{URL: baseURL}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &contract{t: t, router: router, next: http.DefaultTransport,
		operations: map[string]int{}, statuses: map[int]int{}, answers: map[string]int{}}
}

// options accept the schema's security (an API token, or email and key)
// when the headers are present and well-formed.
func (c *contract) options() *openapi3filter.Options {
	return &openapi3filter.Options{
		IncludeResponseStatus: true,
		MultiError:            true,
		// Check the body as sent: filling in the schema's defaults would
		// add kind "" (outside its own enum) to every job request.
		SkipSettingDefaults: true,
		AuthenticationFunc: func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
			h := in.RequestValidationInput.Request.Header
			switch in.SecuritySchemeName {
			case "api_token":
				if tok, ok := strings.CutPrefix(h.Get("Authorization"), "Bearer "); !ok || tok == "" {
					return errors.New("no bearer token")
				}
			case "api_email":
				if h.Get("X-Auth-Email") == "" {
					return errors.New("no X-Auth-Email")
				}
			case "api_key":
				if h.Get("X-Auth-Key") == "" {
					return errors.New("no X-Auth-Key")
				}
			default:
				return fmt.Errorf("unknown security scheme %q", in.SecuritySchemeName)
			}
			return nil
		},
	}
}

// RoundTrip validates the request, sends it, and validates the answer.
func (c *contract) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		_ = req.Body.Close()
	}
	reset := func(r *http.Request) *http.Request {
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(body))
		return r
	}

	route, params, err := c.router.FindRoute(reset(req))
	if err != nil {
		if strings.Contains(req.URL.Path, "/logpush/") {
			c.t.Errorf("%s %s: a Logpush route the schema lacks: %v", req.Method, req.URL.Path, err)
		}
		c.mu.Lock()
		c.unchecked = append(c.unchecked, req.Method+" "+req.URL.Path)
		c.mu.Unlock()
		return c.next.RoundTrip(reset(req))
	}
	ctx := req.Context()
	in := &openapi3filter.RequestValidationInput{Request: reset(req), PathParams: params, Route: route, Options: c.options()}
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
		c.t.Errorf("request %s %s does not conform: %v", req.Method, req.URL.Path, err)
	}

	resp, err := c.next.RoundTrip(reset(req))
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode,
		Header: resp.Header, Body: io.NopCloser(bytes.NewReader(data)), Options: c.options()}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		c.t.Errorf("response %d to %s %s does not conform: %v\n%s", resp.StatusCode, req.Method, req.URL.Path, err, data)
	}
	c.mu.Lock()
	c.operations[route.Operation.OperationID]++
	c.statuses[resp.StatusCode]++
	c.answers[fmt.Sprintf("%s %d", route.Operation.OperationID, resp.StatusCode)]++
	c.mu.Unlock()
	return resp, nil
}

// TestContract runs the real Client against the real Simulator through the
// schema validator: both sides conform to Cloudflare's published schema, for
// both scopes, both auth modes, 200 and 4XX answers, on every operation the
// client uses: the credential checks, the ownership challenge and its
// validation, then job creation and the job list.
func TestContract(t *testing.T) {
	t.Parallel()
	const (
		token = "contract-token-0123456789"
		email = "ops@example.com"
		key   = "contract-global-key-0123"
	)
	written := make(chan [2]string, 16) // filename, token
	newSim := func(cfg simulator.Config) *httptest.Server {
		cfg.Write = func(_ context.Context, _, filename string, body []byte) error {
			written <- [2]string{filename, string(body)}
			return nil
		}
		sim, err := simulator.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sim.Close)
		srv := httptest.NewServer(sim)
		t.Cleanup(srv.Close)
		return srv
	}
	const maxJobs = 3
	srv := newSim(simulator.Config{APIToken: token, Seed: 1, MaxJobsPerScope: maxJobs})
	base := srv.URL + "/client/v4"
	ct := newContract(t, base)
	client := func(creds cloudflare.Credentials) *cloudflare.Client {
		c, err := cloudflare.New(cloudflare.Config{BaseURL: base, Credentials: creds, HTTPClient: &http.Client{Transport: ct, Timeout: 10 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx := context.Background()
	// AWS S3 without keys in the conf: the challenge is required.
	conf := "s3://mybucket/logs/{DATE}?region=us-west-2&sse=AES256"

	tc := client(cloudflare.Credentials{APIToken: token})
	if _, err := tc.VerifyCredential(ctx, cloudflare.VerifyScopes{}, cloudflare.VerifyPolicy{}); err != nil {
		t.Fatal(err)
	}
	// An account-owned token: 401 at the user endpoint, 200 at its account's.
	asrv := newSim(simulator.Config{APIToken: token, TokenAccountID: accountID})
	act := newContract(t, asrv.URL+"/client/v4")
	ac, err := cloudflare.New(cloudflare.Config{BaseURL: asrv.URL + "/client/v4", Credentials: cloudflare.Credentials{APIToken: token},
		HTTPClient: &http.Client{Transport: act, Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := ac.VerifyCredential(ctx, cloudflare.VerifyScopes{Accounts: []string{zoneID, accountID}}, cloudflare.VerifyPolicy{}); err != nil || v.AccountID != accountID {
		t.Fatalf("account-owned token: %+v %v", v, err)
	}
	for _, a := range []string{"user-api-tokens-verify-token 401", "account-api-tokens-verify-token 401", "account-api-tokens-verify-token 200"} {
		if act.answers[a] == 0 {
			t.Errorf("%s not validated (got %v)", a, act.answers)
		}
	}
	for _, target := range []cloudflare.Target{{Scope: "zone", ID: zoneID}, {Scope: "account", ID: accountID}} {
		res, err := tc.Challenge(ctx, target, conf)
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		var file [2]string
		select {
		case file = <-written:
		case <-time.After(5 * time.Second):
			t.Fatal("challenge file not written")
		}
		if file[0] != res.Filename {
			t.Fatalf("written %q, answered %q", file[0], res.Filename)
		}
		// 4XX: a token that is not the latest.
		_, err = tc.Validate(ctx, target, conf, "not.the.token")
		if ae := asAPIError(t, err); ae.Kind != cloudflare.StaleChallenge || ae.HTTPStatus != 400 {
			t.Fatalf("%s: wrong token: %v", target, err)
		}
		if ok, err := tc.Validate(ctx, target, conf, file[1]); err != nil || !ok {
			t.Fatalf("%s: validate: %v %v", target, ok, err)
		}
		contractJobs(t, tc, target, conf, file[1], maxJobs)
	}

	// 4XX: credentials the simulator refuses, in both modes.
	_, err = client(cloudflare.Credentials{APIToken: "wrong-token-value"}).Challenge(ctx, cloudflare.Target{Scope: "zone", ID: zoneID}, conf)
	if ae := asAPIError(t, err); ae.Kind != cloudflare.Auth || ae.HTTPStatus != 403 {
		t.Fatalf("wrong token: %v", err)
	}
	_, err = client(cloudflare.Credentials{Email: email, APIKey: key}).Validate(ctx, cloudflare.Target{Scope: "account", ID: accountID}, conf, "x")
	if ae := asAPIError(t, err); ae.Kind != cloudflare.Auth || ae.HTTPStatus != 403 {
		t.Fatalf("email and key: %v", err)
	}
	for _, target := range []cloudflare.Target{{Scope: "zone", ID: zoneID}, {Scope: "account", ID: accountID}} {
		wrong := client(cloudflare.Credentials{APIToken: "wrong-token-value"})
		_, lerr := wrong.ListJobs(ctx, target)
		_, cerr := client(cloudflare.Credentials{Email: email, APIKey: key}).CreateJob(ctx, target, cloudflare.JobRequest{DestinationConf: conf})
		for _, err := range []error{lerr, cerr} {
			if ae := asAPIError(t, err); ae.Kind != cloudflare.Auth || ae.HTTPStatus != 403 {
				t.Fatalf("%s: refused credentials: %v", target, err)
			}
		}
	}

	// Email and key accepted, and a 429 from Cloudflare's rate limit.
	ksrv := newSim(simulator.Config{Email: email, APIKey: key, RateLimit: 2, RateWindow: time.Minute, Penalty: time.Minute})
	kbase := ksrv.URL + "/client/v4"
	kct := newContract(t, kbase)
	kc, err := cloudflare.New(cloudflare.Config{BaseURL: kbase, Credentials: cloudflare.Credentials{Email: email, APIKey: key},
		HTTPClient: &http.Client{Transport: kct, Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kc.Challenge(ctx, cloudflare.Target{Scope: "account", ID: accountID}, conf); err != nil {
		t.Fatal(err)
	}
	<-written
	if _, err := kc.Validate(ctx, cloudflare.Target{Scope: "account", ID: accountID}, conf, "stale"); err == nil {
		t.Fatal("stale token validated")
	}
	_, err = kc.Challenge(ctx, cloudflare.Target{Scope: "zone", ID: zoneID}, conf)
	if ae := asAPIError(t, err); ae.Kind != cloudflare.RateLimited || ae.RetryAfter != time.Minute {
		t.Fatalf("over the limit: %v (retry after %v)", err, ae.RetryAfter)
	}

	// 4XX answers the client never provokes, sent raw: a bad identifier.
	hc := &http.Client{Transport: ct}
	req, _ := http.NewRequest(http.MethodPost, base+"/zones/not-a-zone-id/logpush/ownership", strings.NewReader(`{"destination_conf":"s3://b/p"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("bad identifier: %d", resp.StatusCode)
	}

	// Every operation the client uses was checked, the credential checks
	// included.
	ops := map[string]int{}
	statuses := map[int]int{}
	if _, err := kc.VerifyCredential(ctx, cloudflare.VerifyScopes{}, cloudflare.VerifyPolicy{Attempts: 1}); err == nil {
		t.Fatal("email and key verified over the rate limit")
	}
	for _, c := range []*contract{ct, kct, act} {
		for k, v := range c.operations {
			ops[k] += v
		}
		for k, v := range c.statuses {
			statuses[k] += v
		}
		for _, u := range c.unchecked {
			t.Errorf("unchecked call %s", u)
		}
	}
	for _, op := range []string{
		"post-zones-zone_id-logpush-ownership", "post-zones-zone_id-logpush-ownership-validate",
		"post-accounts-account_id-logpush-ownership", "post-accounts-account_id-logpush-ownership-validate",
	} {
		if ops[op] == 0 {
			t.Errorf("operation %s never exercised (got %v)", op, ops)
		}
	}
	// The job operations, each with a 200 and a 4XX answer.
	for _, op := range []string{
		"get-zones-zone_id-logpush-jobs", "post-zones-zone_id-logpush-jobs",
		"get-accounts-account_id-logpush-jobs", "post-accounts-account_id-logpush-jobs",
		"get-zones-zone_id-logpush-jobs-job_id", "put-zones-zone_id-logpush-jobs-job_id",
		"get-accounts-account_id-logpush-jobs-job_id", "put-accounts-account_id-logpush-jobs-job_id",
	} {
		fourXX := 0
		for k, v := range ct.answers {
			if strings.HasPrefix(k, op+" 4") {
				fourXX += v
			}
		}
		if ct.answers[op+" 200"] == 0 || fourXX == 0 {
			t.Errorf("operation %s: %d answers 200, %d 4XX (got %v)", op, ct.answers[op+" 200"], fourXX, ct.answers)
		}
	}
	for _, a := range []string{"post-zones-zone_id-logpush-jobs 403", "post-accounts-account_id-logpush-jobs 403"} {
		if ct.answers[a] < 2 { // the job limit and refused credentials
			t.Errorf("%s: %d answers (got %v)", a, ct.answers[a], ct.answers)
		}
	}
	for _, s := range []int{200, 400, 403, 429} {
		if statuses[s] == 0 {
			t.Errorf("no %d answer validated (got %v)", s, statuses)
		}
	}
	if ct.operations["user-api-tokens-verify-token"] == 0 || kct.operations["user-user-details"] == 0 {
		t.Errorf("a credential check was not validated: %v %v", ct.operations, kct.operations)
	}
}

// contractJobs finishes the job for a validated destination: the destination
// check, a refused and an accepted creation, the list, a second job refused,
// and the job limit. tok is the destination's latest token; the simulator
// allows maxJobs jobs per scope.
func contractJobs(t *testing.T, c *cloudflare.Client, target cloudflare.Target, conf, tok string, maxJobs int) {
	t.Helper()
	ctx := context.Background()
	// 4XX: a token that is not the latest.
	_, err := c.CreateJob(ctx, target, cloudflare.JobRequest{DestinationConf: conf, OwnershipChallenge: "not.the.token"})
	if ae := asAPIError(t, err); ae.Kind != cloudflare.StaleChallenge || ae.HTTPStatus != 400 {
		t.Fatalf("%s: create with a wrong token: %v", target, err)
	}
	// Every field, at the edges of the schema's ranges.
	req := cloudflare.JobRequest{
		DestinationConf: conf, OwnershipChallenge: tok, JobSpec: cloudflare.JobSpec{Dataset: "http_requests", Name: "example.com", Enabled: true,
			OutputOptions: json.RawMessage(`{"field_names":["ClientIP","EdgeStartTimestamp","RayID"],"output_type":"ndjson",` +
				`"timestamp_format":"rfc3339","sample_rate":1,"CVE-2021-44228":true,"record_prefix":"{","record_suffix":"}\n"}`),
			LogpullOptions: "fields=RayID,ClientIP&timestamps=rfc3339", Frequency: "high",
			MaxUploadBytes: 1_000_000_000, MaxUploadIntervalSeconds: 300, MaxUploadRecords: 1_000,
			Filter: `{"where":{"and":[{"key":"ClientCountry","operator":"neq","value":"ca"}]}}`},
	}
	job, err := c.CreateJob(ctx, target, req)
	if err != nil {
		t.Fatalf("%s: create: %v", target, err)
	}
	if job.ID < 1 || job.DestinationConf != conf || !job.Enabled || job.Dataset != "http_requests" || job.MaxUploadBytes != 1_000_000_000 ||
		job.Filter != req.Filter || !json.Valid(job.OutputOptions) {
		t.Fatalf("%s: created %s %+v", target, job, job.OutputOptions)
	}
	// 4XX: a second job for the destination.
	_, err = c.CreateJob(ctx, target, req)
	if ae := asAPIError(t, err); ae.Kind != cloudflare.Permanent || ae.HTTPStatus != 400 {
		t.Fatalf("%s: second job: %v", target, err)
	}
	// Minimal jobs, to destinations that need no challenge, up to the limit.
	for i := 1; i < maxJobs; i++ {
		r := cloudflare.JobRequest{DestinationConf: fmt.Sprintf("r2://bucket/logs%d?account-id=%s", i, accountID)}
		if i == 1 {
			r.Kind = "edge"
		}
		if _, err := c.CreateJob(ctx, target, r); err != nil {
			t.Fatalf("%s: job %d: %v", target, i, err)
		}
	}
	// 4XX: the job limit, 403 yet Permanent.
	_, err = c.CreateJob(ctx, target, cloudflare.JobRequest{DestinationConf: "https://logs.example.com/over"})
	if ae := asAPIError(t, err); ae.Kind != cloudflare.Permanent || ae.HTTPStatus != 403 || !ae.HasCode(cloudflare.CodeNotAllowed) {
		t.Fatalf("%s: over the job limit: %v", target, err)
	}
	jobs, err := c.ListJobs(ctx, target)
	if err != nil || len(jobs) != maxJobs || jobs[0].ID != job.ID || jobs[0].DestinationConf != conf || jobs[1].Kind != "edge" {
		t.Fatalf("%s: jobs %v, %v", target, jobs, err)
	}
	// One job, and one the scope does not have (4XX).
	got, err := c.GetJob(ctx, target, job.ID)
	if err != nil || got.DestinationConf != conf || got.Filter != req.Filter || got.Name != "example.com" || got.ID != job.ID || !got.Enabled {
		t.Fatalf("%s: get job: %v %v", target, got, err)
	}
	_, err = c.GetJob(ctx, target, 1_000_000)
	if ae := asAPIError(t, err); ae.Kind != cloudflare.Permanent || ae.HTTPStatus != 404 {
		t.Fatalf("%s: get a job that is not there: %v", target, err)
	}
	// 4XX: a new conf that needs a challenge, with a token that is not its.
	moved := "s3://otherbucket/logs?region=us-west-2"
	_, err = c.UpdateJob(ctx, target, job.ID, cloudflare.UpdateFrom(got, moved, tok))
	if ae := asAPIError(t, err); ae.Kind != cloudflare.StaleChallenge || ae.HTTPStatus != 400 {
		t.Fatalf("%s: update with another conf's token: %v", target, err)
	}
	// A conf that needs none, every other setting as read.
	r2 := "r2://bucket/moved?account-id=" + accountID
	up, err := c.UpdateJob(ctx, target, job.ID, cloudflare.UpdateFrom(got, r2, ""))
	if err != nil || up.DestinationConf != r2 || up.Filter != req.Filter || !up.Enabled || up.MaxUploadBytes != got.MaxUploadBytes ||
		string(up.OutputOptions) != string(got.OutputOptions) {
		t.Fatalf("%s: update: %v %v", target, up, err)
	}
}

// TestContractJobHealth checks the health fields as the simulator answers
// them against the schema: a job that pushed, and one that fails with
// Cloudflare's message, which GetJob returns redacted.
func TestContractJobHealth(t *testing.T) {
	t.Parallel()
	const token = "contract-token-0123456789"
	failing := "https://logs.example.com/in?header_Authorization=Basic%20c2VjcmV0LXNlY3JldA"
	sim, err := simulator.New(simulator.Config{APIToken: token, JobPushDelay: -1,
		Write: func(context.Context, string, string, []byte) error { return nil },
		JobPushError: func(c string) string {
			if c == failing {
				return "error uploading to destination " + c + ": 401 Unauthorized"
			}
			return ""
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	base := srv.URL + "/client/v4"
	ct := newContract(t, base)
	c, err := cloudflare.New(cloudflare.Config{BaseURL: base, Credentials: cloudflare.Credentials{APIToken: token},
		HTTPClient: &http.Client{Transport: ct, Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	target := cloudflare.Target{Scope: "zone", ID: zoneID}
	for _, conf := range []string{"https://logs.example.com/ok", failing} {
		job, err := c.CreateJob(ctx, target, cloudflare.JobRequest{DestinationConf: conf, JobSpec: cloudflare.JobSpec{Dataset: "http_requests", Enabled: true}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.GetJob(ctx, target, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		switch conf {
		case failing:
			if got.LastError.IsZero() || !got.LastComplete.IsZero() || !strings.Contains(got.ErrorMessage, "401 Unauthorized") ||
				strings.Contains(got.ErrorMessage, "c2VjcmV0LXNlY3JldA") {
				t.Errorf("failing job: %v %v %q", got.LastComplete, got.LastError, got.ErrorMessage)
			}
		default:
			if got.LastComplete.IsZero() || !got.LastError.IsZero() || got.ErrorMessage != "" {
				t.Errorf("pushing job: %v %v %q", got.LastComplete, got.LastError, got.ErrorMessage)
			}
		}
	}
	for _, u := range ct.unchecked {
		t.Errorf("unchecked call %s", u)
	}
	if ct.answers["get-zones-zone_id-logpush-jobs-job_id 200"] != 2 {
		t.Errorf("answers: %v", ct.answers)
	}
}
