package simulator

import (
	"fmt"
	"maps"
)

// RequestKey counts the answers of one endpoint with one status.
type RequestKey struct {
	// Endpoint is one of the Endpoint constants.
	Endpoint string
	// Status is the HTTP status answered; 0 when the call was abandoned
	// (the client gave up on a slow answer, or the simulator closed).
	Status int
}

// Stats are the simulator's counters since New.
type Stats struct {
	// Requests counts answers by endpoint and status.
	Requests map[RequestKey]int
	// RateLimitedInjected counts 429s injected by RateLimitRate.
	RateLimitedInjected int
	// RateLimitedLimit counts 429s of the enforced RateLimit (the request
	// over the limit and those during the penalty).
	RateLimitedLimit int
	// ServerErrorsInjected counts 5xx injected by ErrorRate.
	ServerErrorsInjected int
	// HostileInjected counts hostile answers by kind.
	HostileInjected map[string]int
	// ChallengesIssued counts tokens issued.
	ChallengesIssued int
	// ValidationsOK and ValidationsFailed count validate answers 200 and
	// 1002.
	ValidationsOK, ValidationsFailed int
	// ForeignTokens counts validate calls (among ValidationsFailed) with a
	// token the simulator issued for another destination: a client that
	// reads a shared challenge file carelessly sends the previous
	// destination's token.
	ForeignTokens int
	// StaleTokens counts validate calls (among ValidationsFailed) with a
	// token the simulator issued for this destination that no longer
	// validates: expired, or, with Config.LatestTokenOnly, superseded by a
	// later challenge. A client that takes an earlier challenge's file for
	// its latest sends one.
	StaleTokens int
	// FilesWritten and WriteErrors count delayed writes.
	FilesWritten, WriteErrors int
	// Destinations counts the distinct (scope, id, destination_conf)
	// challenged.
	Destinations int
	// JobsCreated counts the jobs created.
	JobsCreated int
	// JobsRejectedChallenge, JobsRejectedDuplicate and JobsRejectedLimit
	// count job creations refused for a wrong, stale or missing ownership
	// challenge (400 code 1002), a second job to a destination (400 code
	// 1003) and the job limit (403 code 1004).
	JobsRejectedChallenge, JobsRejectedDuplicate, JobsRejectedLimit int
	// JobsUpdated counts the PUTs that changed a job; JobMoves counts, by
	// job id, those that changed its destination_conf.
	JobsUpdated int
	JobMoves    map[int]int
	// MaxInWindow is the most requests any one credential made in any
	// RateWindow (0 when RateWindow is 0). A client that honours the limit
	// keeps it at or below RateLimit.
	MaxInWindow int
}

// Count returns the answers of endpoint with status.
func (s Stats) Count(endpoint string, status int) int {
	return s.Requests[RequestKey{Endpoint: endpoint, Status: status}]
}

// Total returns the answers of endpoint, any status.
func (s Stats) Total(endpoint string) int {
	n := 0
	for k, v := range s.Requests {
		if k.Endpoint == endpoint {
			n += v
		}
	}
	return n
}

// Calls returns the answers of every endpoint: the API calls made.
func (s Stats) Calls() int {
	n := 0
	for _, v := range s.Requests {
		n += v
	}
	return n
}

func newStats() Stats {
	return Stats{Requests: map[RequestKey]int{}, HostileInjected: map[string]int{}, JobMoves: map[int]int{}}
}

func (s Stats) clone() Stats {
	s.Requests = maps.Clone(s.Requests)
	s.HostileInjected = maps.Clone(s.HostileInjected)
	s.JobMoves = maps.Clone(s.JobMoves)
	return s
}

// count records one answer.
func (s *Simulator) count(endpoint string, status int) {
	s.mu.Lock()
	s.stats.Requests[RequestKey{Endpoint: endpoint, Status: status}]++
	s.mu.Unlock()
}

// String summarises the counters on one line, for the demo's report.
func (s Stats) String() string {
	total := 0
	for _, v := range s.Requests {
		total += v
	}
	hostile := 0
	for _, v := range s.HostileInjected {
		hostile += v
	}
	return fmt.Sprintf("%d requests (ownership %d, ownership_validate %d, destination_exists %d, jobs %d, create_job %d, job %d, update_job %d, "+
		"verify %d, account_verify %d, user %d, zones %d, fields %d, unknown %d); "+
		"injected 5xx %d, 429 %d, hostile %d; rate-limit 429 %d; challenges %d, validations %d ok %d failed; "+
		"files written %d, write errors %d; destinations %d; jobs created %d, refused %d challenge %d duplicate %d limit; jobs updated %d; "+
		"max %d requests in a window",
		total, s.Total(EndpointChallenge), s.Total(EndpointValidate), s.Total(EndpointDestinationExists), s.Total(EndpointJobs),
		s.Total(EndpointCreateJob), s.Total(EndpointJob), s.Total(EndpointUpdateJob), s.Total(EndpointVerify), s.Total(EndpointAccountVerify), s.Total(EndpointUser), s.Total(EndpointZones), s.Total(EndpointFields), s.Total(EndpointUnknown),
		s.ServerErrorsInjected, s.RateLimitedInjected, hostile, s.RateLimitedLimit, s.ChallengesIssued,
		s.ValidationsOK, s.ValidationsFailed, s.FilesWritten, s.WriteErrors, s.Destinations,
		s.JobsCreated, s.JobsRejectedChallenge, s.JobsRejectedDuplicate, s.JobsRejectedLimit, s.JobsUpdated, s.MaxInWindow)
}
