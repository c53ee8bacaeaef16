// Package tasks holds the wire names, payloads and destination_conf parsing
// shared by the producer and the worker.
//
// Everything here crosses a process boundary: task type names, queue names
// and scope values are read by dashboards and scripts, payloads are stored
// in Redis between stages, and a destination_conf is sent byte-identical to
// Cloudflare at every stage of the flow. Changing any of them is a wire
// change.
//
// ParseConf checks a destination_conf before anything is enqueued and tells
// the rest of the flow what it needs: whether the destination needs an
// ownership challenge (Conf.NeedsChallenge), whether the worker can read the
// challenge file itself (Conf.TokenReadable), where that file lives (Bucket,
// Conf.Key) and how to show the conf without its secrets (Conf.Redacted).
package tasks
