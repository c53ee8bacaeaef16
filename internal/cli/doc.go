// Package cli is the logpush-onboard command line: one function per
// subcommand, each with its own flag set whose flags have environment twins
// (REDIS_URL, CLOUDFLARE_API_TOKEN, ...). cmd/logpush-onboard only wires the
// process (signals, exit code) to Run.
package cli
