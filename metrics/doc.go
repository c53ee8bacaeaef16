// Package metrics defines the Prometheus metrics of the pipeline, all under
// the logpush_onboard_ prefix: Cloudflare API calls, task and destination
// outcomes, polling, storage reads, the shared API budget and the time from
// enqueue to outcome. Labels are bounded (endpoint, status code, task type,
// outcome, destination type); never a zone, account, bucket or destination.
package metrics
