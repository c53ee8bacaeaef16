package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

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
	set, err := cf.load(env, nil)
	if err != nil {
		return err
	}
	log, err := c.logger(env)
	if err != nil {
		return err
	}
	rdb, closeRedis, err := c.open(ctx, env)
	if err != nil {
		return err
	}
	defer closeRedis()
	cfg := producer.ClientConfig{Format: fmtv, CreateJob: *createJob, Credentials: inputCredentials(set),
		Task: tasks.Options{MaxRetry: *maxRetry}, Logger: log,
		// The fresh challenges at each credential's budget's pace, as
		// enqueue paces them.
		Budget: bf.producerBudget(*apiRate, creds, set, log)}
	cl, err := producer.NewClient(rdb, &cfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	bst, err := cl.BatchStatus(ctx, *batch)
	if errors.Is(err, ledger.ErrNoBatch) {
		return noBatch(ctx, rdb, *batch)
	}
	if err != nil {
		return err
	}
	// The input is opened once a failed destination needs it: a batch
	// without any needs none.
	path := fs.Arg(0)
	if path == "" {
		path = bst.Source
	}
	var input producer.Opener
	cleanup := func() {}
	defer func() { cleanup() }()
	open := func() (io.ReadCloser, error) {
		if input == nil {
			if path == "" || path == "-" && fs.Arg(0) == "" {
				fmt.Fprintf(env.Stderr, "retry: batch %s was read from standard input: give the same input again as FILE (or -)\n", *batch)
				return nil, errUsage
			}
			var err error
			if input, cleanup, err = opener(env, path); err != nil {
				return nil, fmt.Errorf("the batch's input (give it as FILE): %w", err)
			}
		}
		return input()
	}
	res, err := cl.Retry(ctx, *batch, open)
	if errors.Is(err, producer.ErrInvalid) {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err != nil {
		return bf.explain(err)
	}
	if res.Failed == 0 {
		fmt.Fprintf(env.Stdout, "batch %s: no failed destinations\n", *batch)
		return nil
	}
	for _, line := range res.Lost {
		fmt.Fprintf(env.Stderr, "line %d: its destination is not in %s (was the file changed?); enqueue that row again in a new batch\n", line, path)
	}
	fmt.Fprintf(env.Stdout, "batch %s: %d failed destinations re-enqueued", *batch, res.Retried)
	if len(res.Lost) > 0 {
		fmt.Fprintf(env.Stdout, ", %d could not be (see above)", len(res.Lost))
	}
	fmt.Fprintln(env.Stdout)
	return nil
}
