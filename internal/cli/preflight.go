package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/input"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// preflightProbe is the object name preflight asks for in each bucket: it
// never exists, so "not found" proves the bucket is reachable and that the
// reading identity may tell a missing object from a denied one.
const preflightProbe = ".logpush-onboard-preflight"

// preflightFlags are the settings preflight needs: how to reach Cloudflare.
type preflightFlags struct {
	apiURL string
}

func (p *preflightFlags) register(fs *flag.FlagSet, env Env) {
	fs.StringVar(&p.apiURL, "cloudflare-api-url", envOr(env, "CLOUDFLARE_API_URL", cloudflare.DefaultBaseURL),
		"Cloudflare API base URL; env CLOUDFLARE_API_URL")
}

// bucketCheck is the preflight result for one bucket or container.
type bucketCheck struct {
	loc  destination.Location
	line int // first input line that uses it
	rows int
	err  error
}

// preflight checks, before a batch is enqueued, that the Cloudflare
// credential works and that every distinct bucket the batch needs read can
// be read. It prints one line per problem and returns an error when any.
func preflight(ctx context.Context, env Env, open producer.Opener, in input.Options, pf preflightFlags, storage storageConfig) error {
	creds := cloudflare.CredentialsFromEnv(env.Getenv)
	if err := creds.Validate(); err != nil {
		return fmt.Errorf("preflight: cloudflare credentials: %w (set CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY; or --skip-preflight)", err)
	}
	api, err := cloudflare.New(cloudflare.Config{BaseURL: pf.apiURL, Credentials: creds})
	if err != nil {
		return err
	}
	var problems int
	if err := api.VerifyToken(ctx); err != nil {
		problems++
		fmt.Fprintf(env.Stderr, "preflight: the Cloudflare credential does not work: %v\n", err)
	}

	buckets, err := distinctBuckets(open, in)
	if err != nil {
		return err
	}
	readers, err := storage.readers(ctx)
	if err != nil {
		return err
	}
	probeAll(ctx, readers, buckets)
	for _, b := range buckets {
		if b.err != nil {
			problems++
			fmt.Fprintf(env.Stderr, "preflight: line %d (and %d more rows): %v\n", b.line, b.rows-1, b.err)
		}
	}
	if problems > 0 {
		return &exitError{code: 1, err: fmt.Errorf("preflight found %s; nothing was enqueued (--skip-preflight to enqueue anyway)", plural(int64(problems), "problem"))}
	}
	fmt.Fprintf(env.Stdout, "preflight: Cloudflare credential works; %d buckets readable\n", len(buckets))
	return nil
}

// distinctBuckets lists the buckets and containers whose challenge files
// the worker will read.
func distinctBuckets(open producer.Opener, in input.Options) ([]*bucketCheck, error) {
	rc, err := open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	seen := map[destination.Location]*bucketCheck{}
	in.Extra = append(in.Extra, tasks.ReadAsColumns...)
	r := input.NewReader(rc, in)
	for {
		row, err := r.Next()
		var le *input.LineError
		switch {
		case errors.Is(err, io.EOF):
			out := make([]*bucketCheck, 0, len(seen))
			for _, b := range seen {
				out = append(out, b)
			}
			sort.Slice(out, func(i, j int) bool { return out[i].line < out[j].line })
			return out, nil
		case errors.As(err, &le):
			continue // enqueue reports bad lines
		case err != nil:
			return nil, err
		}
		c := row.Conf
		if !c.NeedsChallenge() || !c.TokenReadable() {
			continue
		}
		as, err := tasks.ParseReadAs(row.Extra)
		if err != nil {
			continue // enqueue reports it
		}
		loc := worker.Location(c, as, preflightKey(c))
		id := loc
		if c.Type != tasks.TypeFile {
			id.Key = "" // one probe per bucket, whatever the prefix; a file:// "bucket" is its directory
		}
		if b, ok := seen[id]; ok {
			b.rows++
			continue
		}
		seen[id] = &bucketCheck{loc: loc, line: row.Line, rows: 1}
	}
}

func preflightKey(c tasks.Conf) string {
	if c.Prefix == "" {
		return preflightProbe
	}
	return c.Prefix + "/" + preflightProbe
}

// probeAll reads the probe object of every bucket, 16 at a time.
func probeAll(ctx context.Context, r destination.Reader, buckets []*bucketCheck) {
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, b := range buckets {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			_, err := r.Read(ctx, b.loc, time.Time{})
			if err != nil && !errors.Is(err, destination.ErrNotFound) {
				b.err = err
			}
		})
	}
	wg.Wait()
}
