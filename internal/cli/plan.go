package cli

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/internal/budget"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/input"
	"github.com/logpush-onboard/logpush-onboard/internal/redact"
	"github.com/logpush-onboard/logpush-onboard/internal/words"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

const planUsage = `usage: logpush-onboard plan --account ID --dataset DATASET[,DATASET] --destination TEMPLATE [flags]

Writes the batch that onboards every zone of the accounts: one CSV row per
(zone, dataset), and one per account for the account-scoped datasets, that
run --create-job and enqueue --create-job read unchanged. Zones come from
Cloudflare's GET /zones, page by page, through the API budget and retries of
the worker. Rows whose job exists already are left out, and so are the rows
of a zone that holds its 4 jobs; the summary on standard error counts them,
the API calls spent and what run will spend. Planning again after the batch
finished yields no rows.

TEMPLATE placeholders: {zone_name} {zone_id} {account_id} {dataset};
{DATE} is left for Cloudflare. An account template (--account-destination)
takes {account_id} and {dataset}.

Exit status: 0 when the plan is written (with or without rows); 1 when the
API failed; 2 on bad input (flags, a template, an account without zones, a
credential that cannot list zones).
`

// Placeholders of the destination templates.
var (
	zonePlaceholders    = []string{"zone_name", "zone_id", "account_id", "dataset"}
	accountPlaceholders = []string{"account_id", "dataset"}
	placeholderRE       = regexp.MustCompile(`\{([^{}]*)\}`)
)

// planColumns is the header of a plan; zone_name is for people.
var planColumns = []string{input.FieldZoneID, input.FieldAccountID, input.FieldDestinationConf, input.FieldCredential,
	"dataset", "job_name", "output_options", input.FieldZoneName}

// Reasons a row or zone is left out of a plan.
const (
	leftExists   = "exists"
	leftJobLimit = "at the job limit"
	leftPattern  = "zone name not matching --zones"
)

// planFlags is the selection of a plan: what plan and run --account take.
type planFlags struct {
	accounts        stringList
	datasets        string
	destination     string
	accountDest     string
	zones           string
	status          string
	credential      string
	fields          string
	timestampFormat string
	skipExisting    bool
	listConcurrency int
}

// stringList is a repeatable flag, also taking comma-separated values.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func (p *planFlags) register(fs *flag.FlagSet) {
	fs.Var(&p.accounts, "account", "account id (32 hex) whose zones to onboard; repeat, or separate with commas")
	fs.StringVar(&p.datasets, "dataset", "", "datasets, comma-separated (http_requests,firewall_events); account:NAME pushes a dataset both scopes have (firewall_events) from the account")
	fs.StringVar(&p.destination, "destination", "", "destination_conf template of zone rows: {zone_name} {zone_id} {account_id} {dataset}, {DATE} left for Cloudflare")
	fs.StringVar(&p.accountDest, "account-destination", "", "destination_conf template of account rows (account-scoped datasets): {account_id} {dataset}")
	fs.StringVar(&p.zones, "zones", "", "only zones whose name matches one of these patterns, comma-separated (*.example.com, shop-*)")
	fs.StringVar(&p.status, "status", "active", "only zones of this status: active, pending, initializing, moved (empty: any)")
	fs.StringVar(&p.credential, "credential", "", "the credential of --credentials that lists the zones; the rows carry its name (default: CLOUDFLARE_API_TOKEN)")
	fs.StringVar(&p.fields, "fields", "", "output_options.field_names of the jobs: default or all (every field the dataset lists, as the dashboard's \"all fields\"), or NAME,NAME (checked against the dataset); empty: the worker's default")
	fs.StringVar(&p.timestampFormat, "timestamp-format", "rfc3339", "output_options.timestamp_format with --fields: rfc3339 (the dashboard's), unixnano (the API's) or unix")
	fs.BoolVar(&p.skipExisting, "skip-existing-check", false, "do not list each zone's jobs: every row is planned (run then finds the existing jobs itself), one API call per zone saved")
	listConcurrencyFlag(fs, &p.listConcurrency)
}

// given reports whether a selection was given (run takes a FILE or one).
func (p *planFlags) given() bool {
	return len(p.accounts) > 0 || p.datasets != "" || p.destination != "" || p.accountDest != ""
}

// planDataset is a dataset of a plan and the scope that pushes it.
type planDataset struct {
	name  string
	scope string // cloudflare.ScopeZone or ScopeAccount
}

// planSpec is a checked selection.
type planSpec struct {
	accounts    []string
	datasets    []planDataset
	zoneTmpl    string
	accountTmpl string
	patterns    []string
	status      string
	credential  string
	fields      string   // "", "default", "all" or "names"
	names       []string // with fields "names"
	tsFormat    string
	skip        bool
	concurrency int
}

// check turns the flags into a spec; every error is bad input.
func (p *planFlags) check() (planSpec, error) {
	s := planSpec{status: p.status, credential: p.credential, skip: p.skipExisting, concurrency: p.listConcurrency,
		zoneTmpl: p.destination, accountTmpl: p.accountDest}
	if len(p.accounts) == 0 {
		return s, errors.New("-account: at least one account id is required")
	}
	for _, a := range p.accounts {
		a = strings.ToLower(a)
		if !cloudflare.IsIdentifier(a) {
			return s, fmt.Errorf("-account %q: an account id is 32 hex characters", truncateText(a, 40))
		}
		if !slices.Contains(s.accounts, a) {
			s.accounts = append(s.accounts, a)
		}
	}
	for _, d := range strings.Split(p.datasets, ",") {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		forceAccount := false
		if rest, ok := strings.CutPrefix(d, "account:"); ok {
			d, forceAccount = rest, true
		}
		scopes := cloudflare.DatasetScopes(d)
		ds := planDataset{name: d}
		switch {
		case len(scopes) == 0:
			return s, fmt.Errorf("-dataset %q: not a Logpush dataset (zone: %s; account: %s)", truncateText(d, 64),
				strings.Join(cloudflare.ZoneDatasets, ", "), strings.Join(cloudflare.AccountDatasets, ", "))
		case forceAccount && !slices.Contains(scopes, cloudflare.ScopeAccount):
			return s, fmt.Errorf("-dataset account:%s: %s is pushed by zones only", d, d)
		case forceAccount || !slices.Contains(scopes, cloudflare.ScopeZone):
			ds.scope = cloudflare.ScopeAccount
		default:
			ds.scope = cloudflare.ScopeZone
		}
		if slices.Contains(s.datasets, ds) {
			continue
		}
		s.datasets = append(s.datasets, ds)
	}
	if len(s.datasets) == 0 {
		return s, errors.New("-dataset: at least one dataset is required (http_requests, firewall_events, ...)")
	}
	var zoneDS, accountDS []string
	for _, d := range s.datasets {
		if d.scope == cloudflare.ScopeZone {
			zoneDS = append(zoneDS, d.name)
		} else {
			accountDS = append(accountDS, d.name)
		}
	}
	if len(zoneDS) > 0 {
		if s.zoneTmpl == "" {
			return s, fmt.Errorf("-destination: the template of zone rows is required for %s", strings.Join(zoneDS, ", "))
		}
		if err := checkTemplate(s.zoneTmpl, zonePlaceholders); err != nil {
			return s, fmt.Errorf("-destination: %w", err)
		}
	}
	if len(accountDS) > 0 {
		if s.accountTmpl == "" {
			return s, fmt.Errorf("-account-destination: the template of account rows is required for %s, an account-scoped dataset", strings.Join(accountDS, ", "))
		}
		if err := checkTemplate(s.accountTmpl, accountPlaceholders); err != nil {
			return s, fmt.Errorf("-account-destination: %w", err)
		}
	}
	if len(zoneDS) == 0 && s.zoneTmpl != "" {
		return s, errors.New("-destination: no zone-scoped dataset to use it for")
	}
	if len(accountDS) == 0 && s.accountTmpl != "" {
		return s, errors.New("-account-destination: no account-scoped dataset to use it for (account:firewall_events pushes firewall_events from the account)")
	}
	for _, pat := range strings.Split(p.zones, ",") {
		if pat = strings.ToLower(strings.TrimSpace(pat)); pat == "" {
			continue
		}
		if _, err := path.Match(pat, ""); err != nil {
			return s, fmt.Errorf("-zones %q: %w", pat, err)
		}
		s.patterns = append(s.patterns, pat)
	}
	switch s.status {
	case "", "active", "pending", "initializing", "moved":
	default:
		return s, fmt.Errorf("-status %q: want active, pending, initializing or moved", truncateText(s.status, 32))
	}
	if s.credential != "" && !credentials.ValidName(s.credential) {
		return s, fmt.Errorf("-credential %q: not a credential name", truncateText(s.credential, 64))
	}
	switch f := strings.TrimSpace(p.fields); f {
	case "":
	case "default", "all":
		s.fields = f
	default:
		s.fields = "names"
		for _, n := range strings.Split(f, ",") {
			if n = strings.TrimSpace(n); n != "" && !slices.Contains(s.names, n) {
				s.names = append(s.names, n)
			}
		}
	}
	switch p.timestampFormat {
	case "rfc3339", "unixnano", "unix":
		s.tsFormat = p.timestampFormat
	default:
		return s, fmt.Errorf("-timestamp-format %q: want rfc3339, unixnano or unix", truncateText(p.timestampFormat, 32))
	}
	if s.concurrency < 1 {
		return s, fmt.Errorf("-list-concurrency %d: must be at least 1", s.concurrency)
	}
	return s, nil
}

// checkTemplate refuses a placeholder other than known ones and {DATE}.
func checkTemplate(tmpl string, known []string) error {
	for _, m := range placeholderRE.FindAllStringSubmatch(tmpl, -1) {
		if m[1] == "DATE" || slices.Contains(known, m[1]) {
			continue
		}
		return fmt.Errorf("unknown placeholder {%s} (known: {%s}, and {DATE}, which Cloudflare fills)",
			truncateText(m[1], 32), strings.Join(known, "} {"))
	}
	return nil
}

// render fills a template's placeholders; {DATE} stays.
func render(tmpl string, vals map[string]string) string {
	return placeholderRE.ReplaceAllStringFunc(tmpl, func(m string) string {
		if v, ok := vals[m[1:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

// planRow is one row of a plan.
type planRow struct {
	scope     string
	id        string // zone or account id
	accountID string
	zoneName  string
	dataset   string
	conf      string
	options   string // output_options JSON, or ""
}

// planResult is a plan and what it cost.
type planResult struct {
	rows        []planRow
	zones       int            // listed, after --zones
	pages       int            // GET /zones calls
	listings    int            // GET .../logpush/jobs calls
	fieldCalls  int            // GET .../fields calls
	calls       int            // every API call made, retries included
	leftOut     map[string]int // rows (and zones, for leftPattern) by reason
	credential  string
	concurrency int
}

// planAPI is the Cloudflare API a plan uses (and GetJob, export-terraform
// --batch's read of each job).
type planAPI interface {
	ListZones(ctx context.Context, f cloudflare.ZoneFilter, page int) (cloudflare.ZonePage, error)
	ListJobs(ctx context.Context, t cloudflare.Target) ([]cloudflare.Job, error)
	Fields(ctx context.Context, t cloudflare.Target, dataset string) (map[string]string, error)
	GetJob(ctx context.Context, t cloudflare.Target, id int) (cloudflare.Job, error)
}

// waiter is the API budget (budget.Budget).
type waiter interface {
	Wait(ctx context.Context) (time.Duration, error)
	Pause(ctx context.Context, d time.Duration, reason string) error
}

// planner makes the plan's API calls through the budget, with retries.
type planner struct {
	api    planAPI
	budget waiter // nil: no budget
	retry  cloudflare.VerifyPolicy
	mu     sync.Mutex
	calls  int
}

// do runs one API call: a budget grant per attempt, transient answers
// retried with backoff (never sooner than Retry-After), and a 429 pauses
// the shared budget for every process on it.
func (p *planner) do(ctx context.Context, fn func() error) error {
	return cloudflare.Retry(ctx, p.retry, func() error {
		if p.budget != nil {
			if _, err := p.budget.Wait(ctx); err != nil {
				return fmt.Errorf("wait for api budget: %w", err)
			}
		}
		p.mu.Lock()
		p.calls++
		p.mu.Unlock()
		err := fn()
		var ae *cloudflare.APIError
		if p.budget != nil && errors.As(err, &ae) && ae.Kind == cloudflare.RateLimited && ae.RetryAfter > 0 {
			_ = p.budget.Pause(ctx, ae.RetryAfter, "429 from "+ae.Endpoint)
		}
		return err
	})
}

// planError is bad input found while planning (exit 2).
type planError struct{ err error }

func (e *planError) Error() string { return e.err.Error() }
func (e *planError) Unwrap() error { return e.err }

func badPlan(format string, a ...any) error { return &planError{fmt.Errorf(format, a...)} }

// makePlan lists the zones, renders the rows, leaves out what exists and
// resolves the fields.
func (p *planner) makePlan(ctx context.Context, s planSpec) (*planResult, error) {
	res := &planResult{leftOut: map[string]int{}, credential: s.credential}
	var zones []cloudflare.Zone
	seen := map[string]bool{} // a zone added while paging shifts the pages: one may come twice
	for _, acct := range s.accounts {
		listed, pages, err := p.accountZones(ctx, acct, s.status, s.credential, seen)
		res.pages += pages
		if err != nil {
			return nil, err
		}
		if len(listed) == 0 {
			status := ""
			if s.status != "" {
				status = " with status " + s.status
			}
			return nil, badPlan("account %s: GET /zones lists no zones%s: the account id is wrong, or credential %s lacks the Zone Read permission on it (listing zones needs Zone Read), or it has no zone%s",
				acct, status, credLabel(s.credential), status)
		}
		for _, z := range listed {
			if len(s.patterns) > 0 && !matchAny(s.patterns, strings.ToLower(z.Name)) {
				res.leftOut[leftPattern]++
				continue
			}
			zones = append(zones, z)
		}
	}
	// One zone listed under two accounts cannot be; one account given twice
	// was merged by check.
	slices.SortFunc(zones, func(a, b cloudflare.Zone) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.ID, b.ID))
	})
	res.zones = len(zones)

	// Render every row first: a template that makes no valid conf is bad
	// input, found before a job listing is spent.
	var rows []planRow
	for _, z := range zones {
		for _, d := range s.datasets {
			if d.scope != cloudflare.ScopeZone {
				continue
			}
			conf := render(s.zoneTmpl, map[string]string{"zone_name": z.Name, "zone_id": z.ID, "account_id": z.AccountID, "dataset": d.name})
			if _, err := tasks.ParseConf(conf); err != nil {
				return nil, badPlan("-destination for zone %s (%s), dataset %s: %s is no valid destination_conf: %v", z.Name, z.ID, d.name, redact.String(conf), err)
			}
			rows = append(rows, planRow{scope: cloudflare.ScopeZone, id: z.ID, accountID: z.AccountID, zoneName: z.Name, dataset: d.name, conf: conf})
		}
	}
	for _, acct := range s.accounts {
		for _, d := range s.datasets {
			if d.scope != cloudflare.ScopeAccount {
				continue
			}
			conf := render(s.accountTmpl, map[string]string{"account_id": acct, "dataset": d.name})
			if _, err := tasks.ParseConf(conf); err != nil {
				return nil, badPlan("-account-destination for account %s, dataset %s: %s is no valid destination_conf: %v", acct, d.name, redact.String(conf), err)
			}
			rows = append(rows, planRow{scope: cloudflare.ScopeAccount, id: acct, accountID: acct, dataset: d.name, conf: conf})
		}
	}

	// Fields before the job listings: a misspelt name is found at the cost
	// of one call per dataset, not after one per zone.
	if err := p.resolveFields(ctx, s, rows, res); err != nil {
		return nil, err
	}
	if !s.skip {
		var err error
		if rows, err = p.leaveOutExisting(ctx, s, rows, res); err != nil {
			return nil, err
		}
	}
	res.rows = rows
	p.mu.Lock()
	res.calls = p.calls
	p.mu.Unlock()
	return res, nil
}

// accountZones lists the zones of acct (status "" for any), page by
// page: ids lowercased, each zone once (seen holds the ids listed before,
// across accounts). It returns the zones not seen before and the pages
// spent; a zone of another account (Cloudflare filtered; trust no more) is
// left out.
func (p *planner) accountZones(ctx context.Context, acct, status, cred string, seen map[string]bool) ([]cloudflare.Zone, int, error) {
	var zones []cloudflare.Zone
	pages := 0
	for page, total := 1, 1; page <= total; page++ {
		var zp cloudflare.ZonePage
		err := p.do(ctx, func() error {
			var err error
			zp, err = p.api.ListZones(ctx, cloudflare.ZoneFilter{AccountID: acct, Status: status}, page)
			return err
		})
		pages++
		if err != nil {
			return nil, pages, zoneListError(acct, cred, err)
		}
		total = zp.TotalPages
		for _, z := range zp.Zones {
			if !strings.EqualFold(z.AccountID, acct) && z.AccountID != "" {
				continue
			}
			z.ID, z.AccountID = strings.ToLower(z.ID), acct
			if seen[z.ID] {
				continue
			}
			seen[z.ID] = true
			zones = append(zones, z)
		}
	}
	return zones, pages, nil
}

// matchAny reports whether name matches one of the patterns.
func matchAny(patterns []string, name string) bool {
	for _, pat := range patterns {
		if ok, _ := path.Match(pat, name); ok {
			return true
		}
	}
	return false
}

// zoneListError explains a failed GET /zones.
func zoneListError(acct, cred string, err error) error {
	var ae *cloudflare.APIError
	if errors.As(err, &ae) && (ae.Kind == cloudflare.Auth || ae.HTTPStatus == 401 || ae.HTTPStatus == 403) {
		return badPlan("account %s: credential %s cannot list zones (GET /zones: %v): it needs the Zone Read permission (Zone > Zone > Read) on the account's zones, besides Logs Write",
			acct, credLabel(cred), err)
	}
	return fmt.Errorf("account %s: list zones: %w", acct, err)
}

// leaveOutExisting lists the jobs of every zone and account with rows and
// leaves out the rows whose job exists, and those of a zone that would
// exceed its job limit.
func (p *planner) leaveOutExisting(ctx context.Context, s planSpec, rows []planRow, res *planResult) ([]planRow, error) {
	type scopeJobs struct {
		target cloudflare.Target
		jobs   []cloudflare.Job
	}
	var order []cloudflare.Target
	byTarget := map[cloudflare.Target]*scopeJobs{}
	for _, r := range rows {
		t := cloudflare.Target{Scope: r.scope, ID: r.id}
		if byTarget[t] == nil {
			byTarget[t] = &scopeJobs{target: t}
			order = append(order, t)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.concurrency)
	for _, t := range order {
		sj := byTarget[t]
		g.Go(func() error {
			err := p.do(gctx, func() error {
				var err error
				sj.jobs, err = p.api.ListJobs(gctx, sj.target)
				return err
			})
			if err != nil {
				var ae *cloudflare.APIError
				if errors.As(err, &ae) && ae.Kind == cloudflare.Auth {
					return badPlan("%s: credential %s cannot list its Logpush jobs: %v (it needs Logs Write; --skip-existing-check plans without looking)", t, credLabel(s.credential), err)
				}
				return fmt.Errorf("%s: list jobs: %w", t, err)
			}
			return nil
		})
	}
	err := g.Wait()
	res.listings = len(order)
	if err != nil {
		return nil, err
	}
	kept := rows[:0]
	held := map[cloudflare.Target]int{} // jobs a zone will hold
	for _, t := range order {
		held[t] = len(byTarget[t].jobs)
	}
	for _, r := range rows {
		t := cloudflare.Target{Scope: r.scope, ID: r.id}
		if slices.ContainsFunc(byTarget[t].jobs, func(j cloudflare.Job) bool {
			return j.Dataset == r.dataset && j.DestinationConf == r.conf
		}) {
			res.leftOut[leftExists]++
			continue
		}
		if r.scope == cloudflare.ScopeZone && held[t] >= cloudflare.MaxJobsPerZone {
			res.leftOut[leftJobLimit]++
			continue
		}
		held[t]++
		kept = append(kept, r)
	}
	return kept, nil
}

// resolveFields sets the output_options of the rows: once per (scope
// kind, dataset), from the fields the first row's zone or account lists.
func (p *planner) resolveFields(ctx context.Context, s planSpec, rows []planRow, res *planResult) error {
	if s.fields == "" {
		return nil
	}
	type kind struct{ scope, dataset string }
	resolved := map[kind]string{}
	for i, r := range rows {
		k := kind{r.scope, r.dataset}
		opts, ok := resolved[k]
		if !ok {
			var fs map[string]string
			t := cloudflare.Target{Scope: r.scope, ID: r.id}
			err := p.do(ctx, func() error {
				var err error
				fs, err = p.api.Fields(ctx, t, r.dataset)
				return err
			})
			res.fieldCalls++
			if err != nil {
				return fmt.Errorf("fields of %s at %s: %w", r.dataset, t, err)
			}
			names, err := pickFields(s, r.scope, r.dataset, fs)
			if err != nil {
				return err
			}
			b, err := json.Marshal(struct {
				FieldNames      []string `json:"field_names"`
				TimestampFormat string   `json:"timestamp_format"`
			}{names, s.tsFormat})
			if err != nil {
				return err
			}
			opts = string(b)
			resolved[k] = opts
		}
		rows[i].options = opts
	}
	return nil
}

// pickFields applies --fields to the fields a dataset lists. default and
// all are every field listed: Cloudflare's dashboard offers to push all
// fields, and the API has no "all" option but the list itself.
func pickFields(s planSpec, scope, dataset string, fs map[string]string) ([]string, error) {
	all := make([]string, 0, len(fs))
	for n := range fs {
		all = append(all, n)
	}
	sort.Strings(all)
	if s.fields != "names" {
		if len(all) == 0 {
			return nil, fmt.Errorf("fields of %s (%s): Cloudflare lists none", dataset, scope)
		}
		return all, nil
	}
	var bad []string
	for _, n := range s.names {
		if _, ok := fs[n]; ok {
			continue
		}
		msg := fmt.Sprintf("%q", truncateText(n, 64))
		if close := closeNames(n, all); len(close) > 0 {
			msg += " (did you mean " + strings.Join(close, ", ") + "?)"
		}
		bad = append(bad, msg)
	}
	if len(bad) > 0 {
		return nil, badPlan("-fields: %s has no field %s", dataset, strings.Join(bad, "; "))
	}
	return s.names, nil
}

// closeNames returns up to 3 names near n: equal but for case, or within
// an edit distance of a third of n's length (at least 2).
func closeNames(n string, names []string) []string {
	type cand struct {
		name string
		d    int
	}
	var cs []cand
	limit := max(2, len(n)/3)
	for _, m := range names {
		d := editDistance(strings.ToLower(n), strings.ToLower(m))
		if d <= limit {
			cs = append(cs, cand{m, d})
		}
	}
	sort.SliceStable(cs, func(a, b int) bool { return cs[a].d < cs[b].d })
	var out []string
	for i := 0; i < len(cs) && i < 3; i++ {
		out = append(out, cs[i].name)
	}
	return out
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// runCalls is what run --create-job spends on the rows: a challenge, a
// validation and a creation for a destination that needs the challenge, a
// creation for the others, and one job listing per zone or account.
func (r *planResult) runCalls() int {
	n := 0
	scopes := map[string]bool{}
	for _, row := range r.rows {
		c, err := tasks.ParseConf(row.conf)
		if err == nil && c.NeedsChallenge() {
			n += 3
		} else {
			n++
		}
		scopes[row.scope+"/"+row.id] = true
	}
	return n + len(scopes)
}

// writeCSV writes the plan's rows.
func (r *planResult) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(planColumns); err != nil {
		return err
	}
	for _, row := range r.rows {
		zone, account, name := "", "", ""
		if row.scope == cloudflare.ScopeZone {
			zone, name = row.id, row.zoneName
		} else {
			account = row.id
		}
		jobName := ""
		if row.scope == cloudflare.ScopeZone && (cloudflare.JobSpec{Name: row.zoneName}).Check() == nil {
			jobName = row.zoneName // Cloudflare's examples name a zone's job by its domain
		}
		if err := cw.Write([]string{zone, account, row.conf, r.credential, row.dataset, jobName, row.options, name}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// summary prints what the plan found and cost.
func (r *planResult) summary(w io.Writer, s planSpec) {
	status := "any status"
	if s.status != "" {
		status = "status " + s.status
	}
	fmt.Fprintf(w, "plan: %s listed (%s) over %s of GET /zones in %s\n", words.Plural(int64(r.zones), "zone"), status,
		words.Plural(int64(r.pages), "page"), words.Plural(int64(len(s.accounts)), "account"))
	var zoneRows, accountRows int
	for _, row := range r.rows {
		if row.scope == cloudflare.ScopeZone {
			zoneRows++
		} else {
			accountRows++
		}
	}
	fmt.Fprintf(w, "plan: %s planned (%d zone, %d account)\n", words.Plural(int64(len(r.rows)), "row"), zoneRows, accountRows)
	var reasons []string
	for _, k := range []string{leftExists, leftJobLimit, leftPattern} {
		if n := r.leftOut[k]; n > 0 {
			unit := "row"
			if k == leftPattern {
				unit = "zone"
			}
			reasons = append(reasons, fmt.Sprintf("%s %s", words.Plural(int64(n), unit), k))
		}
	}
	if len(reasons) == 0 {
		reasons = []string{"none"}
	}
	fmt.Fprintf(w, "plan: left out: %s\n", strings.Join(reasons, ", "))
	check := fmt.Sprintf("%d job listings", r.listings)
	if s.skip {
		check = "no job listing (--skip-existing-check)"
	}
	fmt.Fprintf(w, "plan: API calls spent: %d (%d zone pages, %s, %d field lists; retries included)\n", r.calls, r.pages, check, r.fieldCalls)
	fmt.Fprintf(w, "plan: run --create-job will spend about %d API calls on these rows\n", r.runCalls())
	if len(r.rows) == 0 {
		fmt.Fprintln(w, "plan: nothing to do: every selected job exists (or its zone is at the job limit)")
	}
}

// planEnv is what a plan needs besides its spec: the API client and the
// budget, built from the command's flags.
type planEnv struct {
	apiURL   string
	apiRate  string
	budget   budgetFlags
	redisURL string
	log      *slog.Logger
}

// apiFlags are the flags of a command whose calls run outside the workers
// (plan, jobs, export-terraform): the API, the rate of its calls, the
// budget they take from and the Redis that shares it with the workers.
type apiFlags struct {
	apiURL, apiRate, redisURL string
	budget                    budgetFlags
}

// register adds the flags to fs; calls names the command's calls in their
// help ("the plan's calls"), redisMore is said last in --redis's.
func (f *apiFlags) register(fs *flag.FlagSet, env Env, calls, redisMore string) {
	fs.StringVar(&f.apiURL, "cloudflare-api-url", envOr(env, "CLOUDFLARE_API_URL", worker.APIURLDefault), "Cloudflare API base URL; env CLOUDFLARE_API_URL")
	fs.StringVar(&f.apiRate, "api-rate", envOr(env, "API_RATE", worker.APIRateDefault),
		"the API budget "+calls+" take from, shared in Redis with the workers of the same --budget-key, as LIMIT/WINDOW (0 = off); env API_RATE")
	f.budget.register(fs, env)
	fs.StringVar(&f.redisURL, "redis", "", "take "+calls+" from the budget the workers share in this Redis (default: a budget of this process alone)"+redisMore)
}

// planEnv is the planEnv of the flags once fs is parsed, logging to log.
func (f *apiFlags) planEnv(fs *flag.FlagSet, env Env, log *slog.Logger) planEnv {
	f.budget.producer = true
	f.budget.parsed(fs, env)
	return planEnv{apiURL: f.apiURL, apiRate: f.apiRate, budget: f.budget, redisURL: f.redisURL, log: log}
}

// plan runs a plan of s: the credential of s, the budget in Redis (the
// shared one of redisURL, else an embedded one), the retries of the
// worker.
func plan(ctx context.Context, env Env, pe planEnv, s planSpec, set *credentials.Set) (*planResult, error) {
	p, closePlanner, err := newPlanner(ctx, pe, s.credential, set)
	if err != nil {
		return nil, err
	}
	defer closePlanner()
	return p.makePlan(ctx, s)
}

// newPlanner is the planner of the credential called cred ("" the
// default) of set: its client, the budget in Redis (the shared one of
// pe.redisURL, else an embedded one) and the retries of the worker
// (plannerOn). close releases the Redis; credential errors are bad input
// (planError).
func newPlanner(ctx context.Context, pe planEnv, cred string, set *credentials.Set) (*planner, func(), error) {
	if _, err := lookupCredential(cred, set); err != nil {
		return nil, nil, err
	}
	var rdb redis.UniversalClient
	var closeRedis func()
	var err error
	if pe.redisURL != "" {
		rdb, closeRedis, err = connectRedis(ctx, pe.redisURL)
	} else {
		rdb, closeRedis, err = embeddedRedis()
	}
	if err != nil {
		return nil, nil, err
	}
	p, err := plannerOn(ctx, rdb, pe, cred, set)
	if err != nil {
		closeRedis()
		return nil, nil, err
	}
	return p, closeRedis, nil
}

// lookupCredential is the credential called cred ("" the default) of set,
// checked; its errors are bad input (planError).
func lookupCredential(cred string, set *credentials.Set) (credentials.Named, error) {
	named, ok := set.Lookup(cred)
	if !ok {
		if cred != "" {
			return named, badPlan("-credential %s: not in the credentials file (--credentials)", cred)
		}
		return named, badPlan("cloudflare credentials: none (set CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY, or --credential NAME with --credentials)")
	}
	if err := named.Credentials.Validate(); err != nil {
		return named, badPlan("credential %s: %v", credLabel(cred), err)
	}
	return named, nil
}

// plannerOn is the planner of the credential called cred of set, its
// budget in rdb (the Redis of the command's other calls, so that they
// share it).
func plannerOn(ctx context.Context, rdb redis.UniversalClient, pe planEnv, cred string, set *credentials.Set) (*planner, error) {
	named, err := lookupCredential(cred, set)
	if err != nil {
		return nil, err
	}
	api, err := cloudflare.New(cloudflare.Config{BaseURL: pe.apiURL, Credentials: named.Credentials})
	if err != nil {
		return nil, badPlan("%v", err)
	}
	mode := pe.budget.mode()
	cfg, on, err := budget.Settle(ctx, rdb, budget.Claim{Rate: cmp.Or(named.APIRate, pe.apiRate), Key: cmp.Or(named.BudgetKey, pe.budget.key),
		Digest: named.Credentials.Digest(), Mode: mode}, pe.log)
	if err != nil {
		return nil, pe.budget.explain(err)
	}
	p := &planner{api: api, retry: cloudflare.VerifyPolicy{Attempts: 8, MaxWait: 6 * time.Minute}}
	if on {
		b, err := budget.New(rdb, cfg)
		if err != nil {
			return nil, err
		}
		p.budget = b
	}
	return p, nil
}

// writePlanFile writes the plan to file whole or not at all.
func writePlanFile(file string, r *planResult) error {
	return writeFileWhole(file, r.writeCSV)
}

// writeFileWhole writes file whole or not at all: write fills a temporary
// file beside it, renamed over file once complete.
func writeFileWhole(file string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

func runPlan(ctx context.Context, env Env, args []string) error {
	var pf planFlags
	var af apiFlags
	fs := newFlags("plan", env)
	pf.register(fs)
	af.register(fs, env, "the plan's calls", "")
	out := fs.String("o", "-", "write the plan here (- for standard output); written whole or not at all")
	var lf viewLog
	lf.register(fs, env)
	var cf credentialsFlag
	cf.register(fs, env)
	setUsage(fs, planUsage)
	if err := parseSelection(fs, args); err != nil {
		return err
	}
	spec, err := pf.check()
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	log, closeLog, set, err := lf.withCredentials(env, cf)
	if err != nil {
		return err
	}
	defer closeLog()
	res, err := plan(ctx, env, af.planEnv(fs, env, log), spec, set)
	if err != nil {
		return planExit(err)
	}
	if *out == "-" {
		if err := res.writeCSV(env.Stdout); err != nil {
			return err
		}
	} else if err := writePlanFile(*out, res); err != nil {
		return fmt.Errorf("-o: %w", err)
	}
	res.summary(env.Stderr, spec)
	return nil
}

// planExit maps a plan error to its exit status: 2 for bad input, 1 for
// the API.
func planExit(err error) error {
	var pe *planError
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		return err
	case errors.As(err, &pe):
		return &exitError{code: 2, err: err}
	}
	return err
}

// truncateText shortens s for an error message.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// parseFileOrSelection parses run's arguments: one FILE, or a selection
// (--account ...) and no FILE.
func parseFileOrSelection(fs *flag.FlagSet, args []string, pf *planFlags) (string, error) {
	files, err := operands(fs, args)
	if err != nil {
		return "", err
	}
	switch {
	case pf.given() && len(files) > 0:
		return "", &exitError{code: 2, err: fmt.Errorf("give FILE or a selection (--account, --dataset, --destination), not both: got %s", strings.Join(files, " "))}
	case pf.given():
		return "", nil
	case len(files) == 1:
		return files[0], nil
	case len(files) == 0:
		fmt.Fprintf(fs.Output(), "%s: FILE missing (a CSV or JSONL file of destinations, or - for standard input), or a selection: --account ID --dataset DATASET --destination TEMPLATE\n", fs.Name())
	default:
		fmt.Fprintf(fs.Output(), "%s: one FILE only, got %d: %s\n", fs.Name(), len(files), strings.Join(files, " "))
	}
	fs.Usage()
	return "", errUsage
}

// selectionKey names a selection: the same flags give the same plan file,
// journal and report, so that a re-run continues where the last stopped.
func (s planSpec) key() string {
	accounts := slices.Clone(s.accounts)
	sort.Strings(accounts)
	var ds []string
	for _, d := range s.datasets {
		ds = append(ds, d.scope+":"+d.name)
	}
	sort.Strings(ds)
	parts := []string{strings.Join(accounts, ","), strings.Join(ds, ","), s.zoneTmpl, s.accountTmpl, strings.Join(s.patterns, ","),
		s.status, s.credential, s.fields, strings.Join(s.names, ","), s.tsFormat}
	return tasks.DestHash("plan", "", strings.Join(parts, "\x00"), "")[:12]
}

// planForRun is run's plan of a selection: the plan file beside the journal
// (logpush-plan-KEY.csv, KEY a digest of the selection), reused when an
// earlier run wrote it; "" when there is nothing to do.
func planForRun(ctx context.Context, env Env, pf *planFlags, f workerFlags, set *credentials.Set, journal string, log *slog.Logger) (string, error) {
	spec, err := pf.check()
	if err != nil {
		return "", &exitError{code: 2, err: err}
	}
	dir := "."
	if journal != "" {
		dir = filepath.Dir(journal)
	}
	file := filepath.Join(dir, "logpush-plan-"+spec.key()+".csv")
	if _, err := os.Stat(file); err == nil {
		fmt.Fprintf(env.Stdout, "run: going on with the plan %s, written by an earlier run of this selection (delete it to plan afresh)\n", file)
		return file, nil
	}
	res, err := plan(ctx, env, planEnv{apiURL: f.apiURL, apiRate: f.apiRate, budget: f.budget, redisURL: f.redisURL, log: log}, spec, set)
	if err != nil {
		return "", planExit(err)
	}
	res.summary(env.Stdout, spec)
	if len(res.rows) == 0 {
		return "", nil
	}
	if err := writePlanFile(file, res); err != nil {
		return "", fmt.Errorf("write plan %s: %w", file, err)
	}
	fmt.Fprintf(env.Stdout, "run: plan written to %s\n", file)
	return file, nil
}
