// Package metrics defines the Prometheus metrics of the pipeline, all under
// the logpush_onboard_ prefix: Cloudflare API calls, task and destination
// outcomes, polling, storage reads, the shared API budget and the time from
// enqueue to outcome; and the job health gauges of `jobs --watch`
// (JobHealth: health, dataset, destination type). Labels are bounded
// (endpoint, status code, task type, outcome, health, dataset, destination
// type, and the credential of API calls and budget
// waits: a name from the credentials file, "" for the default credential,
// so that the number of series is bounded by configuration, never by input
// rows); never a zone, account, bucket or destination, never a secret.
package metrics
