// Package redact removes secrets from destination_conf strings and from any
// text that may quote one (Cloudflare error messages, logs, reports).
//
// It sits under every place a destination is shown: events, log lines,
// metrics help, error messages and reports never carry a secret-access-key,
// access-key-id, SAS signature, header_* value or a Sumo collector code.
package redact
