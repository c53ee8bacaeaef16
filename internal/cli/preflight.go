package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/input"
	"github.com/logpush-onboard/logpush-onboard/internal/words"
	"github.com/logpush-onboard/logpush-onboard/producer"
	"github.com/logpush-onboard/logpush-onboard/tasks"
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
	// creds are the credentials rows may name (credentialsFlag.load); nil:
	// the environment's only.
	creds *credentials.Set
}

// maxAccountChecks bounds the accounts an API token is checked against as
// an account-owned token: each is a call of the user's rate limit.
const maxAccountChecks = 10

// maxCredentialChecks bounds the credentials checked at once.
const maxCredentialChecks = 4

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

// preflight checks, before a batch is enqueued, that every Cloudflare
// credential the batch uses works, each once, against the accounts and
// zones of its own rows, and that every distinct bucket the batch needs
// read can be read. It prints one line per problem and returns an error
// when any. A check that could not be made (the API unavailable, an
// account-owned token and no account id to check it with) is said so, not
// counted as a problem.
func preflight(ctx context.Context, env Env, open producer.Opener, in input.Options, pf preflightFlags, storage credentials.Storage) error {
	set := pf.creds
	if set == nil {
		set = &credentials.Set{}
		_ = set.SetDefault(cloudflare.CredentialsFromEnv(env.Getenv)) // a broken one is reported below
	}
	scan, err := scanBatch(open, in)
	if err != nil {
		return notStarted(err)
	}
	if len(scan.creds) == 0 && set.Len() == 0 { // no good row: the default, as ever
		scan.creds = []*credScan{{}}
	}
	for _, cs := range scan.creds {
		if cs.name == "" && !set.HasDefault() { // Validate says why: none set, or a broken one
			err := cloudflare.CredentialsFromEnv(env.Getenv).Validate()
			return notStarted(fmt.Errorf("preflight: cloudflare credentials: %w (set CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY; or --skip-preflight)", err))
		}
	}
	sem := make(chan struct{}, maxCredentialChecks)
	var wg sync.WaitGroup
	for _, cs := range scan.creds {
		nc, ok := set.Lookup(cs.name)
		if !ok {
			cs.skip = true
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			api, err := cloudflare.New(cloudflare.Config{BaseURL: pf.apiURL, Credentials: nc.Credentials})
			if err != nil {
				cs.err = err
				return
			}
			cs.token = nc.Credentials.APIToken != ""
			cs.v, cs.err = api.VerifyCredential(ctx, cloudflare.VerifyScopes{Accounts: cs.accounts, Zones: cs.zones}, pf.verify)
		})
	}
	wg.Wait()
	var problems int
	var works []string
	for _, cs := range scan.creds {
		if cs.skip {
			continue
		}
		what := "Cloudflare credential"
		if cs.name != "" || len(scan.creds) > 1 {
			what += " " + credLabel(cs.name)
		}
		credential := "not checked"
		var ae *cloudflare.APIError
		switch err := cs.err; {
		case err == nil && !cs.token:
			credential = "works (email and global API key)"
		case err == nil && cs.v.AccountID != "":
			credential = "works (account-owned API token of account " + cs.v.AccountID + ")"
		case err == nil && cs.v.ZoneID != "":
			credential = "works (an API token that lists the Logpush jobs of zone " + cs.v.ZoneID + ")"
		case err == nil:
			credential = "works (user API token)"
		case errors.Is(err, cloudflare.ErrNoAccountToCheck):
			fmt.Fprintf(env.Stderr, "preflight: %s not checked: GET /user/tokens/verify answers 401, as it does for an account-owned API token, "+
				"and the batch names no account or zone to check it with\n", what)
		case errors.As(err, &ae) && (ae.Kind == cloudflare.Transient || ae.Kind == cloudflare.RateLimited):
			status := "no answer"
			if ae.HTTPStatus > 0 {
				status = fmt.Sprint(ae.HTTPStatus)
			}
			fmt.Fprintf(env.Stderr, "preflight: %s not checked: API unavailable (%s) after retries: %v\n", what, status, err)
		default:
			problems++
			the := "the " + what
			if cs.rows > 0 && (cs.name != "" || len(scan.creds) > 1) {
				the += " (" + linesOf(cs.line, cs.rows) + ")"
			}
			fmt.Fprintf(env.Stderr, "preflight: %s does not work: %v\n", the, err)
		}
		works = append(works, what+" "+credential)
	}

	readers, err := destination.NewMux(ctx, destination.OptionsFor(storage))
	if err != nil {
		return notStarted(err)
	}
	probeAll(ctx, readers, scan.buckets)
	for _, b := range scan.buckets {
		if b.err == nil {
			continue
		}
		if warning, ok := withoutListBucket(b.err); ok {
			fmt.Fprintf(env.Stderr, "preflight: warning: %s: %s\n", linesOf(b.line, b.rows), warning)
			continue
		}
		problems++
		fmt.Fprintf(env.Stderr, "preflight: %s: %v\n", linesOf(b.line, b.rows), b.err)
	}
	if problems > 0 {
		return &exitError{code: 2, err: fmt.Errorf("preflight found %s; nothing was enqueued (--skip-preflight to enqueue anyway)", words.Plural(int64(problems), "problem"))}
	}
	if len(works) == 1 {
		fmt.Fprintf(env.Stdout, "preflight: %s; %s readable\n", works[0], words.Plural(int64(len(scan.buckets)), "bucket"))
		return nil
	}
	for _, w := range works {
		fmt.Fprintln(env.Stdout, "preflight: "+w)
	}
	fmt.Fprintf(env.Stdout, "preflight: %d Cloudflare credentials checked; %s readable\n", len(works), words.Plural(int64(len(scan.buckets)), "bucket"))
	return nil
}

// credLabel names a credential for preflight's lines: its name, or the
// environment's for the default.
func credLabel(name string) string {
	if name == "" {
		return "default (environment)"
	}
	return strconv.Quote(name)
}

// credScan is one credential the batch uses, and its check.
type credScan struct {
	name string // "" for the default
	line int    // first input line that uses it
	rows int
	// accounts are its rows' first distinct account ids, to check an
	// account-owned API token against; zones its rows' first zone id.
	accounts, zones []string
	seen            map[string]bool

	skip  bool // not in the set: the line check says why
	token bool
	v     cloudflare.Verification
	err   error
}

// batchScan is what preflight checks of a batch.
type batchScan struct {
	// buckets are the buckets and containers whose challenge files the
	// worker will read.
	buckets []*bucketCheck
	// creds are the credentials the batch's rows name, in the order of
	// their first row, each with its rows' accounts and zones.
	creds []*credScan
}

// scanBatch lists the buckets and containers whose challenge files the
// worker will read, and the credentials of the batch with their rows'
// first account ids. Bad lines are skipped: the line check reports them.
func scanBatch(open producer.Opener, in input.Options) (batchScan, error) {
	rc, err := open()
	if err != nil {
		return batchScan{}, err
	}
	defer rc.Close()
	seen := map[destination.Location]*bucketCheck{}
	var scan batchScan
	creds := map[string]*credScan{}
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
		cs := creds[row.Credential]
		if cs == nil {
			cs = &credScan{name: row.Credential, line: row.Line, seen: map[string]bool{}}
			creds[row.Credential] = cs
			scan.creds = append(scan.creds, cs)
		}
		cs.rows++
		switch {
		case row.Scope == tasks.ScopeAccount && !cs.seen[row.ScopeID] && len(cs.accounts) < maxAccountChecks:
			cs.seen[row.ScopeID] = true
			cs.accounts = append(cs.accounts, row.ScopeID)
		case row.Scope == tasks.ScopeZone && len(cs.zones) == 0:
			cs.zones = append(cs.zones, row.ScopeID)
		}
		c := row.Conf
		if !c.NeedsChallenge() || !c.TokenReadable() {
			continue
		}
		as, err := tasks.ParseReadAs(row.Extra)
		if err != nil {
			continue // the line check reports it
		}
		loc := destination.For(c, as, preflightKey(c))
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

// withoutListBucket returns the warning for a probe that S3 denied the way
// it denies a missing object to a reader without s3:ListBucket: the worker
// onboards such a bucket when the reader has s3:GetObject (the challenge
// file is read once written; until then a denied read is "not yet"), so it
// is no reason to stop the batch. It is one when the storage says that
// s3:GetObject itself is what the reader lacks.
func withoutListBucket(err error) (string, bool) {
	var de *destination.Error
	if !errors.As(err, &de) || !de.MaybeAbsent || strings.Contains(err.Error(), "perform: s3:GetObject") {
		return "", false
	}
	who := "the reading identity"
	if de.Principal != "" {
		who += " " + de.Principal
	}
	return fmt.Sprintf("s3:ListBucket missing on arn:aws:s3:::%s for %s: S3 then answers access denied for a challenge file "+
		"not written yet, so the worker polls through denials until the file appears; grant s3:ListBucket to tell the two apart (and to list the bucket once for the reads before several challenges). "+
		"If s3:GetObject on arn:aws:s3:::%s/* is missing too, these rows fail at --poll-deadline (the bucket's others at once)",
		de.Location.Bucket, who, de.Location.Bucket), true
}

// linesOf names the rows of a finding: its first line, and how many more.
func linesOf(line, rows int) string {
	if rows <= 1 {
		return fmt.Sprintf("line %d", line)
	}
	return fmt.Sprintf("line %d and %s", line, words.Plural(rows-1, "more row"))
}
