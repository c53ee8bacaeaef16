package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	"golang.org/x/sync/errgroup"

	"github.com/logpush-onboard/logpush-onboard/credentials"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/redact"
	"github.com/logpush-onboard/logpush-onboard/producer"
)

const exportUsage = `usage: logpush-onboard export-terraform --account ID [--account ID ...] [--zone ID ...] [-o FILE] [flags]
       logpush-onboard export-terraform --batch ID --redis URL [-o FILE] [flags]

Writes Terraform (cloudflare provider v5, Terraform 1.5 or later) that takes
the Logpush jobs of the account over: for each job an import block (id
zones/<zone_id>/<job_id> or accounts/<account_id>/<job_id>) and a
cloudflare_logpush_job resource with the job's settings as Cloudflare
answers them, so that terraform plan after the import shows no change.
The secrets of a destination_conf (keys, SAS signature, header_* values,
tokens, URL credentials) are not written: each is a sensitive variable the
conf interpolates (${var.job_<id>_<parameter>}); give their values in a
*.tfvars file or TF_VAR_ environment variables. No ownership_challenge is
written: an imported job needs none.

The jobs are those the jobs command lists: every job of the accounts and of
their zones (GET /zones, any status); with --zone, the accounts' own jobs and
those of the zones named, which must be the accounts'. With --batch, the
jobs of a batch's destinations (enqueue --create-job, migrate) as the
ledger in --redis recorded them, each read with GET .../logpush/jobs/{id}
under the credential its destination ran with (--credentials); a job
deleted since is left out with a warning. Every call goes through the API
budget and retries of plan.

Exit status: 0 when written; 1 when the API failed (nothing is written);
2 on bad input (flags, a zone not of the account, an unknown batch, a
credential that cannot list zones or read jobs).
`

func runExportTerraform(ctx context.Context, env Env, args []string) error {
	var af apiFlags
	var accounts, zones stringList
	fs := newFlags("export-terraform", env)
	batch := fs.String("batch", "", "export the jobs of this batch's destinations, as the ledger in --redis recorded them, instead of --account's")
	fs.Var(&accounts, "account", "account id (32 hex) whose jobs to export; repeat, or separate with commas")
	fs.Var(&zones, "zone", "only the jobs of these zones of the accounts, besides the accounts' own; repeat, or separate with commas (default: every zone's)")
	var concurrency int
	listConcurrencyFlag(fs, &concurrency)
	credential := fs.String("credential", "", "the credential of --credentials that lists the jobs (default: CLOUDFLARE_API_TOKEN)")
	af.register(fs, env, "the export's calls", "; with --batch, the Redis of the batch")
	out := fs.String("o", "-", "write the Terraform here (- for standard output); written whole or not at all")
	var lf viewLog
	lf.register(fs, env)
	var cf credentialsFlag
	cf.register(fs, env)
	setUsage(fs, exportUsage)
	if err := parseSelection(fs, args); err != nil {
		return err
	}
	sel, err := checkExportSelection(accounts, zones, *credential, concurrency, *batch, af.redisURL)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	log, closeLog, set, err := lf.withCredentials(env, cf)
	if err != nil {
		return err
	}
	defer closeLog()
	pe := af.planEnv(fs, env, log)
	var found *jobsFound
	var calls int
	if *batch != "" {
		found, calls, err = batchJobs(ctx, pe, *batch, concurrency, set)
	} else {
		p, done, perr := newPlanner(ctx, pe, *credential, set)
		if perr != nil {
			return planExit(perr)
		}
		defer done()
		found, err = selectJobs(ctx, p, sel)
		calls = p.calls
	}
	if err != nil {
		return planExit(err)
	}
	for _, w := range found.warnings {
		fmt.Fprintln(env.Stderr, "export-terraform: warning:", w)
	}
	file, err := terraformFile(found.jobs)
	if err != nil {
		return err
	}
	write := func(w io.Writer) error { _, err := w.Write(file); return err }
	if *out == "-" {
		err = write(env.Stdout)
	} else if err = writeFileWhole(*out, write); err != nil {
		err = fmt.Errorf("-o: %w", err)
	}
	if err != nil {
		return err
	}
	if *batch != "" {
		fmt.Fprintf(env.Stderr, "export-terraform: %d jobs of batch %s, %d API calls\n", len(found.jobs), *batch, calls)
		return nil
	}
	fmt.Fprintf(env.Stderr, "export-terraform: %d jobs of %d accounts and %d zones, %d API calls\n", len(found.jobs), len(sel.accounts), found.zones, calls)
	return nil
}

// checkExportSelection turns --account and --zone (or --batch) into the
// selection of selectJobs; every error is bad input.
func checkExportSelection(accounts, zones stringList, credential string, concurrency int, batch, redisURL string) (jobSelection, error) {
	sel := jobSelection{credential: credential, concurrency: concurrency}
	if batch != "" {
		switch {
		case len(accounts) > 0 || len(zones) > 0:
			return sel, errors.New("-batch: the batch names its jobs; --account and --zone select instead of it")
		case credential != "":
			return sel, errors.New("-batch: each job is read with the credential its destination ran with; --credential is for --account")
		case strings.TrimSpace(redisURL) == "":
			return sel, errors.New("-batch: needs --redis, the Redis the batch ran on (run's embedded Redis is gone when it ends)")
		case concurrency < 1:
			return sel, fmt.Errorf("-list-concurrency %d: must be at least 1", concurrency)
		}
		return sel, nil
	}
	return checkScopes(accounts, zones, credential, concurrency)
}

// checkScopes turns --account, --zone, --credential and --list-concurrency
// into the selection of selectJobs (jobs, export-terraform): the ids
// lowercased, each once; every error is bad input.
func checkScopes(accounts, zones stringList, credential string, concurrency int) (jobSelection, error) {
	sel := jobSelection{credential: credential, concurrency: concurrency}
	if len(accounts) == 0 {
		return sel, errors.New("-account: at least one account id is required")
	}
	for _, a := range accounts {
		la := strings.ToLower(a)
		if !cloudflare.IsIdentifier(la) {
			return sel, fmt.Errorf("-account %q: an account id is 32 hex characters", truncateText(a, 40))
		}
		if !slices.Contains(sel.accounts, la) {
			sel.accounts = append(sel.accounts, la)
		}
	}
	for _, z := range zones {
		lz := strings.ToLower(z)
		if !cloudflare.IsIdentifier(lz) {
			return sel, fmt.Errorf("-zone %q: a zone id is 32 hex characters", truncateText(z, 40))
		}
		if !slices.Contains(sel.zones, lz) {
			sel.zones = append(sel.zones, lz)
		}
	}
	if concurrency < 1 {
		return sel, fmt.Errorf("-list-concurrency %d: must be at least 1", concurrency)
	}
	return sel, nil
}

// batchJobs reads the jobs of batch's destinations: the job each one's
// events named, as the ledger in pe.redisURL keeps it (the second job of a
// copy, which pushes to the destination, rather than the job copied), each
// read with GET .../logpush/jobs/{id} under the destination's credential,
// concurrency at once, through that credential's budget and retries. It
// returns the jobs, ordered by scope, scope id and job id, and the calls
// spent. A job deleted since (404) is left out with a warning; an unknown
// batch and a credential refused the read are bad input (planError).
func batchJobs(ctx context.Context, pe planEnv, batch string, concurrency int, set *credentials.Set) (*jobsFound, int, error) {
	rdb, closeRedis, err := connectRedis(ctx, pe.redisURL)
	if err != nil {
		return nil, 0, err
	}
	defer closeRedis()
	cl, err := producer.NewClient(rdb, nil)
	if err != nil {
		return nil, 0, err
	}
	defer cl.Close()
	store := cl.Ledger()
	if _, err := cl.BatchStatus(ctx, batch); err != nil {
		if errors.Is(err, ledger.ErrNoBatch) {
			return nil, 0, badPlan("-batch %s: no such batch in --redis", batch)
		}
		return nil, 0, err
	}
	type ref struct {
		cred   string
		target cloudflare.Target
		id     int
	}
	seen := map[ref]bool{}
	var refs []ref
	without := 0
	err = store.Dests(ctx, batch, func(_ string, st ledger.DestState) error {
		id := cmp.Or(st.NewJobID, st.JobID)
		if id == 0 {
			without++
			return nil
		}
		r := ref{cred: st.Credential, target: cloudflare.Target{Scope: st.Scope, ID: st.ScopeID}, id: id}
		if !seen[r] {
			seen[r] = true
			refs = append(refs, r)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	slices.SortFunc(refs, func(a, b ref) int {
		return cmp.Or(strings.Compare(a.target.Scope, b.target.Scope), strings.Compare(a.target.ID, b.target.ID), cmp.Compare(a.id, b.id))
	})
	found := &jobsFound{}
	if without > 0 {
		found.warnings = append(found.warnings, fmt.Sprintf("batch %s: %d destinations have no job (enqueued without --create-job, failed, or not finished): not exported", batch, without))
	}
	jobs := make([]*cloudflare.Job, len(refs))
	calls := 0
	planners := map[string]*planner{}
	for _, r := range refs {
		if planners[r.cred] != nil {
			continue
		}
		p, err := plannerOn(ctx, rdb, pe, r.cred, set)
		if err != nil {
			return nil, calls, err
		}
		planners[r.cred] = p
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for i, r := range refs {
		p := planners[r.cred]
		g.Go(func() error {
			var j cloudflare.Job
			err := p.do(gctx, func() error {
				var err error
				j, err = p.api.GetJob(gctx, r.target, r.id)
				return err
			})
			var ae *cloudflare.APIError
			switch {
			case err == nil:
				jobs[i] = &j
			case errors.As(err, &ae) && ae.HTTPStatus == http.StatusNotFound:
				// deleted since the batch: warned below
			case errors.As(err, &ae) && ae.Kind == cloudflare.Auth:
				return badPlan("%s: credential %s cannot read Logpush job %d: %v (it needs Logs Read or Logs Write)", r.target, credLabel(r.cred), r.id, err)
			default:
				return fmt.Errorf("%s: read Logpush job %d: %w", r.target, r.id, err)
			}
			return nil
		})
	}
	err = g.Wait()
	for _, p := range planners {
		calls += p.calls
	}
	if err != nil {
		return nil, calls, err
	}
	for i, r := range refs {
		if jobs[i] == nil {
			found.warnings = append(found.warnings, fmt.Sprintf("%s: Logpush job %d no longer exists (deleted since the batch): not exported", r.target, r.id))
			continue
		}
		found.jobs = append(found.jobs, listedJob{Target: r.target, Job: *jobs[i]})
	}
	return found, calls, nil
}

// outputOptionAttrs are the attributes of output_options in the schema of
// cloudflare_logpush_job (provider v5), by the API's key lowercased with
// '-' as '_' (the API's "CVE-2021-44228" is cve_2021_44228).
var outputOptionAttrs = []string{"batch_prefix", "batch_suffix", "cve_2021_44228", "field_delimiter", "field_names",
	"merge_subrequests", "output_type", "record_delimiter", "record_prefix", "record_suffix", "record_template",
	"sample_rate", "timestamp_format"}

// terraformFile renders the jobs as a Terraform file: per job its
// variables (one per secret of the conf), its import block and its
// resource.
func terraformFile(jobs []listedJob) ([]byte, error) {
	f := hclwrite.NewEmptyFile()
	body := f.Body()
	labels := map[string]bool{}
	for i, ej := range jobs {
		j := ej.Job
		label := fmt.Sprintf("job_%d", j.ID)
		if labels[label] {
			label = fmt.Sprintf("job_%d_%s_%s", j.ID, ej.Target.Scope, ej.Target.ID)
		}
		labels[label] = true
		what := fmt.Sprintf("logpush job %d (%s %s)", j.ID, ej.Target.Scope, ej.Target.ID)
		parts, err := confParts(j.DestinationConf, label)
		if err != nil {
			return nil, fmt.Errorf("%s: destination_conf %s: %w", what, redact.String(j.DestinationConf), err)
		}
		options, err := outputOptionsValue(j.OutputOptions)
		if err != nil {
			return nil, fmt.Errorf("%s: output_options: %w", what, err)
		}
		if i > 0 {
			body.AppendNewline()
		}
		for _, p := range parts {
			if !p.secret {
				continue
			}
			v := body.AppendNewBlock("variable", []string{p.text}).Body()
			v.SetAttributeValue("description", cty.StringVal(fmt.Sprintf("%s of the destination_conf of %s", p.param, what)))
			v.SetAttributeTraversal("type", hcl.Traversal{hcl.TraverseRoot{Name: "string"}})
			v.SetAttributeValue("sensitive", cty.True)
			body.AppendNewline()
		}
		scopePath := "zones"
		if ej.Target.Scope == cloudflare.ScopeAccount {
			scopePath = "accounts"
		}
		imp := body.AppendNewBlock("import", nil).Body()
		imp.SetAttributeTraversal("to", hcl.Traversal{hcl.TraverseRoot{Name: "cloudflare_logpush_job"}, hcl.TraverseAttr{Name: label}})
		imp.SetAttributeValue("id", cty.StringVal(fmt.Sprintf("%s/%s/%d", scopePath, ej.Target.ID, j.ID)))
		body.AppendNewline()

		r := body.AppendNewBlock("resource", []string{"cloudflare_logpush_job", label}).Body()
		if ej.Target.Scope == cloudflare.ScopeAccount {
			r.SetAttributeValue("account_id", cty.StringVal(ej.Target.ID))
		} else {
			r.SetAttributeValue("zone_id", cty.StringVal(ej.Target.ID))
		}
		if j.Dataset != "" {
			r.SetAttributeValue("dataset", cty.StringVal(j.Dataset))
		}
		r.SetAttributeRaw("destination_conf", confTokens(parts))
		r.SetAttributeValue("enabled", cty.BoolVal(j.Enabled))
		r.SetAttributeValue("name", cty.StringVal(j.Name))
		r.SetAttributeValue("kind", cty.StringVal(j.Kind))
		r.SetAttributeValue("filter", cty.StringVal(j.Filter))
		if j.Frequency != "" {
			r.SetAttributeValue("frequency", cty.StringVal(j.Frequency))
		}
		if j.LogpullOptions != "" {
			r.SetAttributeValue("logpull_options", cty.StringVal(j.LogpullOptions))
		}
		r.SetAttributeValue("max_upload_bytes", cty.NumberIntVal(int64(j.MaxUploadBytes)))
		r.SetAttributeValue("max_upload_interval_seconds", cty.NumberIntVal(int64(j.MaxUploadIntervalSeconds)))
		r.SetAttributeValue("max_upload_records", cty.NumberIntVal(int64(j.MaxUploadRecords)))
		if options != cty.NilVal {
			r.SetAttributeValue("output_options", options)
		}
	}
	return hclwrite.Format(f.Bytes()), nil
}

// confPart is a piece of a destination_conf: literal text, or a secret
// written as the variable text names.
type confPart struct {
	text   string // the literal, or the variable's name
	secret bool
	param  string // the secret's parameter, for the variable's description
}

// secretParamBefore finds the parameter name a masked value follows.
var secretParamBefore = regexp.MustCompile(`([^?&;\s"'=]+)=$`)

// nonIdent are the characters a variable name does not take.
var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// confParts splits conf into literal text and secrets. What a secret is is
// redact's rule: the spans redact.String masks (query parameters such as
// secret-access-key, sig and header_*; URL credentials; a Sumo Logic
// collector code). Each secret becomes the variable <prefix>_<parameter>.
func confParts(conf, prefix string) ([]confPart, error) {
	red := redact.String(conf)
	if red == conf {
		return []confPart{{text: conf}}, nil
	}
	if strings.Contains(conf, redact.Mask) {
		return nil, fmt.Errorf("holds the text %s, which hides where its secrets are", redact.Mask)
	}
	pieces := strings.Split(red, redact.Mask)
	if !strings.HasPrefix(conf, pieces[0]) {
		return nil, errors.New("cannot locate its secrets")
	}
	parts := []confPart{{text: pieces[0]}}
	names := map[string]int{}
	pos := len(pieces[0])
	for i, next := range pieces[1:] {
		end := len(conf)
		if i < len(pieces)-2 || next != "" {
			k := strings.Index(conf[pos:], next)
			if k < 0 {
				return nil, errors.New("cannot locate its secrets")
			}
			end = pos + k
		}
		value := conf[pos:end]
		param := "secret"
		switch prev := pieces[i]; {
		case secretParamBefore.MatchString(prev):
			param = secretParamBefore.FindStringSubmatch(prev)[1]
			if dec, err := url.QueryUnescape(param); err == nil {
				param = dec
			}
		case strings.HasSuffix(prev, "://"):
			param = "userinfo"
		case strings.HasSuffix(strings.ToLower(prev), "/receiver/v1/http/"):
			param = "collector_code"
		}
		if value == "" {
			parts = append(parts, confPart{text: ""}) // an empty secret is no secret
		} else {
			name := prefix + "_" + strings.Trim(nonIdent.ReplaceAllString(strings.ToLower(param), "_"), "_")
			if names[name]++; names[name] > 1 {
				name = fmt.Sprintf("%s_%d", name, names[name])
			}
			parts = append(parts, confPart{text: name, secret: true, param: param})
		}
		parts = append(parts, confPart{text: next})
		pos = end + len(next)
	}
	if pos != len(conf) {
		return nil, errors.New("cannot locate its secrets")
	}
	return parts, nil
}

// confTokens writes the conf as a template string: its literals quoted as
// HCL quotes them (a literal "${" escaped), each secret as ${var.NAME}.
func confTokens(parts []confPart) hclwrite.Tokens {
	toks := hclwrite.Tokens{{Type: hclsyntax.TokenOQuote, Bytes: []byte(`"`)}}
	for _, p := range parts {
		if !p.secret {
			if p.text == "" {
				continue
			}
			lit := hclwrite.TokensForValue(cty.StringVal(p.text))
			toks = append(toks, lit[1:len(lit)-1]...) // without the quotes
			continue
		}
		toks = append(toks,
			&hclwrite.Token{Type: hclsyntax.TokenTemplateInterp, Bytes: []byte("${")},
			&hclwrite.Token{Type: hclsyntax.TokenIdent, Bytes: []byte("var")},
			&hclwrite.Token{Type: hclsyntax.TokenDot, Bytes: []byte(".")},
			&hclwrite.Token{Type: hclsyntax.TokenIdent, Bytes: []byte(p.text)},
			&hclwrite.Token{Type: hclsyntax.TokenTemplateSeqEnd, Bytes: []byte("}")})
	}
	return append(toks, &hclwrite.Token{Type: hclsyntax.TokenCQuote, Bytes: []byte(`"`)})
}

// outputOptionsValue turns the job's output_options into the resource's
// nested object: the keys Cloudflare answered, null ones left out (the
// schema's attributes are optional). cty.NilVal when the job has none. A
// key the provider's schema has no attribute for is an error: Terraform
// would refuse the file.
func outputOptionsValue(raw json.RawMessage) (cty.Value, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return cty.NilVal, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return cty.NilVal, fmt.Errorf("not a JSON object: %w", err)
	}
	attrs := map[string]cty.Value{}
	for k, v := range m {
		name := strings.ReplaceAll(strings.ToLower(k), "-", "_")
		if !slices.Contains(outputOptionAttrs, name) {
			return cty.NilVal, fmt.Errorf("key %q: cloudflare_logpush_job (provider v5) has no attribute for it", truncateText(k, 64))
		}
		if v == nil {
			continue
		}
		cv, err := jsonToCty(v)
		if err != nil {
			return cty.NilVal, fmt.Errorf("%s: %w", k, err)
		}
		attrs[name] = cv
	}
	return cty.ObjectVal(attrs), nil
}

// jsonToCty converts a decoded JSON value of output_options: strings,
// booleans, numbers and lists of strings (field_names).
func jsonToCty(v any) (cty.Value, error) {
	switch v := v.(type) {
	case string:
		return cty.StringVal(v), nil
	case bool:
		return cty.BoolVal(v), nil
	case json.Number:
		return cty.ParseNumberVal(v.String())
	case []any:
		if len(v) == 0 {
			return cty.ListValEmpty(cty.String), nil
		}
		var l []cty.Value
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return cty.NilVal, fmt.Errorf("a list of %T, want strings", e)
			}
			l = append(l, cty.StringVal(s))
		}
		return cty.ListVal(l), nil
	}
	return cty.NilVal, fmt.Errorf("a JSON %T, which the provider's schema does not take here", v)
}
