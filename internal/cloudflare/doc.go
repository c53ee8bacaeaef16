// Package cloudflare is the client for the Cloudflare Logpush calls that
// prove ownership of a destination and then create its job, plus a cheap
// credential check.
//
// It sits in the middle of the flow:
//
//	logpush:challenge ──► Client.Challenge  POST {zones|accounts}/{id}/logpush/ownership
//	                      (Cloudflare writes a token file into the destination)
//	logpush:poll      ──► reads result.filename from the destination (not this package),
//	                      then Client.Validate  POST .../logpush/ownership/validate
//	logpush:validate  ──► Client.Validate for a token an operator submitted
//	(creating the job)──► Client.ListJobs   GET  .../logpush/jobs (once per zone)
//	                      Client.CreateJob  POST .../logpush/jobs
//	(plan)            ──► Client.ListZones  GET /zones?account.id=... (page by page)
//	                      Client.Fields     GET .../logpush/datasets/{dataset}/fields
//	(preflight)       ──► Client.VerifyCredential  GET /user/tokens/verify,
//	                      /accounts/{id}/tokens/verify or /user
//
// Every failure is an *APIError whose Kind tells the worker what to do:
// Transient and RateLimited are retried (at least RetryAfter later),
// StaleChallenge asks for a fresh challenge, Auth and Permanent fail the
// destination (code 1004, "not allowed", is Permanent on job creation
// although Cloudflare answers it with 403). Messages taken from Cloudflare are redacted: an
// error never carries the API token or key, an ownership challenge token,
// or a raw destination_conf with its secrets. A Job keeps its raw
// destination_conf, for byte-for-byte comparison: never log that field.
//
// CreateJob is not idempotent (Cloudflare accepts several jobs for one
// destination, a job being scope, id, dataset and conf): look in ListJobs
// before creating, and again before retrying a create that failed
// Transient.
//
// The client never logs. Callers record metrics through Config.Observe,
// which sees one call per HTTP attempt with its endpoint name (a bounded
// label), status code and duration.
package cloudflare
