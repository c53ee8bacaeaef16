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
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/redact"
	"github.com/logpush-onboard/logpush-onboard/internal/words"
	"github.com/logpush-onboard/logpush-onboard/metrics"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

const jobsUsage = `usage: logpush-onboard jobs --account ID [--account ID ...] [--zone ID ...] [--format table|csv|json] [flags]
       logpush-onboard jobs --account ID ... --watch [--listen ADDR] [--interval 1m]

Lists every Logpush job of the accounts and of their zones (GET /zones,
then GET .../logpush/jobs per zone and per account, through the API budget
and retries of the worker): dataset, destination (secrets redacted),
enabled, health, when it last pushed (last_complete) and last failed
(last_error, with Cloudflare's error_message). Failing jobs come first, then
disabled ones, then enabled jobs that have not pushed yet, then the jobs
that push. --zone narrows the zones to those named (the accounts' own jobs
are listed still).

Health: failing (last_error set), disabled (not enabled), no_data (enabled,
never pushed nor failed: a zone without traffic pushes nothing), flowing
(last_complete set).

--watch lists again every --interval and serves the counts as Prometheus
gauges on http://ADDR/metrics: logpush_onboard_logpush_jobs{health,dataset,
destination_type} (no job, zone or account label).

Exit status: 0 listed (or --watch stopped by a signal); 1 the API failed;
2 bad input (flags, an unknown zone, a credential refused the listing).
`

// listConcurrencyFlag registers --list-concurrency, the job listings in
// flight at once, of jobs, export-terraform and plan.
func listConcurrencyFlag(fs *flag.FlagSet, p *int) {
	fs.IntVar(p, "list-concurrency", listConcurrencyDefault, "job listings in flight at once (the API budget still paces them)")
}

// listConcurrencyDefault is --list-concurrency's default.
const listConcurrencyDefault = 8

// progressIntervalDefault is --progress-interval's default of run and
// migrate: when standard output is not a terminal, a progress line this
// often.
const progressIntervalDefault = 10 * time.Second

// jobsListenDefault is --listen's default: loopback, beside the worker's
// metrics (9464) and web UI (9465).
const jobsListenDefault = "127.0.0.1:9466"

// jobSelection is which jobs selectJobs lists: every job of the accounts
// and of their zones, or of the zones named only (the accounts' own jobs
// are listed either way).
type jobSelection struct {
	// accounts are account ids, 32 hex, lowercase, each once.
	accounts []string
	// zones, when given, narrows the zones to these ids (lowercase); each
	// must be a zone of one of the accounts.
	zones []string
	// credential names the credential (for messages; the planner holds
	// the client).
	credential string
	// concurrency is the job listings in flight at once (at least 1).
	concurrency int
}

// listedJob is a job selectJobs found, and where it lives.
type listedJob struct {
	// Target is the zone or account of the job.
	Target cloudflare.Target
	// AccountID is the account of the job, or of its zone.
	AccountID string
	// ZoneName is the zone's name; "" for an account's job.
	ZoneName string
	// Job is the job as GET .../logpush/jobs answered it: its
	// DestinationConf is raw (show redact.String of it).
	Job cloudflare.Job
}

// jobsFound is what selectJobs found and spent.
type jobsFound struct {
	jobs []listedJob
	// zones is the number of zones whose jobs were listed.
	zones int
	// pages and listings are the GET /zones and GET .../logpush/jobs
	// calls (retries not counted).
	pages, listings int
	// warnings are for the user (an account whose zones GET /zones does
	// not show).
	warnings []string
}

// selectJobs lists every Logpush job of the accounts of sel and of their
// zones (of any status): the zones from GET /zones?account.id=..., page by
// page, then GET .../logpush/jobs per zone and per account, sel.concurrency
// at once, every call through p's budget and retries. The jobs come ordered
// by account, the account's own jobs first, then by zone name, zone id and
// job id. A zone of sel.zones that no account lists, and a credential
// refused the listing, are bad input (planError); other API failures are
// errors.
func selectJobs(ctx context.Context, p *planner, sel jobSelection) (*jobsFound, error) {
	res := &jobsFound{}
	type scope struct {
		target    cloudflare.Target
		accountID string
		zoneName  string
		jobs      []cloudflare.Job
	}
	var scopes []*scope
	seen := map[string]bool{}
	for _, acct := range sel.accounts {
		scopes = append(scopes, &scope{target: cloudflare.Target{Scope: cloudflare.ScopeAccount, ID: acct}, accountID: acct})
		zones, pages, err := p.accountZones(ctx, acct, "", sel.credential, seen)
		res.pages += pages
		if err != nil {
			return nil, err
		}
		if len(zones) == 0 {
			res.warnings = append(res.warnings, fmt.Sprintf("account %s: GET /zones lists no zones: the account has none, or credential %s lacks Zone Read on them (its zones' jobs are then not listed)",
				acct, credLabel(sel.credential)))
		}
		slices.SortFunc(zones, func(a, b cloudflare.Zone) int {
			return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.ID, b.ID))
		})
		for _, z := range zones {
			if len(sel.zones) > 0 && !slices.Contains(sel.zones, z.ID) {
				continue
			}
			scopes = append(scopes, &scope{target: cloudflare.Target{Scope: cloudflare.ScopeZone, ID: z.ID}, accountID: acct, zoneName: z.Name})
			res.zones++
		}
	}
	for _, z := range sel.zones {
		if !seen[z] {
			return nil, badPlan("-zone %s: not a zone of account %s as GET /zones lists them (or credential %s lacks Zone Read on it)",
				z, strings.Join(sel.accounts, ", "), credLabel(sel.credential))
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, sel.concurrency))
	for _, sc := range scopes {
		g.Go(func() error {
			err := p.do(gctx, func() error {
				var err error
				sc.jobs, err = p.api.ListJobs(gctx, sc.target)
				return err
			})
			if err != nil {
				var ae *cloudflare.APIError
				if errors.As(err, &ae) && ae.Kind == cloudflare.Auth {
					return badPlan("%s: credential %s cannot list its Logpush jobs: %v (it needs Logs Read or Logs Write)", sc.target, credLabel(sel.credential), err)
				}
				return fmt.Errorf("%s: list jobs: %w", sc.target, err)
			}
			return nil
		})
	}
	err := g.Wait()
	res.listings = len(scopes)
	if err != nil {
		return nil, err
	}
	for _, sc := range scopes {
		jobs := slices.Clone(sc.jobs)
		slices.SortFunc(jobs, func(a, b cloudflare.Job) int { return cmp.Compare(a.ID, b.ID) })
		for _, j := range jobs {
			res.jobs = append(res.jobs, listedJob{Target: sc.target, AccountID: sc.accountID, ZoneName: sc.zoneName, Job: j})
		}
	}
	return res, nil
}

// jobHealth is the health of j (metrics.JobFailing...): failing when
// Cloudflare reports last_error (it clears it on the next success), else
// disabled, else flowing once it pushed, else no_data.
func jobHealth(j cloudflare.Job) string {
	switch {
	case !j.LastError.IsZero():
		return metrics.JobFailing
	case !j.Enabled:
		return metrics.JobDisabled
	case !j.LastComplete.IsZero():
		return metrics.JobFlowing
	}
	return metrics.JobNoData
}

// sortByHealth orders jobs worst health first (metrics.JobHealths), the
// order of selectJobs within one health.
func sortByHealth(jobs []listedJob) {
	slices.SortStableFunc(jobs, func(a, b listedJob) int {
		return cmp.Compare(slices.Index(metrics.JobHealths, jobHealth(a.Job)), slices.Index(metrics.JobHealths, jobHealth(b.Job)))
	})
}

// destinationType is the type of a conf (tasks.Type*), "other" for one
// tasks does not read: a bounded label.
func destinationType(conf string) string {
	c, err := tasks.ParseConf(conf)
	if err != nil {
		return "other"
	}
	return c.Type
}

// datasetLabel is dataset when Cloudflare lists it, else "other": a
// bounded label.
func datasetLabel(dataset string) string {
	if len(cloudflare.DatasetScopes(dataset)) == 0 {
		return "other"
	}
	return dataset
}

// healthCounts counts jobs by health, dataset and destination type.
func healthCounts(jobs []listedJob) map[metrics.JobKey]int {
	counts := map[metrics.JobKey]int{}
	for _, j := range jobs {
		counts[metrics.JobKey{Health: jobHealth(j.Job), Dataset: datasetLabel(j.Job.Dataset), DestinationType: destinationType(j.Job.DestinationConf)}]++
	}
	return counts
}

// jobColumns are the columns of csv and the keys of json.
var jobColumns = []string{"account_id", "zone_id", "zone_name", "job_id", "name", "dataset", "enabled", "health",
	"destination", "last_complete", "last_complete_age_seconds", "last_error", "error_message"}

// jobRecord is one job as jobs prints it: nothing raw.
type jobRecord struct {
	AccountID    string  `json:"account_id"`
	ZoneID       string  `json:"zone_id,omitempty"`
	ZoneName     string  `json:"zone_name,omitempty"`
	JobID        int     `json:"job_id"`
	Name         string  `json:"name"`
	Dataset      string  `json:"dataset"`
	Enabled      bool    `json:"enabled"`
	Health       string  `json:"health"`
	Destination  string  `json:"destination"`
	LastComplete *string `json:"last_complete"`
	LastAge      *int64  `json:"last_complete_age_seconds"`
	LastError    *string `json:"last_error"`
	ErrorMessage string  `json:"error_message,omitempty"`
}

func record(j listedJob, now time.Time) jobRecord {
	r := jobRecord{AccountID: j.AccountID, ZoneName: j.ZoneName, JobID: j.Job.ID, Name: j.Job.Name, Dataset: j.Job.Dataset,
		Enabled: j.Job.Enabled, Health: jobHealth(j.Job), Destination: redact.String(j.Job.DestinationConf),
		ErrorMessage: redact.String(j.Job.ErrorMessage)}
	if j.Target.Scope == cloudflare.ScopeZone {
		r.ZoneID = j.Target.ID
	}
	if t := j.Job.LastComplete; !t.IsZero() {
		s, age := t.UTC().Format(time.RFC3339), int64(max(0, now.Sub(t)/time.Second))
		r.LastComplete, r.LastAge = &s, &age
	}
	if t := j.Job.LastError; !t.IsZero() {
		s := t.UTC().Format(time.RFC3339)
		r.LastError = &s
	}
	return r
}

// ageText is how long ago t was, to the second; "never" for zero.
func ageText(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return (max(0, now.Sub(t)).Truncate(time.Second)).String() + " ago"
}

// writeJobs prints jobs in format (table, csv or json) as of now.
func writeJobs(w io.Writer, format string, jobs []listedJob, now time.Time) error {
	switch format {
	case "json":
		recs := make([]jobRecord, 0, len(jobs))
		for _, j := range jobs {
			recs = append(recs, record(j, now))
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(recs)
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.Write(jobColumns); err != nil {
			return err
		}
		for _, j := range jobs {
			r := record(j, now)
			age := ""
			if r.LastAge != nil {
				age = strconv.FormatInt(*r.LastAge, 10)
			}
			if err := cw.Write([]string{r.AccountID, r.ZoneID, r.ZoneName, strconv.Itoa(r.JobID), r.Name, r.Dataset,
				strconv.FormatBool(r.Enabled), r.Health, r.Destination, deref(r.LastComplete), age, deref(r.LastError), r.ErrorMessage}); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HEALTH\tJOB\tDATASET\tENABLED\tZONE/ACCOUNT\tLAST PUSH\tLAST ERROR\tDESTINATION\tERROR MESSAGE")
	for _, j := range jobs {
		where := "account " + j.AccountID
		if j.Target.Scope == cloudflare.ScopeZone {
			where = cmp.Or(j.ZoneName, j.Target.ID)
		}
		msg := strings.Join(strings.Fields(redact.String(j.Job.ErrorMessage)), " ")
		fmt.Fprintf(tw, "%s\t%d\t%s\t%t\t%s\t%s\t%s\t%s\t%s\n", jobHealth(j.Job), j.Job.ID, j.Job.Dataset, j.Job.Enabled, where,
			ageText(j.Job.LastComplete, now), ageText(j.Job.LastError, now), redact.String(j.Job.DestinationConf), cmp.Or(msg, "-"))
	}
	return tw.Flush()
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// jobsFlags are the flags of jobs.
type jobsFlags struct {
	accounts    stringList
	zones       stringList
	format      string
	credential  string
	concurrency int
	watch       bool
	listen      string
	interval    time.Duration
}

// check turns the flags into a selection; every error is bad input.
func (f *jobsFlags) check() (jobSelection, error) {
	sel, err := checkScopes(f.accounts, f.zones, f.credential, f.concurrency)
	if err != nil {
		return sel, err
	}
	switch f.format {
	case "table", "csv", "json":
	default:
		return sel, fmt.Errorf("-format %q: want table, csv or json", truncateText(f.format, 32))
	}
	if f.watch && f.interval < time.Second {
		return sel, fmt.Errorf("-interval %s: must be at least 1s", f.interval)
	}
	if f.watch && strings.TrimSpace(f.listen) == "" {
		return sel, errors.New("-listen: an address is required with --watch")
	}
	return sel, nil
}

func runJobs(ctx context.Context, env Env, args []string) error {
	var jf jobsFlags
	var af apiFlags
	var c common
	fs := newFlags("jobs", env)
	fs.Var(&jf.accounts, "account", "account id (32 hex) whose jobs and zones' jobs to list; repeat, or separate with commas")
	fs.Var(&jf.zones, "zone", "list only these zones (ids, 32 hex) of the accounts; repeat, or separate with commas")
	fs.StringVar(&jf.format, "format", "table", "output: table, csv or json")
	fs.StringVar(&jf.credential, "credential", "", "the credential of --credentials that lists the zones and jobs (default: CLOUDFLARE_API_TOKEN)")
	listConcurrencyFlag(fs, &jf.concurrency)
	fs.BoolVar(&jf.watch, "watch", false, "list again every --interval and serve the job counts as Prometheus gauges on --listen")
	fs.StringVar(&jf.listen, "listen", jobsListenDefault, "listen address of --watch's /metrics; keep it on loopback or behind a proxy")
	fs.DurationVar(&jf.interval, "interval", time.Minute, "time between listings with --watch (each spends one call per zone and account, and the zone pages)")
	af.register(fs, env, "the listing's calls", "")
	c.registerLog(fs, env)
	var cf credentialsFlag
	cf.register(fs, env)
	setUsage(fs, jobsUsage)
	if err := parseSelection(fs, args); err != nil {
		return err
	}
	sel, err := jf.check()
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if jf.watch && flagGiven(fs, "format") {
		return &exitError{code: 2, err: errors.New("-format: --watch prints no list, it serves gauges (drop one of them)")}
	}
	log, err := c.logger(env)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	set, err := cf.load(env, log)
	if err != nil {
		return err
	}
	p, closePlanner, err := newPlanner(ctx, af.planEnv(fs, env, log), sel.credential, set)
	if err != nil {
		return planExit(err)
	}
	defer closePlanner()
	found, err := selectJobs(ctx, p, sel)
	if err != nil {
		return planExit(err)
	}
	for _, w := range found.warnings {
		fmt.Fprintln(env.Stderr, "warning: "+w)
	}
	if !jf.watch {
		sortByHealth(found.jobs)
		if err := writeJobs(env.Stdout, jf.format, found.jobs, time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "jobs: %s in %s and %s (%d zone pages, %d job listings)\n", words.Plural(int64(len(found.jobs)), "job"),
			words.Plural(int64(found.zones), "zone"), words.Plural(int64(len(sel.accounts)), "account"), found.pages, found.listings)
		return nil
	}
	return watchJobs(ctx, env, jf, p, sel, found)
}

// watchJobs serves the gauges of found, then of a new listing every
// interval, until ctx ends. A failed listing keeps the last counts (its
// time says how old they are) and counts a failure.
func watchJobs(ctx context.Context, env Env, jf jobsFlags, p *planner, sel jobSelection, found *jobsFound) error {
	reg := prometheus.NewRegistry()
	h := metrics.NewJobHealth(reg)
	h.Set(healthCounts(found.jobs), time.Now())
	ln, err := net.Listen("tcp", jf.listen)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("-listen: %w", err)}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer srv.Close()
	fmt.Fprintf(env.Stderr, "jobs: serving the health of %s on http://%s/metrics, listing again every %s\n",
		words.Plural(int64(len(found.jobs)), "job"), ln.Addr(), jf.interval)
	tick := time.NewTicker(jf.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-served:
			return fmt.Errorf("-listen %s: %w", ln.Addr(), err)
		case <-tick.C:
		}
		relistJobs(ctx, env.Stderr, p, sel, h)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// relistJobs lists the jobs of sel again and sets h to their counts; a
// failed listing keeps the last counts, counts a failure and says why on
// w. A listing cut short by ctx changes nothing.
func relistJobs(ctx context.Context, w io.Writer, p *planner, sel jobSelection, h *metrics.JobHealth) {
	found, err := selectJobs(ctx, p, sel)
	switch {
	case ctx.Err() != nil:
	case err != nil:
		h.ListFailures.Inc()
		fmt.Fprintf(w, "jobs: listing failed, the gauges keep the last counts: %v\n", err)
	default:
		h.Set(healthCounts(found.jobs), time.Now())
	}
}

// flagGiven reports whether the flag called name was on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}
