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

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"

	"github.com/logpush-onboard/logpush-onboard/internal/input"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

func runEnqueue(ctx context.Context, env Env, args []string) error {
	var c common
	fs := newFlags("enqueue", env)
	c.register(fs, env)
	format := fs.String("format", "auto", "input format: auto, csv or jsonl")
	batchID := fs.String("batch-id", "", "batch id (default: derived from the file's destinations, so re-running a file is the same batch)")
	dryRun := fs.Bool("dry-run", false, "check the file and print what the batch would do; enqueue nothing")
	maxRetry := fs.Int("max-retry", 12, "retries of a transient error per task")
	retention := fs.Duration("task-retention", 0, "keep finished challenge tasks this long (asynq retention, for inspecting them; 0: delete at once)")
	createJob := fs.Bool("create-job", false, "after validation, create each destination's Logpush job from the columns dataset (required), job_name, enabled, output_options, logpull_options, frequency, max_upload_bytes, max_upload_interval_seconds, max_upload_records, filter")
	skipPreflight := fs.Bool("skip-preflight", false, "do not check the Cloudflare credential and bucket access before enqueueing")
	apiRate := fs.String("api-rate", envOr(env, "API_RATE", "1200/5m"),
		"the workers' shared API budget (LIMIT/WINDOW): challenges are scheduled at its pace, two calls per destination, so that earlier destinations finish while later ones wait (0: all due at once); unset, the rate stored with the budget in Redis; env API_RATE")
	bf := budgetFlags{producer: true}
	bf.register(fs, env)
	var pf preflightFlags
	pf.register(fs, env)
	var cf credentialsFlag
	cf.register(fs, env)
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: logpush-onboard enqueue [flags] FILE|-\n\nFILE is CSV with header zone_id,account_id,destination_conf, or JSONL with the same keys; - reads stdin.")
		fs.PrintDefaults()
	}
	file, err := parseFile(fs, args)
	if err != nil {
		return err
	}
	if err := c.shared(); err != nil && !*dryRun {
		return err
	}
	if *retention < 0 {
		return fmt.Errorf("-task-retention %s: must not be negative (0: keep none)", *retention)
	}
	bf.parsed(fs, env)
	creds := cloudflare.CredentialsFromEnv(env.Getenv)
	if _, err := bf.claim(*apiRate, creds); err != nil {
		return err
	}
	fmtv, err := input.ParseFormat(*format)
	if err != nil {
		return fmt.Errorf("-format: %w", err)
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
		return err
	}
	if *dryRun {
		printPlan(env.Stdout, plan)
		if plan.Rows == 0 && plan.ErrorCount == 0 {
			return producer.ErrNoDestinations
		}
	}
	if plan.ErrorCount > 0 {
		printLineErrors(env.Stderr, plan)
	}
	if *dryRun || plan.ErrorCount > 0 && *skipPreflight {
		if plan.ErrorCount > 0 {
			return &exitError{code: 1} // printLineErrors said why
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
			return &exitError{code: 1} // printLineErrors and preflight said why
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
	if cfg.Pacer, cfg.Pacers, err = bf.pacing(ctx, rdb, *apiRate, creds, pf.creds, log); err != nil {
		return err
	}
	p, err := producer.NewClient(rdb, &cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	res, err := p.EnqueuePlan(ctx, open, plan) // checked above: no third pass over the input
	if errors.Is(err, producer.ErrInvalid) {
		printLineErrors(env.Stderr, res.Plan)
		return &exitError{code: 1} // printLineErrors said why
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted with %d of %d rows in the batch %s; running the same command again continues", res.Enqueued+res.NotRequired+res.Known, res.Rows, res.BatchID)
		}
		return err
	}
	printDuplicates(env.Stderr, res)
	fmt.Fprintf(env.Stdout, "batch %s: %d rows, %d enqueued, %d not_required, %d already in the batch\n",
		res.BatchID, res.Rows, res.Enqueued, res.NotRequired, res.Known)
	return nil
}

// opener returns a function that opens the input for each pass. Standard
// input can be read once only, so it is spooled to a temporary file.
func opener(env Env, name string) (producer.Opener, func(), error) {
	if name != "-" {
		if _, err := os.Stat(name); err != nil {
			return nil, nil, err
		}
		return func() (io.ReadCloser, error) { return os.Open(name) }, func() {}, nil
	}
	tmp, err := os.CreateTemp("", "logpush-onboard-stdin-*")
	if err != nil {
		return nil, nil, fmt.Errorf("spool stdin: %w", err)
	}
	cleanup := func() { tmp.Close(); os.Remove(tmp.Name()) }
	if _, err := io.Copy(tmp, env.Stdin); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("spool stdin: %w", err)
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

func printPlan(w io.Writer, plan producer.Plan) {
	fmt.Fprintf(w, "batch %s: %d valid rows, %d invalid, %d need a challenge\n", plan.BatchID, plan.Rows, plan.ErrorCount, plan.NeedChallenge)
	types := make([]string, 0, len(plan.ByType))
	for t := range plan.ByType {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		fmt.Fprintf(w, "  %-9s %d\n", t, plan.ByType[t])
	}
}

func runPreflight(ctx context.Context, env Env, args []string) error {
	fs := newFlags("preflight", env)
	format := fs.String("format", "auto", "input format: auto, csv or jsonl")
	var pf preflightFlags
	pf.register(fs, env)
	var cf credentialsFlag
	cf.register(fs, env)
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: logpush-onboard preflight [flags] FILE|-")
		fs.PrintDefaults()
	}
	file, err := parseFile(fs, args)
	if err != nil {
		return err
	}
	fmtv, err := input.ParseFormat(*format)
	if err != nil {
		return fmt.Errorf("-format: %w", err)
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
		return err
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
		return &exitError{code: 1} // printLineErrors and preflight said why
	}
	return perr
}
