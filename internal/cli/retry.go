package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/input"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

func runRetry(ctx context.Context, env Env, args []string) error {
	var c common
	fs := newFlags("retry", env)
	c.register(fs, env)
	batch := fs.String("batch", "", "batch id (required)")
	format := fs.String("format", "auto", "input format: auto, csv or jsonl (as enqueue was given)")
	createJob := fs.Bool("create-job", false, "the batch was enqueued with --create-job: create the jobs of the retried destinations too")
	maxRetry := fs.Int("max-retry", tasks.DefaultMaxRetry, "retries of a transient error per task")
	apiRate := fs.String("api-rate", envOr(env, "API_RATE", worker.APIRateDefault),
		"the workers' shared API budget: the fresh challenges are scheduled at its pace, as enqueue does (0: all due at once); unset, the rate stored with the budget in Redis; env API_RATE")
	bf := budgetFlags{producer: true}
	bf.register(fs, env)
	var cf credentialsFlag
	cf.register(fs, env)
	setUsage(fs, "usage: logpush-onboard retry --batch ID [flags] [FILE|-]\n\n"+
		"Re-enqueues the failed destinations of a batch.\n\n"+
		"FILE is the batch's input (default: the file enqueue read, if it is still there): a failed destination keeps\n"+
		"no task in Redis, since its payload holds the destination_conf's secrets, so its task is rebuilt from its row.")
	if err := parse(fs, args); err != nil {
		return err
	}
	bf.parsed(fs, env)
	creds := cloudflare.CredentialsFromEnv(env.Getenv)
	if _, err := bf.claim(*apiRate, creds); err != nil {
		return err
	}
	if *batch == "" || fs.NArg() > 1 {
		fs.Usage()
		return errUsage
	}
	fmtv, err := input.ParseFormat(*format)
	if err != nil {
		return notStarted(fmt.Errorf("-format: %w", err))
	}
	rdb, store, closeRedis, err := c.connect(ctx, env)
	if err != nil {
		return err
	}
	defer closeRedis()
	bst, err := store.Batch(ctx, *batch)
	if errors.Is(err, ledger.ErrNoBatch) {
		return noBatch(ctx, rdb, *batch)
	}
	if err != nil {
		return err
	}
	type failed struct {
		hash string
		st   ledger.DestState
	}
	todo := map[string]failed{}
	if err := store.Dests(ctx, *batch, func(h string, st ledger.DestState) error {
		if st.State == events.Failed {
			todo[h] = failed{h, st}
		}
		return nil
	}); err != nil {
		return err
	}
	if len(todo) == 0 {
		fmt.Fprintf(env.Stdout, "batch %s: no failed destinations\n", *batch)
		return nil
	}
	path := fs.Arg(0)
	if path == "" {
		path = bst.Source
	}
	if path == "" || path == "-" && fs.Arg(0) == "" {
		fmt.Fprintf(env.Stderr, "retry: batch %s was read from standard input: give the same input again as FILE (or -)\n", *batch)
		return errUsage
	}
	open, cleanup, err := opener(env, path)
	if err != nil {
		return fmt.Errorf("the batch's input (give it as FILE): %w", err)
	}
	defer cleanup()
	set, err := cf.load(env, nil)
	if err != nil {
		return err
	}
	found := map[string]tasks.Dest{}
	if err := producer.Dests(ctx, open, producer.Config{Format: fmtv, CreateJob: *createJob, Credentials: inputCredentials(set)}, func(_ int, d tasks.Dest) error {
		if h := d.Hash(); todo[h].hash != "" {
			found[h] = d
		}
		return nil
	}); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	order := make([]failed, 0, len(todo))
	for _, f := range todo {
		order = append(order, f)
	}
	sort.Slice(order, func(i, j int) bool { return order[i].st.Line < order[j].st.Line })

	log, err := c.logger(env)
	if err != nil {
		return err
	}
	bcfg, ok, err := bf.shared(ctx, rdb, *apiRate, creds, log)
	if err != nil {
		return err
	}
	pace, err := pacer(rdb, bcfg, ok)
	if err != nil {
		return err
	}
	// Each credential's fresh challenges at its own budget's pace.
	pacers := bf.pacers(ctx, rdb, *apiRate, set, pace, log)
	if pacers == nil {
		pacers = func(string) (producer.Pacer, error) { return pace, nil }
	}
	perCred := map[string]int{}
	for _, d := range found {
		perCred[d.Credential]++
	}
	type paced struct {
		p      producer.Pacer
		offset time.Duration
		next   int
	}
	pacing := map[string]*paced{}
	for name, n := range perCred {
		p, err := pacers(name)
		if err != nil {
			return err
		}
		pc := &paced{p: p}
		if p != nil {
			if pc.offset, err = p.Reserve(ctx, n); err != nil {
				return err
			}
		}
		pacing[name] = pc
	}
	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	now := time.Now()
	var retried, lost int
	for _, f := range order {
		d, ok := found[f.hash]
		if !ok {
			lost++
			fmt.Fprintf(env.Stderr, "line %d: its destination is not in %s (was the file changed?); enqueue that row again in a new batch\n", f.st.Line, path)
			continue
		}
		d.BatchID, d.Gen, d.Round, d.EnqueuedAt = *batch, 0, f.st.Round+1, now
		var delay time.Duration
		if pc := pacing[d.Credential]; pc.p != nil {
			delay = pc.offset + time.Duration(pc.next)*pc.p.Interval()
			pc.next++
		}
		task, err := tasks.NewChallengeTask(d, tasks.Options{MaxRetry: *maxRetry}, delay)
		if err != nil {
			return err
		}
		// Enqueue before reopening: a crash in between leaves the task
		// superseded-proof (its round is newer) and a re-run finds it.
		if _, err := client.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return fmt.Errorf("line %d: %w", f.st.Line, err)
		}
		if _, err := store.Reopen(ctx, ledger.Key{Batch: *batch, Hash: f.hash}, d.Round); err != nil {
			return fmt.Errorf("line %d: %w", f.st.Line, err)
		}
		retried++
	}
	fmt.Fprintf(env.Stdout, "batch %s: %d failed destinations re-enqueued", *batch, retried)
	if lost > 0 {
		fmt.Fprintf(env.Stdout, ", %d could not be (see above)", lost)
	}
	fmt.Fprintln(env.Stdout)
	return nil
}
