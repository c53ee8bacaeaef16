// Package credentials holds the Cloudflare credential a worker calls the
// API with: an API token, or an email with a global API key. It never
// prints, logs or encodes the values, only the mode.
package credentials
