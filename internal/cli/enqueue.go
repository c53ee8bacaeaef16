package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"

	"github.com/logpush-onboard/logpush-onboard/internal/input"
	"github.com/logpush-onboard/logpush-onboard/internal/words"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

func runEnqueue(ctx context.Context, env Env, args []string) error {
	var c common
	fs := newFlags("enqueue", env)
	c.register(fs, env)
	format := fs.String("format", "auto", "input format: auto, csv or jsonl")
	batchID := fs.String("batch-id", "", "batch id (default: derived from the file's destinations, so re-running a file is the same batch)")
	dryRun := fs.Bool("dry-run", false, "check the file and print what the batch would do; enqueue nothing")
	maxRetry := fs.Int("max-retry", tasks.DefaultMaxRetry, "retries of a transient error per task")
	retention := fs.Duration("task-retention", 0, "keep finished challenge tasks this long (asynq retention, for inspecting them; 0: delete at once)")
	createJob := fs.Bool("create-job", false, "after validation, create each destination's Logpush job from the job columns (see above)")
	skipPreflight := fs.Bool("skip-preflight", false, "do not check the Cloudflare credential and bucket access before enqueueing")
	apiRate := fs.String("api-rate", envOr(env, "API_RATE", worker.APIRateDefault),
		"the workers' shared API budget (LIMIT/WINDOW): challenges are scheduled at its pace, two calls per destination, so that earlier destinations finish while later ones wait (0: all due at once); unset, the rate stored with the budget in Redis; env API_RATE")
	bf := budgetFlags{producer: true}
	bf.register(fs, env)
	var pf preflightFlags
	pf.register(fs, env)
	var cf credentialsFlag
	cf.register(fs, env)
	setUsage(fs, "usage: logpush-onboard enqueue [flags] FILE|-\n\nChecks every line of FILE and enqueues its destinations as a batch for the workers on --redis.\n\n"+inputHelp)
	file, err := parseFile(fs, args)
	if err != nil {
		return err
	}
	if err := c.shared(); err != nil && !*dryRun {
		return err
	}
	if *retention < 0 {
		return notStarted(fmt.Errorf("-task-retention %s: must not be negative (0: keep none)", *retention))
	}
	bf.parsed(fs, env)
	creds := cloudflare.CredentialsFromEnv(env.Getenv)
	if _, err := bf.claim(*apiRate, creds); err != nil {
		return notStarted(err)
	}
	fmtv, err := input.ParseFormat(*format)
	if err != nil {
		return notStarted(fmt.Errorf("-format: %w", err))
	}
	log, err := c.logger(env)
	if err != nil {
		return err
	}
	open, cleanup, err := opener(env, file)
	if err != nil {
		return err
	}
	defer cleanup()

	if pf.creds, err = cf.load(env, nil); err != nil {
		return err
	}
	// The batch records the input's absolute path, which retry opens
	// again from whatever directory it runs in.
	source, err := sourceOf(file)
	if err != nil {
		return err
	}
	cfg := producer.ClientConfig{BatchID: *batchID, Source: source, Format: fmtv, Credentials: inputCredentials(pf.creds),
		Task: tasks.Options{MaxRetry: *maxRetry, Retention: *retention}, Logger: log, CreateJob: *createJob}
	// The cheap local check first, its errors shown at once: preflight's
	// network calls and credential chains come after, and its findings
	// follow the line errors rather than hide them.
	plan, err := producer.Check(ctx, open, cfg)
	if err != nil {
		return notStarted(err)
	}
	if *dryRun {
		dp, err := planDests(open, input.Options{Format: fmtv, Credentials: cfg.Credentials})
		if err != nil {
			return notStarted(err)
		}
		printPlan(env.Stdout, plan, dp)
		if plan.Rows == 0 && plan.ErrorCount == 0 {
			return notStarted(producer.ErrNoDestinations)
		}
	}
	if plan.ErrorCount > 0 {
		printLineErrors(env.Stderr, plan)
	}
	if *dryRun || plan.ErrorCount > 0 && *skipPreflight {
		if plan.ErrorCount > 0 {
			return &exitError{code: 2} // printLineErrors said why
		}
		return nil
	}
	if !*skipPreflight {
		storage, err := storageFromEnv(env)
		if err != nil {
			return err
		}
		perr := preflight(ctx, env, open, input.Options{Format: fmtv, Credentials: cfg.Credentials}, pf, storage)
		if plan.ErrorCount > 0 {
			return &exitError{code: 2} // printLineErrors and preflight said why
		}
		if perr != nil {
			return perr
		}
	}
	rdb, closeRedis, err := connectRedis(ctx, c.redisURL)
	if err != nil {
		return err
	}
	defer closeRedis()
	if w := persistenceWarning(ctx, rdb); w != "" {
		log.Warn(w)
	}
	cfg.Budget = bf.producerBudget(*apiRate, creds, pf.creds, log)
	p, err := producer.NewClient(rdb, &cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	res, err := p.EnqueuePlan(ctx, open, plan) // checked above: no third pass over the input
	if errors.Is(err, producer.ErrInvalid) {
		printLineErrors(env.Stderr, res.Plan)
		return &exitError{code: 2} // printLineErrors said why
	}
	if errors.Is(err, producer.ErrNoDestinations) {
		return notStarted(err)
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted with %d of %d rows in the batch %s; running the same command again continues", res.Enqueued+res.NotRequired+res.Known, res.Rows, res.BatchID)
		}
		return bf.explain(err)
	}
	printDuplicates(env.Stderr, res)
	fmt.Fprintf(env.Stdout, "batch %s: %d rows, %d enqueued, %d not_required, %d already in the batch\n",
		res.BatchID, res.Rows, res.Enqueued, res.NotRequired, res.Known)
	return nil
}

// inputHelp describes FILE and its optional columns in -h, from the
// column lists of input and tasks.
var inputHelp = "FILE is CSV with header " + strings.Join([]string{input.FieldZoneID, input.FieldAccountID, input.FieldDestinationConf}, ",") +
	" (one of the two ids per row), or JSONL with the same keys; - reads stdin.\n" +
	"Optional columns (keys):\n" +
	"  " + input.FieldCredential + ": the name of the --credentials entry whose Cloudflare credential the row's calls use\n" +
	"  " + input.FieldZoneName + ": the zone's domain, for people reading the file (not used)\n" +
	"  " + strings.Join(tasks.ReadAsColumns, ", ") + ": the identity that reads the row's bucket (multi-account batches)\n" +
	"  with --create-job: " + strings.Join(tasks.JobColumns, ", ") + " (dataset required): the Logpush job to create once validated\n"

// opener returns a function that opens the input for each pass. Standard
// input can be read once only, so it is spooled to a temporary file. A
// missing, unreadable or directory input is an input error (exit 2).
func opener(env Env, name string) (producer.Opener, func(), error) {
	open := env.Open
	if open == nil {
		open = func(name string) (io.ReadCloser, error) { return os.Open(name) }
	}
	if name == "-" {
		return spool(env.Stdin, "stdin")
	}
	f, err := open(name)
	if err != nil {
		return nil, nil, notStarted(err)
	}
	st, err := os.Stat(name)
	if err != nil {
		f.Close()
		return nil, nil, notStarted(err)
	}
	if st.IsDir() {
		f.Close()
		return nil, nil, notStarted(fmt.Errorf("%s is a directory: give the CSV or JSONL file of destinations", name))
	}
	if !st.Mode().IsRegular() {
		// A pipe (a named one, or <(...) of a shell) gives its rows once:
		// every pass reads the copy, as for stdin.
		defer f.Close()
		return spool(f, name)
	}
	f.Close()
	return func() (io.ReadCloser, error) { return open(name) }, func() {}, nil
}

// spool copies r, an input that can be read only once, to a temporary
// file that every pass over the input opens.
func spool(r io.Reader, what string) (producer.Opener, func(), error) {
	tmp, err := os.CreateTemp("", "logpush-onboard-stdin-*")
	if err != nil {
		return nil, nil, fmt.Errorf("spool %s: %w", what, err)
	}
	cleanup := func() { tmp.Close(); os.Remove(tmp.Name()) }
	if _, err := io.Copy(tmp, r); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("spool %s: %w", what, err)
	}
	return func() (io.ReadCloser, error) { return os.Open(tmp.Name()) }, cleanup, nil
}

// sourceOf is the batch's record of the input file: its absolute path, or
// "-" for standard input.
func sourceOf(file string) (string, error) {
	if file == "-" {
		return file, nil
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	return abs, nil
}

func printLineErrors(w io.Writer, plan producer.Plan) {
	for _, le := range plan.Errors {
		fmt.Fprintln(w, le)
	}
	if more := plan.ErrorCount - len(plan.Errors); more > 0 {
		fmt.Fprintf(w, "... and %d more invalid lines\n", more)
	}
	fmt.Fprintf(w, "%d of %d lines invalid; nothing was enqueued\n", plan.ErrorCount, plan.Rows+plan.ErrorCount)
}

// printDuplicates says in one line how many rows the batch had already:
// a re-run of a file repeats every row.
func printDuplicates(w io.Writer, res producer.Result) {
	if res.Known == 0 {
		return
	}
	// Rows repeated inside the file are worth an example; a re-run repeats
	// each row as itself.
	var eg []string
	repeats := 0
	for _, d := range res.Duplicates {
		if d.Of != d.Line {
			if repeats++; len(eg) < 3 {
				eg = append(eg, fmt.Sprintf("line %d repeats line %d", d.Line, d.Of))
			}
		}
	}
	msg := thousands(res.Known) + " already in the batch, not enqueued again"
	if len(eg) > 0 {
		msg += " (" + strings.Join(eg, ", ")
		if repeats > len(eg) {
			msg += ", ..."
		}
		msg += ")"
	}
	fmt.Fprintln(w, msg)
}

// thousands is "50,000 rows" ("1 row").
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if n == 1 {
		return s + " row"
	}
	return s + " rows"
}

// destPlan is what a dry run tells beyond producer.Plan, whose counts
// are of lines: the distinct destinations (a repeated row is one, as in
// the batch) and the shared path with the most of them, which onboard one
// at a time.
type destPlan struct {
	dests, needChallenge int
	byType               map[string]int
	// path is the shared path with the most destinations that need a
	// challenge ("" when none is shared), onPath their number.
	path   string
	onPath int
}

// planDests reads the checked input once more for a dry run: its bad
// lines were counted by producer.Check and are skipped here.
func planDests(open producer.Opener, in input.Options) (destPlan, error) {
	rc, err := open()
	if err != nil {
		return destPlan{}, err
	}
	defer rc.Close()
	in.Extra = append(append(in.Extra, tasks.ReadAsColumns...), tasks.JobColumns...)
	r := input.NewReader(rc, in)
	dp := destPlan{byType: map[string]int{}}
	seen := map[string]bool{}
	paths := map[string]int{}
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var le *input.LineError
		if errors.As(err, &le) {
			continue
		}
		if err != nil {
			return dp, err
		}
		k := tasks.Dest{Scope: row.Scope, ScopeID: row.ScopeID, DestinationConf: row.Conf.Raw}.Hash()
		if seen[k] {
			continue
		}
		seen[k] = true
		dp.dests++
		dp.byType[row.Conf.Type]++
		if !row.Conf.NeedsChallenge() {
			continue
		}
		dp.needChallenge++
		// Cloudflare writes every challenge of a path to one file in it.
		path := row.Conf.Type + "://" + row.Conf.Bucket + "/" + row.Conf.Prefix
		if row.Conf.Account != "" {
			path = row.Conf.Type + "://" + row.Conf.Account + "/" + row.Conf.Bucket + "/" + row.Conf.Prefix
		}
		if paths[path]++; paths[path] > dp.onPath || paths[path] == dp.onPath && path < dp.path {
			dp.path, dp.onPath = path, paths[path]
		}
	}
	if dp.onPath < 2 {
		dp.path, dp.onPath = "", 0
	}
	return dp, nil
}

func printPlan(w io.Writer, plan producer.Plan, dp destPlan) {
	rows := words.Plural(int64(plan.Rows), "valid row")
	if repeats := plan.Rows - dp.dests; repeats > 0 {
		verb := "repeat"
		if repeats == 1 {
			verb = "repeats"
		}
		rows += fmt.Sprintf(" (%s: %s %s an earlier one)", words.Plural(int64(dp.dests), "destination"), words.Plural(int64(repeats), "row"), verb)
	}
	fmt.Fprintf(w, "batch %s: %s, %d invalid, %d need a challenge\n", plan.BatchID, rows, plan.ErrorCount, dp.needChallenge)
	types := make([]string, 0, len(dp.byType))
	for t := range dp.byType {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		fmt.Fprintf(w, "  %-9s %d\n", t, dp.byType[t])
	}
	if dp.onPath > 0 {
		per := worker.PollFirstDefault
		fmt.Fprintf(w, "%d rows on %s run one at a time (one challenge file per path): about %s at %s per file; per-zone paths run in parallel\n",
			dp.onPath, dp.path, (time.Duration(dp.onPath) * per).String(), per)
	}
}

func runPreflight(ctx context.Context, env Env, args []string) error {
	fs := newFlags("preflight", env)
	format := fs.String("format", "auto", "input format: auto, csv or jsonl")
	var pf preflightFlags
	pf.register(fs, env)
	var cf credentialsFlag
	cf.register(fs, env)
	setUsage(fs, "usage: logpush-onboard preflight [flags] FILE|-\n\nChecks every line of FILE, each Cloudflare credential it uses and read access to each of its buckets; enqueues nothing.\n\n"+inputHelp)
	file, err := parseFile(fs, args)
	if err != nil {
		return err
	}
	fmtv, err := input.ParseFormat(*format)
	if err != nil {
		return notStarted(fmt.Errorf("-format: %w", err))
	}
	open, cleanup, err := opener(env, file)
	if err != nil {
		return err
	}
	defer cleanup()
	// The line check first, as enqueue does; the job columns are allowed
	// (a file for enqueue --create-job) but not required.
	if pf.creds, err = cf.load(env, nil); err != nil {
		return err
	}
	in := input.Options{Format: fmtv, Extra: tasks.JobColumns, Credentials: inputCredentials(pf.creds)}
	plan, err := producer.Check(ctx, open, producer.ClientConfig{Format: fmtv, Columns: tasks.JobColumns, Credentials: in.Credentials})
	if err != nil {
		return notStarted(err)
	}
	if plan.ErrorCount > 0 {
		printLineErrors(env.Stderr, plan)
	}
	storage, err := storageFromEnv(env)
	if err != nil {
		return err
	}
	perr := preflight(ctx, env, open, in, pf, storage)
	if plan.ErrorCount > 0 {
		return &exitError{code: 2} // printLineErrors and preflight said why
	}
	return perr
}
