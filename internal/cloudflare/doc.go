// Package cloudflare is the client for the two Cloudflare Logpush calls that
// prove ownership of a destination, plus a cheap credential check.
//
// It sits in the middle of the flow:
//
//	logpush:challenge ──► Client.Challenge  POST {zones|accounts}/{id}/logpush/ownership
//	                      (Cloudflare writes a token file into the destination)
//	logpush:poll      ──► reads result.filename from the destination (not this package)
//	logpush:validate  ──► Client.Validate   POST .../logpush/ownership/validate
//
// Every failure is an *APIError whose Kind tells the worker what to do:
// Transient and RateLimited are retried (at least RetryAfter later),
// StaleChallenge asks for a fresh challenge, Auth and Permanent fail the
// destination. Messages taken from Cloudflare are redacted: an error never
// carries the API token or key, an ownership challenge token, or a raw
// destination_conf with its secrets.
//
// The client never logs. Callers record metrics through Config.Observe,
// which sees one call per HTTP attempt with its endpoint name (a bounded
// label), status code and duration.
package cloudflare
