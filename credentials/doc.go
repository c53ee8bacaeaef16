// Package credentials holds what a worker authenticates with: the
// Cloudflare credential it calls the API with (an API token, or an email
// with a global API key), and how it reads challenge files from the
// destinations' storage. Neither ever prints, logs or encodes a secret.
package credentials
