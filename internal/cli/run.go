package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/budget"
	"github.com/logpush-onboard/logpush-onboard/internal/input"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/words"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

const runUsage = `usage: logpush-onboard run [flags] FILE|-
       logpush-onboard run [flags] --account ID --dataset DATASET --destination TEMPLATE

Onboards every destination of FILE in this process: checks every line, runs
preflight, then a worker and the producer on an embedded Redis (or on the
shared one of --redis), with a progress view. The journal (--journal) keeps
every outcome as it comes: run the same command again after Ctrl-C, a crash
or kill -9 and it goes on with the destinations not finished yet (a job it
created but had not watched to its health yet is watched, not challenged
again); it knows a
destination by its id (scope, id, conf and dataset), so an edited FILE keeps
what is finished. The report (--report) has one row per destination of FILE
as it is now, at its current line. For - the journal and the report are
stdin-BATCH.journal.jsonl and stdin-BATCH.results.csv in the working
directory, BATCH the input's batch id.

With --account instead of FILE, run plans first (see plan -h: the zones
Cloudflare lists, the jobs that exist left out), writes the plan beside the
journal, and onboards it with --create-job; run the same command again and
it goes on with that plan.
`

func runRun(ctx context.Context, env Env, args []string) error {
	var f workerFlags
	var lf viewLog
	fs := newFlags("run", env)
	lf.register(fs, env)
	f.registerTuning(fs, env)
	setDefault(fs, "metrics-addr", "")
	setDefault(fs, "shutdown-timeout", "10s")
	fs.StringVar(&f.redisURL, "redis", "",
		"run on this shared Redis instead of an embedded one: other workers can join and the batch survives this process (no env twin: run keeps its own Redis unless told)")
	format := fs.String("format", "auto", "input format: auto, csv or jsonl")
	reportPath := fs.String("report", "", "write one row per destination of FILE here at the end, CSV (default: beside FILE, NAME.results.csv)")
	journalPath := fs.String("journal", "", "the journal of outcomes, JSON lines, read on start to skip what is finished (default: beside FILE, NAME.journal.jsonl)")
	skipPreflight := fs.Bool("skip-preflight", false, "do not check the Cloudflare credential and bucket access first")
	retryFailed := fs.Bool("retry-failed", false, "redo the destinations the journal has as failed (once you fixed the cause); their new outcome is journaled after the old one")
	every := fs.Duration("progress-interval", progressIntervalDefault, "when standard output is not a terminal, print a progress line this often")
	createJob := fs.Bool("create-job", false, "after validation, create each destination's Logpush job from the job columns (see above; on with --account)")
	var pf planFlags
	pf.register(fs)
	var cf credentialsFlag
	cf.register(fs, env)
	setUsage(fs, runUsage+"\n"+inputHelp)
	file, err := parseFileOrSelection(fs, args, &pf)
	if err != nil {
		return err
	}
	if *every <= 0 {
		return &exitError{code: 2, err: fmt.Errorf("-progress-interval %s: must be positive", *every)}
	}
	if err := f.check(); err != nil {
		return &exitError{code: 2, err: err}
	}
	fmtv, err := input.ParseFormat(*format)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("-format: %w", err)}
	}
	log, closeLog, err := lf.logger(env)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer closeLog()
	// Its warnings go to stderr: run's log shows errors only by default.
	set, err := cf.load(env, nil)
	if err != nil {
		return err
	}
	if pf.given() {
		f.budget.parsed(fs, env)
		if file, err = planForRun(ctx, env, &pf, f, set, *journalPath, log); err != nil || file == "" {
			return err
		}
		*createJob = true
	}
	open, cleanup, err := opener(env, file)
	if err != nil {
		return err
	}
	defer cleanup()
	in := input.Options{Format: fmtv, Credentials: inputCredentials(set)}
	if *createJob {
		in.Extra = tasks.JobColumns
	}
	pcfg := producer.ClientConfig{Format: fmtv, Credentials: in.Credentials, CreateJob: *createJob}
	// One pass checks every line and lists the destinations for the
	// journal and the report; the enqueue pass is the only other (and
	// preflight's, which reads the buckets' rows).
	plan, dests, err := checkInput(ctx, open, pcfg)
	if err != nil {
		return notStarted(err)
	}
	if plan.ErrorCount > 0 {
		printLineErrors(env.Stderr, plan)
		return &exitError{code: 2} // printLineErrors said why
	}
	if plan.Rows == 0 {
		return notStarted(fmt.Errorf("%s: %w", file, producer.ErrNoDestinations))
	}
	// Sumo Logic rows wait for a token that submit-token brings through the
	// workers' Redis: on the embedded one, which ends with this process, a
	// challenge would be spent for nothing. Said before any call.
	var leftOut int
	leaveOut := func(destType string) bool { return false }
	if f.redisURL == "" {
		if leftOut = plan.ByType[tasks.TypeSumo]; leftOut > 0 {
			fmt.Fprintln(env.Stderr, "run: "+sumoLeftOut(leftOut))
			if leftOut == plan.Rows {
				return &exitError{code: 2, err: fmt.Errorf("%s: nothing else to onboard", file)}
			}
			leaveOut = func(destType string) bool { return destType == tasks.TypeSumo }
		}
	}
	// The credentials after the line check: the file's own problems are
	// shown whatever else is wrong.
	// With a credentials file the environment's is optional: the line
	// check refused the rows that name none without it.
	creds, err := f.useCredentials(env, set)
	if err != nil {
		return err
	}
	f.budget.parsed(fs, env)
	if _, err := f.budget.claim(f.apiRate, creds); err != nil {
		return &exitError{code: 2, err: err}
	}
	rate, _ := budget.ParseRate(f.apiRate)

	// Standard input's files are named by its batch id: two different
	// inputs piped in one folder do not share a journal, and the same input
	// piped again resumes its own.
	reportFile, journalFile := besideInput(file, "stdin-"+plan.BatchID, *reportPath, *journalPath)
	dests = slices.DeleteFunc(dests, func(d inputDest) bool { return leaveOut(d.destType) })
	j, err := openJournal(journalFile, env.Stderr)
	if err != nil {
		return err
	}
	defer j.close()
	if *retryFailed {
		j.forgetFailed()
	}
	// finish writes the report of batch in store (none: the journal's
	// only) and the summary, which ends with the rows left out.
	finish := func(store *ledger.Store, batch string, interrupted bool) error {
		err := finishRun(env, store, batch, j, dests, reportFile, journalFile, interrupted, args)
		if leftOut > 0 {
			fmt.Fprintln(env.Stdout, sumoLeftOut(leftOut))
		}
		return err
	}
	// On the embedded Redis, the journal is all that is left of an earlier
	// run: skip what it finished. A shared Redis keeps the batch itself.
	var prior map[events.State]int64
	var skip func(tasks.Dest) bool
	var rewatch func(tasks.Dest) (producer.Watch, bool)
	if f.redisURL == "" {
		// A job the journal has validated but not watched (the run was
		// stopped while it watched) is watched again, not challenged.
		rewatch = func(d tasks.Dest) (producer.Watch, bool) {
			e, ok := watchAgain(j, d.Hash(), d.Job != nil && d.Job.Enabled, f.healthDeadline)
			return producer.Watch{JobID: e.JobID, JobExisted: e.JobExisted, Filename: e.Filename}, ok
		}
		var left, again int
		prior, left, again = journaled(dests, j, f.healthDeadline)
		if left == 0 {
			fmt.Fprintf(env.Stdout, "run: every destination of %s is finished already (journal %s)\n", file, journalFile)
			return finish(nil, "", false)
		}
		if len(prior) > 0 || again > 0 {
			var n int64
			for _, k := range prior {
				n += k
			}
			watching := ""
			if again > 0 {
				watching = fmt.Sprintf(", %s validated to watch again", words.Plural(again, "job"))
			}
			fmt.Fprintf(env.Stdout, "run: resuming: %s finished already (journal %s), %d to go%s\n", words.Plural(n, "destination"), journalFile, left, watching)
		}
		skip = func(d tasks.Dest) bool {
			if c, err := tasks.ParseConf(d.DestinationConf); err == nil && leaveOut(c.Type) {
				return true
			}
			if _, again := rewatch(d); again {
				return false
			}
			return j.has(d.Hash())
		}
		// The worker is alone on this Redis: the journal keeps its
		// challenges, and takes up those a killed run had in flight.
		f.challenges = j
	}
	storage, err := storageFromEnv(env)
	if err != nil {
		return err
	}
	if !*skipPreflight {
		if err := preflight(ctx, env, open, in, preflightFlags{apiURL: f.apiURL, creds: set}, storage); err != nil {
			return err
		}
	}

	var (
		rdb        redis.UniversalClient
		closeRedis func()
	)
	if f.redisURL != "" {
		rdb, closeRedis, err = connectRedis(ctx, f.redisURL)
	} else {
		rdb, closeRedis, err = embeddedRedis()
		if err == nil && f.apiRate != "0" {
			fmt.Fprintf(env.Stderr, "run: warning: the API budget (--api-rate %s) counts this run's calls only: other processes using the same credential (another run, workers, Terraform, the dashboard) are not counted; give --redis to share the budget with them\n", f.apiRate)
		}
	}
	if err != nil {
		return err
	}
	defer closeRedis()
	w, err := startWorker(ctx, rdb, f, creds, storage, log)
	if err != nil {
		return err
	}
	defer w.stop()
	source, err := sourceOf(file)
	if err != nil {
		return err
	}
	pcfg = producer.ClientConfig{Source: source, Format: fmtv, Credentials: in.Credentials, Logger: log, Skip: skip, Watch: rewatch, WatchFor: f.healthDeadline, CreateJob: *createJob,
		Task: tasks.Options{MaxRetry: f.maxRetry, Retention: f.retention}, Budget: f.budget.producerBudget(f.apiRate, creds, set, log)}
	p, err := producer.NewClient(rdb, &pcfg)
	if err != nil {
		return err
	}
	defer p.Close()
	store := p.Ledger()
	start := time.Now()
	res, err := p.EnqueuePlan(ctx, open, plan) // checked above
	if err != nil {
		w.stop()
		if ctx.Err() != nil {
			drainJournal(store, res.BatchID, j)
			fmt.Fprintf(env.Stderr, "run: interrupted while enqueueing, %d of %d rows in; running the same command again continues\n",
				res.Enqueued+res.NotRequired+res.Known+res.Skipped, res.Rows)
			return finish(store, res.BatchID, true)
		}
		return f.budget.explain(err)
	}
	fmt.Fprintf(env.Stdout, "run: batch %s: %d rows, %d enqueued, %d not_required, %d already in the batch, %d finished before; journal %s\n",
		res.BatchID, res.Rows, res.Enqueued, res.NotRequired, res.Known, res.Skipped, journalFile)
	v := newView(env.Stdout)
	if v.terminal {
		*every = 250 * time.Millisecond
	}
	_, err = watch(ctx, store, res.BatchID, watchConfig{view: v, every: *every, rate: rate, from: "0", onEvents: j.append,
		prior: prior, start: start, retries: func() retries { return apiRetries(w.registry) }, pauses: pausesOf(rdb)})
	if err == nil && ctx.Err() == nil && f.redisURL != "" {
		// A shared Redis outlives this process: no task of the batch
		// may stay there with its conf (the embedded one ends with it).
		waitBatchTasks(ctx, env, rdb, store, res.BatchID, batchTasksWait)
	}
	interrupted := ctx.Err() != nil
	w.stop()
	if interrupted {
		drainJournal(store, res.BatchID, j)
	} else if err != nil {
		return err
	}
	return finish(store, res.BatchID, interrupted)
}

// sumoLeftOut says why run on its embedded Redis leaves n Sumo Logic rows
// out.
func sumoLeftOut(n int) string {
	return fmt.Sprintf("%s left out: submit-token needs a shared Redis: run with --redis (the workers' Redis) to onboard them",
		words.Plural(int64(n), "sumo row"))
}

// besideInput returns the report and journal paths: the flags', or beside
// the input; for standard input ("-"), in the working directory and named
// stdinStem.
func besideInput(file, stdinStem, report, journal string) (string, string) {
	stem := stdinStem
	dir := "."
	if file != "-" {
		dir = filepath.Dir(file)
		stem = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	}
	if report == "" {
		report = filepath.Join(dir, stem+".results.csv")
	}
	if journal == "" {
		journal = filepath.Join(dir, stem+".journal.jsonl")
	}
	return report, journal
}

// inputDest is a destination of the current input: the line of its first
// row, its id (tasks.Dest.Hash) and what the report shows of it.
type inputDest struct {
	line                                  int
	id                                    string
	scope, scopeID, destination, destType string
	// enabledJob: the row makes an enabled job, whose health is watched.
	enabledJob bool
}

// checkInput checks the input as the producer with cfg does
// (producer.CheckEach) and lists its destinations in the same pass, in
// input order, each once (a repeated row is its first line's duplicate).
func checkInput(ctx context.Context, open producer.Opener, cfg producer.ClientConfig) (producer.Plan, []inputDest, error) {
	var out []inputDest
	seen := map[string]bool{}
	plan, err := producer.CheckEach(ctx, open, cfg, func(d tasks.Dest) error {
		id := d.Hash()
		if seen[id] {
			return nil
		}
		seen[id] = true
		conf, err := tasks.ParseConf(d.DestinationConf)
		if err != nil {
			return fmt.Errorf("line %d: %w", d.Line, err) // a good row's conf parses: a bug
		}
		out = append(out, inputDest{line: d.Line, id: id, scope: d.Scope, scopeID: d.ScopeID, destination: conf.Redacted(), destType: conf.Type,
			enabledJob: d.Job != nil && d.Job.Enabled})
		return nil
	})
	return plan, out, err
}

// journaled counts, by outcome, the input's destinations the journal has
// finished, and the destinations still to do (left): those it has not, and
// those whose job is to be watched again (again; watchAgain, with
// healthDeadline).
func journaled(dests []inputDest, j *journal, healthDeadline time.Duration) (prior map[events.State]int64, left, again int) {
	prior = map[events.State]int64{}
	for _, d := range dests {
		e, ok := j.done[d.id]
		_, watch := watchAgain(j, d.id, d.enabledJob, healthDeadline)
		switch {
		case watch:
			again++
			left++
		case ok:
			prior[e.Event]++
		default:
			left++
		}
	}
	return prior, left, again
}

// watchAgain returns the journaled outcome of the destination of id when
// its enabled job (enabledJob) was validated but not watched to its health
// outcome, and the workers watch jobs (healthDeadline > 0): the run was
// stopped while it watched, and this one watches the job again rather
// than challenge the destination again.
func watchAgain(j *journal, id string, enabledJob bool, healthDeadline time.Duration) (events.Event, bool) {
	if healthDeadline <= 0 || !enabledJob {
		return events.Event{}, false
	}
	return j.unwatched(id)
}

// drainJournal journals the outcomes still on the stream after the worker
// stopped: those of the tasks that ended while it drained.
func drainJournal(store *ledger.Store, batch string, j *journal) {
	drainBatch(store, batch, outcome, j.append)
}

// drainBatch hands write the events of batch still on the stream that keep
// accepts, a page at a time, until the stream ends, write fails, or 5s
// pass (run's and migrate's journals after their worker stopped).
func drainBatch(store *ledger.Store, batch string, keep func(events.Event) bool, write func([]events.Event) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	after := "0"
	for {
		entries, err := store.Read(ctx, after, 1000, 0)
		if err != nil || len(entries) == 0 {
			return
		}
		var mine []events.Event
		for _, e := range entries {
			after = e.ID
			if e.Event.BatchID == batch && keep(e.Event) {
				mine = append(mine, e.Event)
			}
		}
		if write(mine) != nil {
			return
		}
	}
}

// finishRun writes the report, prints the summary by state and
// destination type and returns the run's outcome: an error (exit 1) when a
// destination failed or the run was interrupted. The report has one row
// per destination of the current input (dests), at its current line, with
// the batch's state of it or else the journal's outcome (matched by
// destination id), or else queued: it was not enqueued before an
// interruption. The journal's destinations no longer in the input are not
// reported. store is nil when the journal had everything.
func finishRun(env Env, store *ledger.Store, batch string, j *journal, dests []inputDest, reportFile, journalFile string, interrupted bool, args []string) error {
	inBatch := map[string]ledger.DestState{}
	if store != nil && batch != "" {
		// The batch's own states: the destinations still in flight, and on a
		// shared Redis the latest round of each.
		err := store.Dests(context.Background(), batch, func(id string, st ledger.DestState) error {
			inBatch[id] = st
			return nil
		})
		if err != nil {
			fmt.Fprintf(env.Stderr, "run: the report has the journal's rows only: %v\n", err)
		}
	}
	list := make([]reportRow, 0, len(dests))
	for _, d := range dests {
		r := reportRow{Line: d.line, Scope: d.scope, ScopeID: d.scopeID, Destination: d.destination, DestinationType: d.destType, State: events.Queued}
		if st, ok := inBatch[d.id]; ok {
			r.State, r.Filename, r.Attempts, r.Round, r.Error = st.State, st.Filename, st.Attempts, st.Round, st.Error
		} else if e, ok := j.done[d.id]; ok {
			r.State, r.Filename, r.Attempts, r.Error = e.Event, e.Filename, e.Attempts, e.Error
		}
		// An embedded Redis forgets the challenges of a run killed before
		// their outcome; the journal recorded them. On a shared Redis the
		// ledger counts them too: the larger count, never their sum.
		r.Attempts.Challenge = max(r.Attempts.Challenge, j.challenged(d.id))
		list = append(list, r)
	}
	if err := writeReport(reportFile, list); err != nil {
		return err
	}

	// The summary: destinations by type and state.
	byType := map[string]map[events.State]int{}
	counts := map[events.State]int{}
	for _, r := range list {
		if byType[r.DestinationType] == nil {
			byType[r.DestinationType] = map[events.State]int{}
		}
		byType[r.DestinationType][r.State]++
		counts[r.State]++
	}
	types := make([]string, 0, len(byType))
	for t := range byType {
		types = append(types, t)
	}
	sort.Strings(types)
	var states []events.State
	for _, s := range events.States() {
		if counts[s] > 0 {
			states = append(states, s)
		}
	}
	w := len("total")
	for _, t := range types {
		w = max(w, len(t))
	}
	fmt.Fprintf(env.Stdout, "\n%-*s", w, "type")
	for _, s := range states {
		fmt.Fprintf(env.Stdout, " %14s", s)
	}
	fmt.Fprintln(env.Stdout)
	for _, t := range append(types, "total") {
		fmt.Fprintf(env.Stdout, "%-*s", w, t)
		for _, s := range states {
			n := counts[s]
			if t != "total" {
				n = byType[t][s]
			}
			fmt.Fprintf(env.Stdout, " %14d", n)
		}
		fmt.Fprintln(env.Stdout)
	}
	fmt.Fprintf(env.Stdout, "report: %s (one row per destination; line joins it to the input)\njournal: %s\n", reportFile, journalFile)
	if n := counts[events.AwaitingToken]; n > 0 {
		fmt.Fprintf(env.Stdout, "waiting for a token: %s (Sumo Logic: it went to the HTTP source); submit-token needs them on a shared Redis: run with --redis\n",
			words.Plural(int64(n), "destination"))
	}
	if interrupted {
		var done int
		for _, r := range list {
			if r.State.Terminal() || r.State == events.AwaitingToken {
				done++
			}
		}
		return &exitError{code: 1, err: fmt.Errorf("interrupted with %d of %d destinations finished; to continue, run again: %s", done, len(list), resumeCommand(args))}
	}
	if n := counts[events.Failed]; n > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%s failed: see %s; once the cause is fixed, the same command with --retry-failed redoes them",
			words.Plural(int64(n), "destination"), reportFile)}
	}
	if n := counts[events.JobFailing]; n > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%s failing to push (job_failing): see %s for Cloudflare's message; Cloudflare disables a job that fails for 24 hours",
			words.Plural(int64(n), "job"), reportFile)}
	}
	return nil
}

func writeReport(path string, rows []reportRow) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("-report: %w", err)
	}
	if err := writeReportCSV(f, rows); err != nil {
		f.Close()
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return f.Close()
}

// resumeCommand is the command line that continues a run, Redis URL
// passwords hidden.
func resumeCommand(args []string) string {
	out := []string{"logpush-onboard", "run"}
	for _, a := range args {
		if strings.Contains(a, "://") {
			a = redactURL(a)
		}
		if a == "" || strings.ContainsAny(a, " \t'\"$`\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out = append(out, a)
	}
	return strings.Join(out, " ")
}
