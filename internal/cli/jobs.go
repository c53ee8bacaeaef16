package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
)

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
