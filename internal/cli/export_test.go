package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/redact"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
)

// exportSecret is a secret the test put in a conf, and the variable the
// export must declare for it: job_<id>_<parameter>.
type exportSecret struct{ param, value string }

// seedExport adds 50 jobs to the account of ps and its zones: S3 with
// keys, Azure with a SAS, HTTPS with header secrets, R2, and plain
// destinations; zone and account scope; every setting the API has. It
// returns the secrets by job id.
func seedExport(t *testing.T, ps *planSim, zones []simulator.Zone) map[int][]exportSecret {
	t.Helper()
	secrets := map[int][]exportSecret{}
	for i := range 50 {
		scope, id, dataset := cloudflare.ScopeZone, zones[i%len(zones)].ID, "http_requests"
		if i%10 == 3 {
			scope, id, dataset = cloudflare.ScopeAccount, planAccount, "audit_logs"
		} else if i%3 == 1 {
			dataset = "firewall_events"
		}
		var conf string
		var sec []exportSecret
		switch i % 5 {
		case 0:
			sec = []exportSecret{{"access-key-id", fmt.Sprintf("AKIAEXPORT%04d", i)}, {"secret-access-key", fmt.Sprintf("S3SECRET/%04d+x", i)}}
			conf = fmt.Sprintf("s3://bucket-%d/logs/{DATE}?region=us-east-1&access-key-id=%s&secret-access-key=%s", i, sec[0].value, url.QueryEscape(sec[1].value))
			sec[1].value = url.QueryEscape(sec[1].value) // as written in the conf
		case 1:
			sec = []exportSecret{{"sig", fmt.Sprintf("AZSIG%04d%%2Bq%%3D", i)}}
			conf = fmt.Sprintf("azure://acct.blob.core.windows.net/cont/z%d/{DATE}?sv=2022-11-02&ss=b&srt=co&sp=w&sig=%s", i, sec[0].value)
		case 2:
			sec = []exportSecret{{"header_Authorization", fmt.Sprintf("Bearer%%20HTTPSECRET%04d", i)}, {"header_X-Api-Key", fmt.Sprintf("HDRKEY%04d", i)}}
			conf = fmt.Sprintf("https://logs.example.com/in/%d?header_Authorization=%s&tags=env:prod&header_X-Api-Key=%s", i, sec[0].value, sec[1].value)
		case 3:
			sec = []exportSecret{{"access-key-id", fmt.Sprintf("R2KEY%04d", i)}, {"secret-access-key", fmt.Sprintf("R2SECRET%04d", i)}}
			conf = fmt.Sprintf("r2://logs-%d/p/{DATE}?account-id=%s&access-key-id=%s&secret-access-key=%s", i, planAccount, sec[0].value, sec[1].value)
		default:
			conf = fmt.Sprintf("gs://bucket-%d/logs/{DATE}", i)
		}
		var jobID int
		if i%7 == 6 {
			jobID = ps.sim.AddJob(scope, id, dataset, conf) // as the dashboard made it: most fields null
		} else {
			body := map[string]any{"destination_conf": conf, "dataset": dataset, "name": fmt.Sprintf("job-%d.example.com", i),
				"enabled": i%2 == 0, "max_upload_records": 1000 + i, "max_upload_bytes": 5000000 + i}
			if i%4 == 0 {
				body["filter"] = `{"where":{"and":[{"key":"ClientCountry","operator":"neq","value":"ca"}]}}`
			}
			if i%6 == 0 {
				body["frequency"] = "low"
			}
			switch i % 3 {
			case 0:
				body["output_options"] = map[string]any{"field_names": []string{"ClientIP", "RayID", "EdgeStartTimestamp"},
					"timestamp_format": "rfc3339", "output_type": "ndjson", "sample_rate": 0.25, "CVE-2021-44228": true,
					"record_prefix": "${", "record_template": `{"ip":"{{.ClientIP}}","ray":"%{x}"}`, "batch_prefix": nil}
			case 1:
				body["logpull_options"] = "fields=RayID,ClientIP&timestamps=rfc3339"
			}
			b, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			if jobID, err = ps.sim.AddJobJSON(scope, id, b); err != nil {
				t.Fatalf("job %d: %v", i, err)
			}
		}
		secrets[jobID] = sec
	}
	return secrets
}

// exportedFile is a Terraform file as the test reads it back.
type exportedFile struct {
	variables map[string]*hclsyntax.Block
	imports   map[string]string // resource label -> import id
	resources map[string]*hclsyntax.Block
}

func parseExport(t *testing.T, src []byte) exportedFile {
	t.Helper()
	f, diags := hclparse.NewParser().ParseHCL(src, "jobs.tf")
	if diags.HasErrors() {
		t.Fatalf("the export does not parse: %v\n%s", diags, src)
	}
	ef := exportedFile{variables: map[string]*hclsyntax.Block{}, imports: map[string]string{}, resources: map[string]*hclsyntax.Block{}}
	for _, b := range f.Body.(*hclsyntax.Body).Blocks {
		switch b.Type {
		case "variable":
			ef.variables[b.Labels[0]] = b
		case "import":
			trav, diags := hcl.AbsTraversalForExpr(b.Body.Attributes["to"].Expr)
			if diags.HasErrors() || len(trav) != 2 || trav.RootName() != "cloudflare_logpush_job" {
				t.Fatalf("import to is not cloudflare_logpush_job.LABEL: %v", diags)
			}
			label := trav[1].(hcl.TraverseAttr).Name
			id, diags := b.Body.Attributes["id"].Expr.Value(nil)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if _, dup := ef.imports[label]; dup {
				t.Errorf("two imports to %s", label)
			}
			ef.imports[label] = id.AsString()
		case "resource":
			if b.Labels[0] != "cloudflare_logpush_job" {
				t.Errorf("resource %v", b.Labels)
			}
			ef.resources[b.Labels[1]] = b
		default:
			t.Errorf("unexpected block %s", b.Type)
		}
	}
	return ef
}

// secretVar is the variable the export declares for a secret parameter.
func secretVar(jobID int, param string) string {
	return fmt.Sprintf("job_%d_%s", jobID, strings.NewReplacer("-", "_").Replace(strings.ToLower(param)))
}

// checkExport compares every attribute of the file with the jobs the
// simulator holds, the import ids, the variables, and that no secret is in
// the file.
func checkExport(t *testing.T, src []byte, want []listedJob, secrets map[int][]exportSecret) {
	t.Helper()
	ef := parseExport(t, src)
	if len(ef.resources) != len(want) || len(ef.imports) != len(want) {
		t.Fatalf("%d resources and %d imports, want %d each", len(ef.resources), len(ef.imports), len(want))
	}
	vars := map[string]cty.Value{}
	wantVars := map[string]bool{}
	for _, ej := range want {
		for _, s := range secrets[ej.Job.ID] {
			name := secretVar(ej.Job.ID, s.param)
			vars[name] = cty.StringVal(s.value)
			wantVars[name] = true
			if dec, _ := url.QueryUnescape(s.value); strings.Contains(string(src), s.value) || strings.Contains(string(src), dec) {
				t.Errorf("job %d: the secret %s is in the export", ej.Job.ID, s.param)
			}
		}
	}
	for name, b := range ef.variables {
		if !wantVars[name] {
			t.Errorf("variable %s declared for no secret", name)
			continue
		}
		delete(wantVars, name)
		sens, diags := b.Body.Attributes["sensitive"].Expr.Value(nil)
		if diags.HasErrors() || !sens.True() {
			t.Errorf("variable %s is not sensitive = true", name)
		}
		if typ := hcl.ExprAsKeyword(b.Body.Attributes["type"].Expr); typ != "string" {
			t.Errorf("variable %s: type %q, want string", name, typ)
		}
	}
	for name := range wantVars {
		t.Errorf("no variable %s", name)
	}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(vars)}}
	for _, ej := range want {
		j := ej.Job
		label := fmt.Sprintf("job_%d", j.ID)
		r := ef.resources[label]
		if r == nil {
			t.Errorf("job %d: no resource %s", j.ID, label)
			continue
		}
		scopePath := map[string]string{cloudflare.ScopeZone: "zones", cloudflare.ScopeAccount: "accounts"}[ej.Target.Scope]
		if got, w := ef.imports[label], fmt.Sprintf("%s/%s/%d", scopePath, ej.Target.ID, j.ID); got != w {
			t.Errorf("job %d: import id %q, want %q", j.ID, got, w)
		}
		got := map[string]cty.Value{}
		for name, a := range r.Body.Attributes {
			v, diags := a.Expr.Value(ctx)
			if diags.HasErrors() {
				t.Fatalf("job %d: %s: %v", j.ID, name, diags)
			}
			got[name] = v
		}
		if len(secrets[j.ID]) > 0 && len(r.Body.Attributes["destination_conf"].Expr.Variables()) != len(secrets[j.ID]) {
			t.Errorf("job %d: destination_conf interpolates %d variables, want %d", j.ID, len(r.Body.Attributes["destination_conf"].Expr.Variables()), len(secrets[j.ID]))
		}
		wantAttrs := map[string]cty.Value{
			"dataset": cty.StringVal(j.Dataset), "destination_conf": cty.StringVal(j.DestinationConf),
			"enabled": cty.BoolVal(j.Enabled), "name": cty.StringVal(j.Name), "kind": cty.StringVal(j.Kind),
			"filter":                      cty.StringVal(j.Filter),
			"max_upload_bytes":            cty.NumberIntVal(int64(j.MaxUploadBytes)),
			"max_upload_interval_seconds": cty.NumberIntVal(int64(j.MaxUploadIntervalSeconds)),
			"max_upload_records":          cty.NumberIntVal(int64(j.MaxUploadRecords)),
		}
		if ej.Target.Scope == cloudflare.ScopeZone {
			wantAttrs["zone_id"] = cty.StringVal(ej.Target.ID)
		} else {
			wantAttrs["account_id"] = cty.StringVal(ej.Target.ID)
		}
		if j.Frequency != "" {
			wantAttrs["frequency"] = cty.StringVal(j.Frequency)
		}
		if j.LogpullOptions != "" {
			wantAttrs["logpull_options"] = cty.StringVal(j.LogpullOptions)
		}
		for name, w := range wantAttrs {
			if g, ok := got[name]; !ok || !g.Equals(w).True() {
				t.Errorf("job %d: %s = %#v, want %#v", j.ID, name, g, w)
			}
		}
		for name := range got {
			if _, ok := wantAttrs[name]; !ok && name != "output_options" {
				t.Errorf("job %d: unexpected attribute %s", j.ID, name)
			}
		}
		// output_options: the API's object, keys as the provider names
		// them, nulls left out.
		var wantOO map[string]any
		if len(j.OutputOptions) > 0 && string(j.OutputOptions) != "null" {
			var raw map[string]any
			if err := json.Unmarshal(j.OutputOptions, &raw); err != nil {
				t.Fatal(err)
			}
			wantOO = map[string]any{}
			for k, v := range raw {
				if v != nil {
					wantOO[strings.ReplaceAll(strings.ToLower(k), "-", "_")] = v
				}
			}
		}
		var gotOO map[string]any
		if v, ok := got["output_options"]; ok {
			b, err := ctyjson.Marshal(v, v.Type())
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &gotOO); err != nil {
				t.Fatal(err)
			}
		}
		if !reflect.DeepEqual(gotOO, wantOO) {
			t.Errorf("job %d: output_options = %v, want %v", j.ID, gotOO, wantOO)
		}
	}
}

// simJobs lists the jobs of the targets through the client, as the
// simulator holds them.
func simJobs(t *testing.T, ps *planSim, targets ...cloudflare.Target) []listedJob {
	t.Helper()
	var out []listedJob
	for _, tg := range targets {
		for _, j := range ps.jobs(t, tg.Scope, tg.ID) {
			out = append(out, listedJob{Target: tg, Job: j})
		}
	}
	return out
}

// TestExportTerraform: 50 jobs of an account and its zones are exported,
// and the file, parsed back, holds each job's settings exactly, its
// import id, a sensitive variable per secret and no secret.
func TestExportTerraform(t *testing.T) {
	t.Parallel()
	zones := []simulator.Zone{planZone(0), planZone(1), planZone(2), planZone(5)}
	other := simulator.Zone{ID: fmt.Sprintf("%032x", 0xf00), Name: "other.example.org", Status: "active", AccountID: fmt.Sprintf("%032x", 0xbcd)}
	ps := newPlanSim(t, simulator.Config{Zones: append(append([]simulator.Zone(nil), zones...), other)})
	secrets := seedExport(t, ps, zones)
	ps.sim.AddJob(cloudflare.ScopeZone, other.ID, "http_requests", "gs://not-this-account/{DATE}")
	env := map[string]string{"CLOUDFLARE_API_TOKEN": runToken}

	targets := []cloudflare.Target{{Scope: cloudflare.ScopeAccount, ID: planAccount}}
	for _, z := range zones {
		targets = append(targets, cloudflare.Target{Scope: cloudflare.ScopeZone, ID: z.ID})
	}
	all := simJobs(t, ps, targets...)
	if len(all) != 50 {
		t.Fatalf("the simulator holds %d jobs, want 50", len(all))
	}

	out := filepath.Join(t.TempDir(), "logpush.tf")
	code, stdout, stderr := runEnv(t, env, "", "export-terraform", "--cloudflare-api-url", ps.url, "--api-rate", "0", "--account", planAccount, "-o", out)
	if code != 0 {
		t.Fatalf("export-terraform = %d:\n%s\n%s", code, stdout, stderr)
	}
	src, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if stdout != "" {
		t.Errorf("stdout with -o: %q", stdout)
	}
	checkExport(t, src, all, secrets)
	if bytes.Contains(src, []byte("not-this-account")) || bytes.Contains(src, []byte("ownership_challenge")) {
		t.Errorf("the export holds another account's job or an ownership_challenge:\n%s", src)
	}

	// --zone: the account's own jobs and those zones', to standard output.
	code, stdout, stderr = runEnv(t, env, "", "export-terraform", "--cloudflare-api-url", ps.url, "--api-rate", "0",
		"--account", planAccount, "--zone", strings.ToUpper(zones[1].ID), "--zone", zones[3].ID)
	if code != 0 {
		t.Fatalf("export-terraform --zone = %d:\n%s", code, stderr)
	}
	checkExport(t, []byte(stdout), simJobs(t, ps, targets[0], targets[2], targets[4]), secrets)
}

// TestExportTerraformBadInput: bad flags and a zone of another account
// exit 2 and write nothing.
func TestExportTerraformBadInput(t *testing.T) {
	t.Parallel()
	other := simulator.Zone{ID: fmt.Sprintf("%032x", 0xf00), Name: "other.example.org", Status: "active", AccountID: fmt.Sprintf("%032x", 0xbcd)}
	ps := newPlanSim(t, simulator.Config{Zones: []simulator.Zone{planZone(0), other}})
	forbidden := newPlanSim(t, simulator.Config{Zones: []simulator.Zone{planZone(0)}, ZoneRead: simulator.ZoneReadForbidden})
	env := map[string]string{"CLOUDFLARE_API_TOKEN": runToken}
	for _, tc := range []struct {
		name string
		url  string
		env  map[string]string
		args []string
		want string
	}{
		{"no account", ps.url, env, nil, "-account: at least one account id is required"},
		{"account not hex", ps.url, env, []string{"--account", "example"}, `-account "example": an account id is 32 hex characters`},
		{"zone not hex", ps.url, env, []string{"--account", planAccount, "--zone", "example.com"}, `-zone "example.com": a zone id is 32 hex characters`},
		{"zone of another account", ps.url, env, []string{"--account", planAccount, "--zone", other.ID}, "-zone " + other.ID + ": not a zone of account " + planAccount},
		{"list concurrency", ps.url, env, []string{"--account", planAccount, "--list-concurrency", "0"}, "-list-concurrency 0: must be at least 1"},
		{"operand", ps.url, env, []string{"--account", planAccount, "jobs.tf"}, `takes no operand, got "jobs.tf"`},
		{"no credential", ps.url, map[string]string{}, []string{"--account", planAccount}, "cloudflare credentials: none"},
		{"no zone read", forbidden.url, env, []string{"--account", planAccount}, "cannot list zones"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "jobs.tf")
			args := append([]string{"export-terraform", "--cloudflare-api-url", tc.url, "--api-rate", "0", "-o", out}, tc.args...)
			code, _, stderr := runEnv(t, tc.env, "", args...)
			if code != 2 {
				t.Fatalf("export-terraform = %d, want 2:\n%s", code, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, stderr)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a file was written: %v", err)
			}
		})
	}
}

// TestExportConfParts: each span redaction masks becomes a variable named
// after what precedes it, the literals stay, and the parts rebuild the conf.
func TestExportConfParts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		conf string
		vars []string
	}{
		{"gs://bucket/logs/{DATE}", nil},
		{"https://user:p4ss@logs.example.com/in?x=1", []string{"job_1_userinfo"}},
		{"sumo://endpoint.sumologic.com/receiver/v1/http/ZaVnC4dhaV0", []string{"job_1_collector_code"}},
		{"azure://acct.blob.core.windows.net/c/p?sv=2022&sig=&sp=w", nil}, // an empty sig is no secret
		{"https://l.example.com/in?header_X-Token=aa&header_x_token=bb", []string{"job_1_header_x_token", "job_1_header_x_token_2"}},
		{"https://l.example.com/in?header_%41uth=Basic%20abcd", []string{"job_1_header_auth"}},
	} {
		parts, err := confParts(tc.conf, "job_1")
		if err != nil {
			t.Fatalf("%s: %v", tc.conf, err)
		}
		var rebuilt strings.Builder
		var vars []string
		for _, p := range parts {
			if p.secret {
				vars = append(vars, p.text)
				rebuilt.WriteString(redact.Mask)
			} else {
				rebuilt.WriteString(p.text)
			}
		}
		if !reflect.DeepEqual(vars, tc.vars) {
			t.Errorf("%s: variables %v, want %v", tc.conf, vars, tc.vars)
		}
		want := redact.String(tc.conf)
		if tc.vars == nil {
			want = tc.conf // nothing to hide: the conf as it is
		}
		if got := rebuilt.String(); got != want {
			t.Errorf("%s: parts rebuild %q, want %q", tc.conf, got, want)
		}
	}
	if _, err := confParts("https://l.example.com/REDACTED?header_a=b", "job_1"); err == nil || !strings.Contains(err.Error(), "REDACTED") {
		t.Errorf("a conf holding the mask: %v", err)
	}
	_, err := terraformFile([]listedJob{{Target: cloudflare.Target{Scope: cloudflare.ScopeZone, ID: planAccount},
		Job: cloudflare.Job{ID: 7, DestinationConf: "gs://b/p", OutputOptions: json.RawMessage(`{"field_names":["a"],"new_option":true}`)}}})
	if err == nil || !strings.Contains(err.Error(), `logpush job 7`) || !strings.Contains(err.Error(), `key "new_option"`) {
		t.Errorf("an output_options key the provider lacks: %v", err)
	}
}

// TestExportTerraformBatch: the jobs a --create-job batch made are
// exported from the batch alone (the ledger's job ids, one GET each), and
// the file, parsed back, holds each job as the simulator holds it; a job
// the ledger names that no longer exists is left out with a warning.
func TestExportTerraformBatch(t *testing.T) {
	t.Parallel()
	rdb, opt := testutil.Redis(t)
	redisURL := fmt.Sprintf("redis://%s/%d", opt.Addr, opt.DB)
	e := newE2E(t, rdb, e2eConfig{sim: simFlags{writeDelay: 20 * time.Millisecond}})
	dir := t.TempDir()
	const zone1, zone2 = "00000000000000000000000000000001", "00000000000000000000000000000002"
	const account = "0000000000000000000000000000000a"
	const secret = "SPLUNKTOKEN0123"
	csv := "zone_id,account_id,destination_conf,dataset,enabled\n" +
		zone1 + ",,file://" + dir + "/a,http_requests,\n" +
		zone1 + ",,https://logs.example.com/in?header_Authorization=Splunk%20" + secret + ",firewall_events,false\n" +
		zone2 + ",,file://" + dir + "/b,http_requests,\n" +
		"," + account + ",file://" + dir + "/acct,audit_logs,\n"
	code, out, stderr := run(t, csv, "enqueue", "--skip-preflight", "--create-job", "--redis", redisURL, "-")
	if code != 0 {
		t.Fatalf("enqueue = %d: %s %s", code, out, stderr)
	}
	batch := strings.TrimSuffix(strings.Fields(out)[1], ":")
	if st := e.wait(t, batch, time.Minute); st.Counts[events.Validated]+st.Counts[events.NotRequired] != 4 {
		t.Fatalf("batch: %+v, want 4 validated or not_required", st.Counts)
	}
	api, err := cloudflare.New(cloudflare.Config{BaseURL: e.simURL, Credentials: cloudflare.Credentials{APIToken: "e2e-api-token"}})
	if err != nil {
		t.Fatal(err)
	}
	var want []listedJob
	secrets := map[int][]exportSecret{}
	for _, tg := range []cloudflare.Target{{Scope: cloudflare.ScopeAccount, ID: account}, {Scope: cloudflare.ScopeZone, ID: zone1}, {Scope: cloudflare.ScopeZone, ID: zone2}} {
		jobs, err := api.ListJobs(context.Background(), tg)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			want = append(want, listedJob{Target: tg, Job: j})
			if strings.Contains(j.DestinationConf, secret) {
				secrets[j.ID] = []exportSecret{{"header_Authorization", "Splunk%20" + secret}}
			}
		}
	}
	if len(want) != 4 || len(secrets) != 1 {
		t.Fatalf("the simulator holds %d jobs (%d with the secret), want 4 (1)", len(want), len(secrets))
	}
	env := map[string]string{"CLOUDFLARE_API_TOKEN": "e2e-api-token"}
	export := func() (int, string, string) {
		return runEnv(t, env, "", "export-terraform", "--cloudflare-api-url", e.simURL, "--api-rate", "0", "--batch", batch, "--redis", redisURL)
	}
	code, tf, stderr := export()
	if code != 0 {
		t.Fatalf("export-terraform --batch = %d:\n%s", code, stderr)
	}
	checkExport(t, []byte(tf), want, secrets)
	if !strings.Contains(stderr, "4 jobs of batch "+batch+", 4 API calls") {
		t.Errorf("stderr: %s", stderr)
	}

	// A destination whose job was deleted since: left out, with a warning.
	gone := events.Event{Event: events.Validated, BatchID: batch, Scope: cloudflare.ScopeZone, ScopeID: zone2, JobID: 9999}
	if _, err := e.store.Transition(context.Background(), ledger.Key{Batch: batch, Hash: "deleted-job"}, events.Validated, &gone, "",
		"scope", gone.Scope, "scope_id", gone.ScopeID); err != nil {
		t.Fatal(err)
	}
	code, tf, stderr = export()
	if code != 0 {
		t.Fatalf("export-terraform --batch with a deleted job = %d:\n%s", code, stderr)
	}
	checkExport(t, []byte(tf), want, secrets)
	if !strings.Contains(stderr, "Logpush job 9999 no longer exists") {
		t.Errorf("no warning of the deleted job: %s", stderr)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--batch", batch}, "-batch: needs --redis"},
		{[]string{"--batch", batch, "--redis", redisURL, "--account", account}, "--account and --zone select instead of it"},
		{[]string{"--batch", "no-such-batch", "--redis", redisURL}, "-batch no-such-batch: no such batch"},
	} {
		code, _, stderr := runEnv(t, env, "", append([]string{"export-terraform", "--cloudflare-api-url", e.simURL, "--api-rate", "0"}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("export-terraform %v = %d, want 2 and %q:\n%s", tc.args, code, tc.want, stderr)
		}
	}
}
