// Package simulator is a local stand-in for Cloudflare's Logpush ownership and
// job API, an http.Handler used by the demo, the end-to-end tests and the
// benchmarks.
//
// It plays Cloudflare's side of the flow:
//
//	POST {zones|accounts}/{id}/logpush/ownership
//	    answers result.filename at once and, WriteDelay (+ jitter) later,
//	    writes a signed JWT-shaped token into the destination through
//	    Config.Write. As on Cloudflare the file is one fixed object per
//	    resolved path, <path>/ownership-challenge.txt ({DATE} filled as
//	    YYYYMMDD): destinations that share a path share the file, and each
//	    challenge overwrites it. The token's claims name the scope, the id
//	    and a digest of the conf, and expire after TokenTTL (no iat). The
//	    claims' names are the simulator's own: with Config.OpaqueTokens the
//	    token has nothing to decode.
//	POST .../logpush/ownership/validate
//	    accepts any unexpired token issued for that (scope, id,
//	    byte-identical destination_conf), or with Config.LatestTokenOnly
//	    only the latest; another destination's token, an expired or a
//	    superseded one is 400 code 1002 (Stats.ForeignTokens and
//	    Stats.StaleTokens count them).
//	POST .../logpush/validate/destination/exists
//	    exists is true when a job of the zone or account has the
//	    byte-identical destination_conf.
//	POST .../logpush/jobs
//	    creates a job, kept in memory per zone or account with increasing
//	    ids, once ownership_challenge is an unexpired token of the
//	    destination (only for destinations that need a challenge: AWS S3,
//	    GCS, Azure, Sumo Logic, file; not R2, S3-compatible or HTTP-like);
//	    at most Config.MaxJobsPerScope jobs, and one per dataset and
//	    destination_conf unless Config.AllowDuplicateJobs.
//	GET .../logpush/jobs
//	    lists the jobs of the zone or account, oldest first.
//	GET .../logpush/datasets/{dataset}/fields
//	    a subset of the dataset's fields, name to description (fields.go);
//	    a dataset of the other scope is 400 code 1001.
//	GET /zones
//	    Config.Zones, filtered by account.id, status and name, by name,
//	    per_page 5 to 50 with result_info (zones.go); without Zone Read
//	    (Config.ZoneRead) 403 code 9109 or no zones, both being possible.
//	GET .../logpush/jobs/{job_id}
//	    one job; 404 code 1000 for a job the zone or account does not have.
//	PUT .../logpush/jobs/{job_id}
//	    updates a job: a new destination_conf that needs a challenge needs
//	    that conf's unexpired token (400 code 1002); the dataset and kind
//	    cannot change (400 code 1001); what the body leaves out is reset
//	    (output_options replaced whole); Stats.JobMoves counts each job's
//	    conf changes. AddJobJSON seeds jobs for tests.
//	GET /user/tokens/verify, GET /user
//	    credential checks.
//
// Answers follow the shapes of Cloudflare's published schema
// (success/errors/messages/result envelopes, 4XX with success=false and
// result=null) and its known error codes: 7000 no route, 7003 invalid object
// identifier, 6003 invalid request headers (with error_chain 6102/6103/6111/
// 9106), 10000 authentication error, 1002 incorrect ownership challenge
// (validate and job creation), 1004 not allowed (403; here the job limit). Codes Cloudflare does
// not document for this API are the simulator's choice: 1001 for an invalid
// request body, 1003 for a second job of a dataset to a destination, 7001 for a wrong
// method, 1015 for 429 answers (Cloudflare sends 971, which the schema's
// minimum of 1000 forbids) and 10002 for injected 5xx answers.
//
// Paths are served with or without the /client/v4 prefix, so the base URL of
// a client can be http://host/client/v4 as against Cloudflare.
//
// It can also misbehave on purpose: a fraction of calls answered 5xx or 429,
// Cloudflare's per-credential rate limit with its penalty, and hostile
// answers (HTML, truncated, huge, slow, redirect, no result, not JSON). Stats
// counts what happened, including the most requests any credential made in
// one RateWindow, so tests can prove a client fleet stayed under the limit.
package simulator
