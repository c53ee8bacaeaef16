package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/budget"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/input"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/redact"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

const migrateUsage = `usage: logpush-onboard migrate [flags] (--zone ID... | --account ID [--zones PATTERN]) (--match REGEXP --to TEMPLATE | --azure-sas FILE | --s3-keys FILE)
       logpush-onboard migrate [flags] FILE

Moves existing Logpush jobs to a new destination_conf. Each job's new conf is
challenged and validated as in onboarding (one challenge at a time per
shared path, the API budget, the credential pause), then the job is read
and PUT with the new conf, its token and every other setting as read
(output_options whole). A job changes only after its new conf validated;
a failure leaves it as it was. A job already on its target is unchanged.

Selection: the jobs of each --zone, or of --account's active zones (GET
/zones; --zones keeps those whose name matches a pattern) and its
account-level jobs (without --zones), of --dataset if given, whose
destination_conf (with its secrets redacted) matches --match, a regular
expression. --to is the new conf, with {zone_name} (with --account),
{zone_id}, {account_id}, {dataset} and {path} (the current path, without
bucket) filled in; without a '?', the current conf's query
(region, keys, SAS) is kept. --azure-sas replaces the SAS of the selected
azure jobs (one container) with the SAS in FILE (- reads stdin); --s3-keys
replaces access-key-id and secret-access-key of the selected s3 jobs that
carry keys with those in FILE (access-key-id=...&secret-access-key=...;
no challenge: a PUT only). Neither is ever shown.

FILE is CSV with header zone_id,account_id,job_id,destination_conf (the new
conf; optional dataset and credential), or JSONL with those keys.

Credentials: CLOUDFLARE_API_TOKEN (or CLOUDFLARE_EMAIL and
CLOUDFLARE_API_KEY), or the named credentials of --credentials (the file of
run and worker): FILE's rows name theirs in a credential column, and a
selection takes --credential. Every call, the selection's listings (zones,
jobs) included, goes through the credential's API budget and retries.

Storage: the workers read the challenge files as run's and worker's do,
set up by the environment only: S3 with the AWS SDK's default chain
(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity,
instance role) and AWS_ENDPOINT_URL_S3 for an S3-compatible server; GCS
with Application Default Credentials and STORAGE_EMULATOR_HOST for an
emulator; Azure with the conf's SAS when it grants read, else
AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_ACCOUNT with
AZURE_STORAGE_KEY, or AZURE_DEFAULT_CREDENTIAL=true, and
AZURE_STORAGE_BLOB_ENDPOINT to read every azure:// destination at one blob
service (Azurite: http://127.0.0.1:10000/devstoreaccount1).

--dry-run prints each job before and after (redacted) and the API calls
it will spend. The journal (--journal) keeps what was planned and each
outcome: run the same command again after Ctrl-C, a crash or kill -9 and
it goes on, and a job moved by the killed run is not moved again. On the
same --redis, the run again takes the killed run's tasks over rather than
challenging their jobs twice (a task the kill interrupted comes back once
its lease expires: 30 s after the kill, when the worker's sweep takes it), and
before it exits waits (up to 2 minutes) until no task of the batch, which
would hold its conf, is left in Redis.

Exit status: 0 when every job is migrated, copied or unchanged; 1 when
any failed (or the run was interrupted); 2 when nothing started (usage,
selection or credential errors).
`

// migration is one selected job and where it goes.
type migration struct {
	scope, scopeID string
	job            cloudflare.Job
	to             string // the new conf, raw: a secret
	conf           tasks.Conf
	line           int    // FILE's line; 0 for a selection
	cred           string // the credential of its calls ("" the default)
	// held is how many jobs the zone or account has, as listed.
	held int
	// done is the outcome known before any call: unchanged, or failed
	// (a copy over the job limit).
	done *events.Event
}

func (m *migration) key() string { return migKey(m.scope, m.scopeID, m.job.ID) }

// hash is m's key in a batch (tasks.Dest.Hash of its row).
func (m *migration) hash(cp bool) string {
	return tasks.Dest{Scope: m.scope, ScopeID: m.scopeID, DestinationConf: m.to, Update: &tasks.JobUpdate{ID: m.job.ID, Copy: cp}}.Hash()
}

func migKey(scope, scopeID string, job int) string {
	return scope + " " + scopeID + " " + strconv.Itoa(job)
}

// migrateFlags are migrate's own flags.
type migrateFlags struct {
	zones                   []string
	zoneNames               []string // --zones patterns
	account, dataset        string
	match, to               string
	azureSAS, s3Keys        string
	copy, dryRun            bool
	journalPath, reportPath string
	format                  string
	every                   time.Duration
	maxJobsPerZone          int
	listedCalls             int
	selectionKey            string
	credential              string
}

func runMigrate(ctx context.Context, env Env, args []string) error {
	var f workerFlags
	var lf viewLog
	var mf migrateFlags
	fs := newFlags("migrate", env)
	lf.register(fs, env)
	f.registerTuning(fs, env)
	setDefault(fs, "metrics-addr", "")
	setDefault(fs, "shutdown-timeout", "10s")
	fs.StringVar(&f.redisURL, "redis", "", "run on this shared Redis instead of an embedded one (no env twin)")
	fs.Func("zone", "a zone whose jobs to select (repeat, or comma-separated ids)", func(s string) error {
		for _, z := range strings.Split(s, ",") {
			if z = strings.ToLower(strings.TrimSpace(z)); z != "" {
				if !cloudflare.IsIdentifier(z) {
					return fmt.Errorf("zone id must be 32 hex characters")
				}
				mf.zones = append(mf.zones, z)
			}
		}
		return nil
	})
	fs.StringVar(&mf.account, "account", "", "an account: the jobs of its active zones (GET /zones), and its account-level jobs unless --zones")
	fs.Func("zones", "with --account, only zones whose name matches one of these patterns, comma-separated (*.example.com, shop-*)", func(s string) error {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				if _, err := path.Match(p, ""); err != nil {
					return fmt.Errorf("pattern %q: %w", p, err)
				}
				mf.zoneNames = append(mf.zoneNames, p)
			}
		}
		return nil
	})
	fs.StringVar(&mf.dataset, "dataset", "", "select only the jobs of this dataset")
	fs.StringVar(&mf.match, "match", "", "select the jobs whose destination_conf, secrets redacted, matches this regular expression")
	fs.StringVar(&mf.to, "to", "", "the new destination_conf: {zone_id}, {account_id}, {dataset}, {path} filled in; without '?' the current query is kept")
	fs.StringVar(&mf.azureSAS, "azure-sas", "", "replace the SAS of the selected azure jobs with the one in this file (- : stdin); never shown")
	fs.StringVar(&mf.s3Keys, "s3-keys", "", "replace the access keys of the selected s3 jobs that carry keys with those in this file (access-key-id=...&secret-access-key=...; - : stdin)")
	fs.BoolVar(&mf.copy, "copy", false, "create a second job on the new destination instead of moving the job (within --max-jobs-per-zone)")
	fs.BoolVar(&mf.dryRun, "dry-run", false, "print each job before and after (redacted) and the API calls it will spend; change nothing")
	fs.StringVar(&mf.journalPath, "journal", "", "the journal, JSON lines, read on start to go on (default: beside FILE, or migrate-<selection>.journal.jsonl)")
	fs.StringVar(&mf.reportPath, "report", "", "write one row per job here at the end, CSV (default: beside the journal, .results.csv)")
	fs.StringVar(&mf.format, "format", "auto", "FILE's format: auto, csv or jsonl")
	fs.DurationVar(&mf.every, "progress-interval", progressIntervalDefault, "when standard output is not a terminal, print a progress line this often")
	fs.IntVar(&mf.maxJobsPerZone, "max-jobs-per-zone", cloudflareMaxJobs, "with --copy, the jobs a zone or account may hold (Cloudflare's default limit: 4)")
	var cf credentialsFlag
	cf.register(fs, env)
	fs.StringVar(&mf.credential, "credential", "", "with --zone or --account, the credential of --credentials whose calls list and migrate the jobs (default: CLOUDFLARE_API_TOKEN); FILE's rows name theirs in a credential column")
	setUsage(fs, migrateUsage)
	file, err := parseOptionalFile(fs, args)
	if err != nil {
		return err
	}
	if err := mf.check(file); err != nil {
		return &exitError{code: 2, err: err}
	}
	if err := f.check(); err != nil {
		return &exitError{code: 2, err: err}
	}
	f.budget.parsed(fs, env)
	fmtv, err := input.ParseFormat(mf.format)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("-format: %w", err)}
	}
	log, closeLog, set, err := lf.withCredentials(env, cf)
	if err != nil {
		return err
	}
	defer closeLog()
	// With a credentials file the environment's is optional: the rows and
	// --credential name theirs.
	creds, err := f.useCredentials(env, set)
	if err != nil {
		return err
	}
	if mf.credential != "" {
		if _, err := lookupCredential(mf.credential, set); err != nil {
			return &exitError{code: 2, err: err}
		}
	}
	// The Redis first: the selection's calls take from the budget the
	// worker's calls take from.
	var rdb redis.UniversalClient
	var closeRedis func()
	if f.redisURL != "" {
		rdb, closeRedis, err = connectRedis(ctx, f.redisURL)
	} else {
		rdb, closeRedis, err = embeddedRedis()
	}
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer closeRedis()
	l := &lister{rdb: rdb, pe: planEnv{apiURL: f.apiURL, apiRate: f.apiRate, budget: f.budget, log: log}, set: set,
		planners: map[string]*planner{}, jobs: map[string][]cloudflare.Job{}}
	stdinUsed := file == "-"
	var secret *rotation
	if mf.azureSAS != "" || mf.s3Keys != "" {
		if secret, err = readRotation(env, mf, stdinUsed); err != nil {
			return &exitError{code: 2, err: err}
		}
	}

	// The selection: one listing per zone or account.
	var ms []*migration
	if file != "" {
		ms, err = migrationsFromFile(ctx, env, l, file, fmtv, set, &mf)
	} else {
		ms, err = selectMigrations(ctx, l, &mf, secret)
	}
	mf.listedCalls = l.calls()
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if len(ms) == 0 {
		return &exitError{code: 2, err: errors.New("no job selected: check --zone/--account, --dataset and --match")}
	}
	if mf.copy {
		limitCopies(ms, mf.maxJobsPerZone)
	}
	journalFile, reportFile := mf.paths(file)
	if mf.dryRun {
		printMigrationPlan(env.Stdout, ms, &mf)
		return nil
	}
	j, err := openMigJournal(journalFile)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer j.close()
	// What an earlier run planned and may have done: a job found on its
	// planned target moved in that run (killed before it journaled the
	// outcome); it is journaled as migrated, not moved again.
	var todo []*migration
	var now []events.Event
	var nowHash []string // the batch's key of each job of now that was planned, else ""
	for _, m := range ms {
		if _, ok := j.done[m.key()]; ok {
			continue
		}
		if p, ok := j.planned[m.key()]; ok && !mf.copy && tasks.ConfDigest(m.job.DestinationConf) == p.To {
			now = append(now, m.event(events.Migrated, nil))
			nowHash = append(nowHash, m.hash(mf.copy))
			continue
		}
		if m.done != nil {
			now = append(now, *m.done)
			nowHash = append(nowHash, "")
			continue
		}
		todo = append(todo, m)
	}
	if err := j.appendEvents(now); err != nil {
		return err
	}
	left := make(map[string]bool, len(todo))
	for _, m := range todo {
		left[m.key()] = true
	}
	skip := func(d tasks.Dest) bool { return d.Update == nil || !left[migKey(d.Scope, d.ScopeID, d.Update.ID)] }
	// The producer client now (it settles its budget only when it
	// enqueues): its ledger takes the events of the jobs finished already.
	p, err := producer.NewClient(rdb, &producer.ClientConfig{Source: "migrate", Format: tasks.FormatCSV, Migrate: true, Copy: mf.copy, Logger: log,
		Budget: f.budget.producerBudget(f.apiRate, creds, set, log), Credentials: inputCredentials(set), Skip: skip,
		Task: tasks.Options{MaxRetry: f.maxRetry, Retention: f.retention}})
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer p.Close()
	store := p.Ledger()
	finished := len(ms) - len(todo)
	if len(todo) == 0 {
		if err := emitEvents(ctx, store, "", now); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "migrate: every selected job is finished (journal %s)\n", journalFile)
		return finishMigrate(env, ms, j, reportFile, journalFile, false)
	}
	if finished > 0 {
		fmt.Fprintf(env.Stdout, "migrate: %d of %d jobs finished already (journal %s), %d to go\n", finished, len(ms), journalFile, len(todo))
	}
	// Until the first job is planned nothing started: exit 2.
	storage, err := storageFromEnv(env)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	w, err := startWorker(ctx, rdb, f, creds, storage, log)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer w.stop()
	if err := j.plan(todo); err != nil {
		return err
	}
	// The rows are every job planned, by this run or a killed one, as
	// planned: the batch id is then the killed run's, and on a shared
	// Redis its tasks, which this run's worker takes over, are not
	// enqueued twice (the producer counts them known); the producer's Skip
	// leaves out the jobs finished already.
	rows := migrationRows(ms, j.planned)
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(rows)), nil }
	start := time.Now()
	res, err := p.Enqueue(ctx, open)
	if err != nil {
		w.stop()
		if ctx.Err() != nil {
			drainMigJournal(store, res.BatchID, j)
			return finishMigrate(env, ms, j, reportFile, journalFile, true)
		}
		return f.budget.explain(err)
	}
	fmt.Fprintf(env.Stdout, "migrate: batch %s: %d jobs, %d enqueued, %d already in the batch; journal %s\n", res.BatchID, len(todo), res.Enqueued, res.Known, journalFile)
	// A job the batch holds (a killed run moved it) gets its event from
	// the batch's task: one event per job.
	if now, err = notInBatch(ctx, store, res.BatchID, now, nowHash); err != nil {
		return err
	}
	if err := emitEvents(ctx, store, res.BatchID, now); err != nil {
		return err
	}
	v := newView(env.Stdout)
	every := mf.every
	if v.terminal {
		every = 250 * time.Millisecond
	}
	rate, _ := budget.ParseRate(f.apiRate)
	_, err = watch(ctx, store, res.BatchID, watchConfig{view: v, every: every, rate: rate, from: "0", onEvents: j.appendEvents, start: start,
		retries: func() retries { return apiRetries(w.registry) }})
	if err == nil && ctx.Err() == nil {
		waitBatchTasks(ctx, env, rdb, store, res.BatchID, batchTasksWait)
	}
	interrupted := ctx.Err() != nil
	w.stop()
	if interrupted {
		drainMigJournal(store, res.BatchID, j)
	} else if err != nil {
		return err
	}
	return finishMigrate(env, ms, j, reportFile, journalFile, interrupted)
}

// cloudflareMaxJobs is Cloudflare's default limit of jobs per zone or
// account ("exceeded max jobs allowed").
const cloudflareMaxJobs = 4

// check refuses flag combinations that cannot work, naming the flag.
func (mf *migrateFlags) check(file string) error {
	rotate := mf.azureSAS != "" || mf.s3Keys != ""
	switch {
	case file != "" && (len(mf.zones) > 0 || mf.account != "" || mf.match != "" || mf.to != "" || rotate):
		return errors.New("FILE names the jobs and their new confs: --zone, --account, --match, --to, --azure-sas and --s3-keys select instead of it")
	case file != "" && mf.credential != "":
		return errors.New("-credential: FILE's rows name their credential in a credential column")
	case file == "" && len(mf.zones) == 0 && mf.account == "":
		return errors.New("--zone or --account missing (or give a FILE of jobs)")
	case mf.account != "" && !cloudflare.IsIdentifier(strings.ToLower(mf.account)):
		return errors.New("-account: must be 32 hex characters")
	case file == "" && !rotate && mf.to == "":
		return errors.New("--to missing: the new destination_conf (or --azure-sas, --s3-keys)")
	case rotate && mf.to != "":
		return errors.New("--to and a secret rotation: choose one")
	case mf.azureSAS != "" && mf.s3Keys != "":
		return errors.New("--azure-sas and --s3-keys: one rotation at a time")
	case mf.azureSAS == "-" && file == "-" || mf.s3Keys == "-" && file == "-":
		return errors.New("standard input can hold FILE or the secret, not both")
	case mf.every <= 0:
		return fmt.Errorf("-progress-interval %s: must be positive", mf.every)
	case mf.maxJobsPerZone < 1:
		return fmt.Errorf("-max-jobs-per-zone %d: must be positive", mf.maxJobsPerZone)
	}
	var fe *cloudflare.FieldError
	if errors.As(cloudflare.CheckDataset(mf.dataset), &fe) {
		return errors.New("-dataset: " + fe.Msg)
	}
	mf.account = strings.ToLower(mf.account)
	if mf.match != "" {
		if _, err := regexp.Compile(mf.match); err != nil {
			return fmt.Errorf("-match: %w", err)
		}
	}
	if strings.Contains(mf.to, "{zone_name}") && mf.account == "" {
		return errors.New("-to: {zone_name} needs --account (zone names come from the account's zone listing): use {zone_id} with --zone")
	}
	if len(mf.zoneNames) > 0 && mf.account == "" {
		return errors.New("-zones: needs --account (its zones are matched by name)")
	}
	h := sha256.New()
	for _, s := range append(append([]string{mf.account, mf.dataset, mf.match, mf.to, mf.azureSAS, mf.s3Keys, strconv.FormatBool(mf.copy), mf.credential}, mf.zones...), mf.zoneNames...) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	mf.selectionKey = hex.EncodeToString(h.Sum(nil))[:12]
	return nil
}

// paths returns the journal and report files.
func (mf *migrateFlags) paths(file string) (string, string) {
	if file == "" {
		file = "migrate-" + mf.selectionKey + ".csv"
	}
	report, journal := besideInput(file, "stdin", mf.reportPath, mf.journalPath)
	if mf.reportPath == "" && mf.journalPath != "" {
		report = strings.TrimSuffix(mf.journalPath, ".jsonl") + ".results.csv"
	}
	return journal, report
}

// parseOptionalFile parses args with flags before or after at most one
// FILE operand.
func parseOptionalFile(fs *flag.FlagSet, args []string) (string, error) {
	files, err := operands(fs, args)
	if err != nil {
		return "", err
	}
	if len(files) > 1 {
		fmt.Fprintf(fs.Output(), "%s: one FILE only, got %d\n", fs.Name(), len(files))
		return "", errUsage
	}
	if len(files) == 1 {
		return files[0], nil
	}
	return "", nil
}

// lister lists each scope's jobs once per credential, every call through
// the credential's planner: its API budget (in the Redis the worker's
// calls share) and retries.
type lister struct {
	rdb      redis.UniversalClient
	pe       planEnv
	set      *credentials.Set
	planners map[string]*planner // by credential name
	jobs     map[string][]cloudflare.Job
}

// planner is the planner of the credential called cred, made once.
func (l *lister) planner(ctx context.Context, cred string) (*planner, error) {
	if p, ok := l.planners[cred]; ok {
		return p, nil
	}
	p, err := plannerOn(ctx, l.rdb, l.pe, cred, l.set)
	if err != nil {
		return nil, err
	}
	l.planners[cred] = p
	return p, nil
}

// calls is the API calls the listings spent, retries included.
func (l *lister) calls() int {
	n := 0
	for _, p := range l.planners {
		n += p.calls
	}
	return n
}

func (l *lister) list(ctx context.Context, cred, scope, id string) ([]cloudflare.Job, error) {
	k := cred + "/" + scope + "/" + id
	if js, ok := l.jobs[k]; ok {
		return js, nil
	}
	p, err := l.planner(ctx, cred)
	if err != nil {
		return nil, err
	}
	var js []cloudflare.Job
	err = p.do(ctx, func() error {
		var err error
		js, err = p.api.ListJobs(ctx, cloudflare.Target{Scope: scope, ID: id})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list the jobs of %s %s: %w", scope, id, err)
	}
	l.jobs[k] = js
	return js, nil
}

// selectMigrations lists the jobs of the zones and account, and keeps
// those of the dataset whose conf matches, with their new conf.
func selectMigrations(ctx context.Context, l *lister, mf *migrateFlags, secret *rotation) ([]*migration, error) {
	var re *regexp.Regexp
	if mf.match != "" {
		re = regexp.MustCompile(mf.match)
	}
	type scope struct{ scope, id, name, account string }
	var scopes []scope
	for _, z := range mf.zones {
		scopes = append(scopes, scope{scope: tasks.ScopeZone, id: z})
	}
	if mf.account != "" {
		zones, err := activeZones(ctx, l, mf.account, mf.credential)
		if err != nil {
			return nil, err
		}
		for _, z := range zones {
			if nameMatches(mf.zoneNames, z.Name) {
				scopes = append(scopes, scope{scope: tasks.ScopeZone, id: strings.ToLower(z.ID), name: z.Name, account: z.AccountID})
			}
		}
		if len(mf.zoneNames) == 0 {
			scopes = append(scopes, scope{scope: tasks.ScopeAccount, id: mf.account, account: mf.account})
		}
	}
	var ms []*migration
	var errs []error
	for _, s := range scopes {
		jobs, err := l.list(ctx, mf.credential, s.scope, s.id)
		if err != nil {
			return nil, err
		}
		for _, job := range jobs {
			if mf.dataset != "" && job.Dataset != mf.dataset {
				continue
			}
			if re != nil && !re.MatchString(redact.String(job.DestinationConf)) {
				continue
			}
			old, err := tasks.ParseConf(job.DestinationConf)
			if err != nil {
				continue // a conf this tool cannot read is not one it moves
			}
			var to string
			switch {
			case secret != nil:
				var ok bool
				if to, ok = secret.apply(old); !ok {
					continue
				}
			default:
				to = expand(mf.to, s.scope, s.id, job, old)
				to = strings.ReplaceAll(to, "{zone_name}", s.name)
				if s.account != "" {
					to = strings.ReplaceAll(to, "{account_id}", s.account) // a zone's account, from the listing
				}
			}
			m, err := newMigration(s.scope, s.id, job, to, 0)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %s job %d: %w", s.scope, s.id, job.ID, err))
				continue
			}
			m.held, m.cred = len(jobs), mf.credential
			ms = append(ms, m)
		}
	}
	if secret != nil && secret.azure {
		containers := map[string]bool{}
		for _, m := range ms {
			c, _ := tasks.ParseConf(m.job.DestinationConf)
			containers[c.Account+"/"+c.Bucket] = true
		}
		if len(containers) > 1 {
			return nil, fmt.Errorf("--azure-sas: the selected azure jobs push to %d containers, and a SAS is for one: narrow --match", len(containers))
		}
	}
	return ms, errors.Join(errs...)
}

// activeZones lists the active zones of account, every page, through the
// planner of cred. Cloudflare does not say whether a credential without
// Zone Read is refused or shown no zones: no zone is an error that says so.
func activeZones(ctx context.Context, l *lister, account, cred string) ([]cloudflare.Zone, error) {
	p, err := l.planner(ctx, cred)
	if err != nil {
		return nil, err
	}
	zones, _, err := p.accountZones(ctx, account, "active", cred, map[string]bool{})
	if err != nil {
		return nil, err
	}
	if len(zones) == 0 {
		return nil, fmt.Errorf("account %s lists no active zone: check the id, and that credential %s has Zone Read", account, credLabel(cred))
	}
	return zones, nil
}

// nameMatches reports whether name matches one of pats (path.Match), or
// pats is empty.
func nameMatches(pats []string, name string) bool {
	if len(pats) == 0 {
		return true
	}
	for _, p := range pats {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// newMigration checks the new conf of job.
func newMigration(scope, id string, job cloudflare.Job, to string, line int) (*migration, error) {
	c, err := tasks.ParseConf(to)
	if err != nil {
		return nil, fmt.Errorf("new conf: %w", err)
	}
	m := &migration{scope: scope, scopeID: id, job: job, to: to, conf: c, line: line}
	if job.DestinationConf == to {
		ev := m.event(events.Unchanged, nil)
		m.done = &ev
	}
	return m, nil
}

// expand fills the placeholders of tmpl for job. Without a '?' in tmpl,
// the current conf's query is kept.
func expand(tmpl, scope, id string, job cloudflare.Job, old tasks.Conf) string {
	var zone, account string
	if scope == tasks.ScopeZone {
		zone = id
	} else {
		account = id
	}
	out := strings.NewReplacer("{zone_id}", zone, "{account_id}", account, "{dataset}", job.Dataset, "{path}", old.Prefix).Replace(tmpl)
	if !strings.Contains(tmpl, "?") {
		if _, q, ok := strings.Cut(old.Raw, "?"); ok {
			out += "?" + q
		}
	}
	return out
}

// migrationsFromFile reads FILE's rows and finds each job in its zone's or
// account's listing.
func migrationsFromFile(ctx context.Context, env Env, l *lister, file string, format input.Format, set *credentials.Set, mf *migrateFlags) ([]*migration, error) {
	open, cleanup, err := opener(env, file)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	rc, err := open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	r := input.NewReader(rc, input.Options{Format: format, Extra: tasks.MigrateColumns, Credentials: inputCredentials(set)})
	var ms []*migration
	var errs []error
	seen := map[string]int{}
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		u, err := tasks.ParseJobUpdate(row.Extra)
		if err != nil {
			errs = append(errs, &input.LineError{Line: row.Line, Field: "job_id", Err: err})
			continue
		}
		k := migKey(row.Scope, row.ScopeID, u.ID)
		if first, dup := seen[k]; dup {
			errs = append(errs, fmt.Errorf("line %d: job %d is on line %d already", row.Line, u.ID, first))
			continue
		}
		seen[k] = row.Line
		jobs, err := l.list(ctx, row.Credential, row.Scope, row.ScopeID)
		if err != nil {
			return nil, err
		}
		var job *cloudflare.Job
		for i := range jobs {
			if jobs[i].ID == u.ID {
				job = &jobs[i]
			}
		}
		switch {
		case job == nil:
			errs = append(errs, fmt.Errorf("line %d: job_id: %s %s has no job %d", row.Line, row.Scope, row.ScopeID, u.ID))
			continue
		case u.Dataset != "" && job.Dataset != u.Dataset:
			errs = append(errs, fmt.Errorf("line %d: dataset: job %d pushes %s", row.Line, u.ID, job.Dataset))
			continue
		case mf.dataset != "" && job.Dataset != mf.dataset:
			continue
		}
		m, err := newMigration(row.Scope, row.ScopeID, *job, row.Conf.Raw, row.Line)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", row.Line, err))
			continue
		}
		m.held, m.cred = len(jobs), row.Credential
		ms = append(ms, m)
	}
	return ms, errors.Join(errs...)
}

// limitCopies fails the copies that would take a zone or account past max
// jobs, before any call: Cloudflare would refuse them (403 code 1004).
func limitCopies(ms []*migration, max int) {
	held := map[string]int{}
	for _, m := range ms {
		held[m.scope+"/"+m.scopeID] = m.held
	}
	for _, m := range ms {
		if m.done != nil {
			continue
		}
		k := m.scope + "/" + m.scopeID
		if held[k] >= max {
			ev := m.event(events.Failed, &events.Error{Message: fmt.Sprintf("copy not made: the %s would hold more than %d jobs (--max-jobs-per-zone)", m.scope, max)})
			m.done = &ev
			continue
		}
		held[k]++
	}
}

// event is m's outcome event, as the worker would emit it.
func (m *migration) event(state events.State, e *events.Error) events.Event {
	return events.Event{Event: state, Scope: m.scope, ScopeID: m.scopeID, Destination: m.conf.Redacted(), DestinationType: m.conf.Type,
		JobID: m.job.ID, Error: e, Time: time.Now().UTC(), Line: m.line}
}

// printMigrationPlan prints each job before and after, redacted, and the
// API calls the migration will spend.
func printMigrationPlan(w io.Writer, ms []*migration, mf *migrateFlags) {
	calls, unchanged := 0, 0
	for _, m := range ms {
		what := "needs no challenge: GET and PUT"
		n := 2
		switch {
		case m.done != nil && m.done.Event == events.Unchanged:
			what, n = "unchanged: already on its target", 0
			unchanged++
		case m.done != nil:
			what, n = string(m.done.Event)+": "+m.done.Error.Message, 0
		case mf.copy && m.conf.NeedsChallenge():
			what, n = "copy: challenge, validate, GET, list, POST", 5
		case mf.copy:
			what, n = "copy: GET, list, POST", 3
		case m.conf.NeedsChallenge():
			what, n = "challenge, validate, GET, PUT", 4
		}
		calls += n
		fmt.Fprintf(w, "%s %s job %d (%s)\n  before: %s\n  after:  %s\n  %s\n", m.scope, m.scopeID, m.job.ID, m.job.Dataset,
			redact.String(m.job.DestinationConf), m.conf.Redacted(), what)
	}
	fmt.Fprintf(w, "\n%d jobs selected, %d unchanged; API calls: %d spent listing jobs, about %d to migrate (more if a token is stale or a call is retried)\n",
		len(ms), unchanged, mf.listedCalls, calls)
}

// migrationRows is the producer's input: CSV, one row per job of ms that
// is planned, in the order of ms, with the conf it was planned from.
func migrationRows(ms []*migration, planned map[string]migLine) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"zone_id", "account_id", "destination_conf", "job_id", "dataset", "from", input.FieldCredential})
	for _, m := range ms {
		p, ok := planned[m.key()]
		if !ok {
			continue
		}
		zone, account := m.scopeID, ""
		if m.scope == tasks.ScopeAccount {
			zone, account = "", m.scopeID
		}
		_ = w.Write([]string{zone, account, m.to, strconv.Itoa(m.job.ID), m.job.Dataset, p.From, m.cred})
	}
	w.Flush()
	return b.Bytes()
}

// rotation is a secret rotation: the new SAS or S3 keys. Its values are
// secrets: never shown.
type rotation struct {
	azure bool
	// raw is the new query as given: an azure SAS, or the s3 keys.
	raw  string
	keys url.Values
}

// apply returns old's conf with the new secret, and whether old is one the
// rotation is for: an azure conf for a SAS, an s3 conf that carries keys
// for keys. The rest of the conf stays byte for byte.
func (r *rotation) apply(old tasks.Conf) (string, bool) {
	base, query, _ := strings.Cut(old.Raw, "?")
	if r.azure {
		if old.Type != tasks.TypeAzure {
			return "", false
		}
		return base + "?" + r.raw, true
	}
	if old.Type != tasks.TypeS3 || old.Query.Get("access-key-id") == "" {
		return "", false
	}
	params := strings.Split(query, "&")
	for i, p := range params {
		name, _, _ := strings.Cut(p, "=")
		if v := r.keys.Get(name); v != "" {
			params[i] = name + "=" + url.QueryEscape(v)
		}
	}
	return base + "?" + strings.Join(params, "&"), true
}

// readRotation reads --azure-sas or --s3-keys.
func readRotation(env Env, mf migrateFlags, stdinTaken bool) (*rotation, error) {
	name, flagName := mf.azureSAS, "-azure-sas"
	if name == "" {
		name, flagName = mf.s3Keys, "-s3-keys"
	}
	var raw []byte
	var err error
	if name == "-" {
		if stdinTaken {
			return nil, fmt.Errorf("%s -: standard input holds FILE", flagName)
		}
		raw, err = io.ReadAll(io.LimitReader(env.Stdin, 8192))
	} else {
		raw, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	s := strings.TrimPrefix(strings.TrimSpace(string(raw)), "?")
	q, err := url.ParseQuery(s)
	if err != nil || strings.ContainsAny(s, " \t\r\n#") {
		return nil, fmt.Errorf("%s: not a query string (want name=value&...)", flagName)
	}
	if mf.azureSAS != "" {
		if q.Get("sig") == "" {
			return nil, errors.New("-azure-sas: no sig= in it: want the SAS query of the container, such as sv=...&sp=w&sig=...")
		}
		return &rotation{azure: true, raw: s}, nil
	}
	if q.Get("access-key-id") == "" || q.Get("secret-access-key") == "" || len(q) != 2 {
		return nil, errors.New("-s3-keys: want exactly access-key-id=...&secret-access-key=...")
	}
	return &rotation{keys: q, raw: s}, nil
}

// migJournal is migrate's record, JSON lines appended and fsync'd: a
// "planned" line per job before its tasks are enqueued (the digests of
// its conf before and after, no secret), and its outcome event when it
// comes. Read back on start, it skips the finished jobs, and a planned job
// found on its target moved in a run that was killed before it journaled
// the outcome.
type migJournal struct {
	f       *os.File
	path    string
	done    map[string]events.Event // by migKey
	planned map[string]migLine
}

// migLine is one line of the journal: an outcome event, or a plan
// (Event "planned", From and To set).
type migLine struct {
	events.Event
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

const plannedLine = "planned"

func openMigJournal(path string) (*migJournal, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("-journal: %w", err)
	}
	j := &migJournal{f: f, path: path, done: map[string]events.Event{}, planned: map[string]migLine{}}
	r := bufio.NewReader(f)
	var good int64
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			break // a line cut short by a kill is dropped below
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("read journal %s: %w", path, err)
		}
		good += int64(len(line))
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var l migLine
		if err := json.Unmarshal(line, &l); err != nil || l.JobID < 1 || (l.Event.Event != plannedLine && !l.Event.Event.Terminal()) {
			f.Close()
			return nil, fmt.Errorf("journal %s: line %d is not a migrate journal line; give another --journal or move the file away", path, n)
		}
		k := migKey(l.Scope, l.ScopeID, l.JobID)
		if l.Event.Event == plannedLine {
			j.planned[k] = l
		} else {
			j.done[k] = l.Event
		}
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	return j, nil
}

// plan journals the jobs about to be enqueued.
func (j *migJournal) plan(ms []*migration) error {
	lines := make([]migLine, 0, len(ms))
	for _, m := range ms {
		l := migLine{Event: events.Event{Event: plannedLine, Scope: m.scope, ScopeID: m.scopeID, JobID: m.job.ID, Time: time.Now().UTC()},
			From: tasks.ConfDigest(m.job.DestinationConf), To: tasks.ConfDigest(m.to)}
		j.planned[m.key()] = l
		lines = append(lines, l)
	}
	return j.write(lines)
}

// appendEvents journals the outcomes of jobs the journal does not have.
func (j *migJournal) appendEvents(evs []events.Event) error {
	var lines []migLine
	for _, e := range evs {
		k := migKey(e.Scope, e.ScopeID, e.JobID)
		if _, ok := j.done[k]; ok || e.JobID < 1 || !e.Event.Terminal() {
			continue
		}
		j.done[k] = e
		lines = append(lines, migLine{Event: e})
	}
	return j.write(lines)
}

func (j *migJournal) write(lines []migLine) error {
	if len(lines) == 0 {
		return nil
	}
	var buf bytes.Buffer
	for _, l := range lines {
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if _, err := j.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write journal %s: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync journal %s: %w", j.path, err)
	}
	return nil
}

func (j *migJournal) close() error { return j.f.Close() }

// emitEvents appends the outcomes known before any call (unchanged jobs,
// copies over the job limit, moves of a killed run) to the event stream,
// as the worker's outcomes are: the events command and the stream's
// readers see every job. batch is the batch of this run's other jobs, ""
// when there is none.
func emitEvents(ctx context.Context, store *ledger.Store, batch string, evs []events.Event) error {
	for _, e := range evs {
		e.BatchID = batch
		if err := store.Emit(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// notInBatch returns the events of evs whose job batch does not hold:
// hashes are their jobs' keys in a batch, "" for a job never planned. One
// round trip for all.
func notInBatch(ctx context.Context, store *ledger.Store, batch string, evs []events.Event, hashes []string) ([]events.Event, error) {
	var ks []ledger.Key
	var at []int // at[j] is the event of ks[j]
	for i, h := range hashes {
		if h != "" {
			ks = append(ks, ledger.Key{Batch: batch, Hash: h})
			at = append(at, i)
		}
	}
	known, err := store.Known(ctx, ks)
	if err != nil {
		return nil, err
	}
	held := make([]bool, len(evs))
	for j, i := range at {
		held[i] = known[j]
	}
	var out []events.Event
	for i, e := range evs {
		if !held[i] {
			out = append(out, e)
		}
	}
	return out, nil
}

// drainMigJournal journals the outcomes still on the stream after the
// worker stopped.
func drainMigJournal(store *ledger.Store, batch string, j *migJournal) {
	drainBatch(store, batch, func(events.Event) bool { return true }, j.appendEvents)
}

// finishMigrate writes the report, one row per selected job, prints the
// counts and returns the outcome: exit 1 when a job failed or the run was
// interrupted.
func finishMigrate(env Env, ms []*migration, j *migJournal, reportFile, journalFile string, interrupted bool) error {
	f, err := os.OpenFile(reportFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("-report: %w", err)
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"line", "scope", "scope_id", "job_id", "dataset", "before", "after", "state", "new_job_id", "http_status", "codes", "error"})
	counts := map[events.State]int{}
	sort.SliceStable(ms, func(a, b int) bool { return ms[a].key() < ms[b].key() })
	for _, m := range ms {
		e, ok := j.done[m.key()]
		state := events.State("not_finished")
		var status, codes, msg, newJob string
		if ok {
			state = e.Event
			if e.NewJobID > 0 {
				newJob = strconv.Itoa(e.NewJobID)
			}
			if e.Error != nil {
				msg = e.Error.Message
				if e.Error.HTTPStatus > 0 {
					status = strconv.Itoa(e.Error.HTTPStatus)
				}
				cs := make([]string, len(e.Error.Codes))
				for i, c := range e.Error.Codes {
					cs[i] = strconv.Itoa(c)
				}
				codes = strings.Join(cs, " ")
			}
		}
		counts[state]++
		line := ""
		if m.line > 0 {
			line = strconv.Itoa(m.line)
		}
		_ = w.Write([]string{line, m.scope, m.scopeID, strconv.Itoa(m.job.ID), m.job.Dataset, redact.String(m.job.DestinationConf),
			m.conf.Redacted(), string(state), newJob, status, codes, msg})
	}
	w.Flush()
	if err := errors.Join(w.Error(), f.Close()); err != nil {
		return fmt.Errorf("write report %s: %w", reportFile, err)
	}
	var parts []string
	for _, s := range []events.State{events.Migrated, events.Copied, events.Unchanged, events.Failed, "not_finished"} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s, counts[s]))
		}
	}
	fmt.Fprintf(env.Stdout, "\nmigrate: %d jobs: %s\nreport: %s\njournal: %s\n", len(ms), strings.Join(parts, ", "), reportFile, journalFile)
	if interrupted || counts["not_finished"] > 0 {
		return &exitError{code: 1, err: fmt.Errorf("interrupted with %d of %d jobs finished; run the same command again to go on", len(ms)-counts["not_finished"], len(ms))}
	}
	if n := counts[events.Failed]; n > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d jobs failed and were left as they were: see %s", n, reportFile)}
	}
	return nil
}
