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

	"github.com/logpush-onboard/logpush-onboard/credentials"
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
	// verify bounds the retries of the credential check (tests shorten it).
	verify cloudflare.VerifyPolicy
}

// maxAccountChecks bounds the accounts an API token is checked against as
// an account-owned token: each is a call of the user's rate limit.
const maxAccountChecks = 10

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
// be read. It prints one line per problem and returns an error when any. A
// check that could not be made (the API unavailable, an account-owned token
// and no account id to check it with) is said so, not counted as a problem.
func preflight(ctx context.Context, env Env, open producer.Opener, in input.Options, pf preflightFlags, storage credentials.Storage) error {
	creds := cloudflare.CredentialsFromEnv(env.Getenv)
	if err := creds.Validate(); err != nil {
		return fmt.Errorf("preflight: cloudflare credentials: %w (set CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY; or --skip-preflight)", err)
	}
	api, err := cloudflare.New(cloudflare.Config{BaseURL: pf.apiURL, Credentials: creds})
	if err != nil {
		return err
	}
	scan, err := scanBatch(open, in)
	if err != nil {
		return err
	}
	var problems int
	credential := "not checked"
	v, err := api.VerifyCredential(ctx, cloudflare.VerifyScopes{Accounts: scan.accounts, Zones: scan.zones}, pf.verify)
	var ae *cloudflare.APIError
	switch {
	case err == nil && creds.APIToken == "":
		credential = "works (email and global API key)"
	case err == nil && v.AccountID != "":
		credential = "works (account-owned API token of account " + v.AccountID + ")"
	case err == nil && v.ZoneID != "":
		credential = "works (an API token that lists the Logpush jobs of zone " + v.ZoneID + ")"
	case err == nil:
		credential = "works (user API token)"
	case errors.Is(err, cloudflare.ErrNoAccountToCheck):
		fmt.Fprintln(env.Stderr, "preflight: Cloudflare credential not checked: GET /user/tokens/verify answers 401, as it does for an account-owned API token, "+
			"and the batch names no account or zone to check it with")
	case errors.As(err, &ae) && (ae.Kind == cloudflare.Transient || ae.Kind == cloudflare.RateLimited):
		status := "no answer"
		if ae.HTTPStatus > 0 {
			status = fmt.Sprint(ae.HTTPStatus)
		}
		fmt.Fprintf(env.Stderr, "preflight: Cloudflare credential not checked: API unavailable (%s) after retries: %v\n", status, err)
	default:
		problems++
		fmt.Fprintf(env.Stderr, "preflight: the Cloudflare credential does not work: %v\n", err)
	}

	readers, err := destination.NewMux(ctx, destination.OptionsFor(storage))
	if err != nil {
		return err
	}
	probeAll(ctx, readers, scan.buckets)
	for _, b := range scan.buckets {
		if b.err != nil {
			problems++
			fmt.Fprintf(env.Stderr, "preflight: line %d (and %d more rows): %v\n", b.line, b.rows-1, b.err)
		}
	}
	if problems > 0 {
		return &exitError{code: 1, err: fmt.Errorf("preflight found %s; nothing was enqueued (--skip-preflight to enqueue anyway)", plural(int64(problems), "problem"))}
	}
	fmt.Fprintf(env.Stdout, "preflight: Cloudflare credential %s; %d buckets readable\n", credential, len(scan.buckets))
	return nil
}

// batchScan is what preflight checks of a batch.
type batchScan struct {
	// buckets are the buckets and containers whose challenge files the
	// worker will read.
	buckets []*bucketCheck
	// accounts are the first distinct account ids of the batch, to check an
	// account-owned API token against; zones its first zone id.
	accounts, zones []string
}

// scanBatch lists the buckets and containers whose challenge files the
// worker will read, and the batch's first account ids. Bad lines are
// skipped: the line check reports them.
func scanBatch(open producer.Opener, in input.Options) (batchScan, error) {
	rc, err := open()
	if err != nil {
		return batchScan{}, err
	}
	defer rc.Close()
	seen := map[destination.Location]*bucketCheck{}
	var scan batchScan
	accounts := map[string]bool{}
	in.Extra = append(in.Extra, tasks.ReadAsColumns...)
	in.Extra = append(in.Extra, tasks.JobColumns...)
	r := input.NewReader(rc, in)
	for {
		row, err := r.Next()
		var le *input.LineError
		switch {
		case errors.Is(err, io.EOF):
			for _, b := range seen {
				scan.buckets = append(scan.buckets, b)
			}
			sort.Slice(scan.buckets, func(i, j int) bool { return scan.buckets[i].line < scan.buckets[j].line })
			return scan, nil
		case errors.As(err, &le):
			continue // the line check reports bad lines
		case err != nil:
			return batchScan{}, err
		}
		switch {
		case row.Scope == tasks.ScopeAccount && !accounts[row.ScopeID] && len(scan.accounts) < maxAccountChecks:
			accounts[row.ScopeID] = true
			scan.accounts = append(scan.accounts, row.ScopeID)
		case row.Scope == tasks.ScopeZone && len(scan.zones) == 0:
			scan.zones = append(scan.zones, row.ScopeID)
		}
		c := row.Conf
		if !c.NeedsChallenge() || !c.TokenReadable() {
			continue
		}
		as, err := tasks.ParseReadAs(row.Extra)
		if err != nil {
			continue // the line check reports it
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
