// Package credentials holds what a worker authenticates with: the
// Cloudflare credential it calls the API with (an API token, or an email
// with a global API key), a Set of named credentials (LoadFile reads a
// credentials file) that input rows choose by name in their credential
// column, and how it reads challenge files from the destinations' storage.
// None ever prints, logs or encodes a secret: tasks, events, logs and
// metrics carry a credential's name only.
package credentials
