package cli

import (
	"flag"
	"fmt"
	"log/slog"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/input"
)

// credentialsFlag is --credentials FILE (env CREDENTIALS_FILE): the named
// Cloudflare credentials that input rows name in their credential column.
// Rows, tasks and events carry the names; every process reads the secrets
// from the same file.
type credentialsFlag struct {
	path string
}

func (c *credentialsFlag) register(fs *flag.FlagSet, env Env) {
	fs.StringVar(&c.path, "credentials", env.Getenv("CREDENTIALS_FILE"),
		"YAML or JSON file of named Cloudflare credentials (name: {token: ...} or {email: ..., key: ...}, optional api_rate and budget_key) that rows name in a credential column; CLOUDFLARE_API_TOKEN stays the credential of rows that name none; env CREDENTIALS_FILE")
}

// load returns the credentials: the file's (none without --credentials)
// and the environment's as the default. Warnings about the file go to log,
// or to stderr when log is nil. Errors are usage errors (exit 2) and name
// the file, the credential and the field, never a secret.
//
// Without a file, a broken environment credential is left to the checks
// each command made before credentials files (the set has no default
// then), so that a command that needs none, such as enqueue --dry-run,
// runs as it did.
func (c credentialsFlag) load(env Env, log *slog.Logger) (*credentials.Set, error) {
	set := &credentials.Set{}
	if c.path != "" {
		s, err := credentials.LoadFile(c.path)
		if err != nil {
			return nil, &exitError{code: 2, err: fmt.Errorf("-credentials: %w", err)}
		}
		set = s
		for _, w := range set.Warnings {
			if log != nil {
				log.Warn(w)
			} else {
				fmt.Fprintln(env.Stderr, "warning: "+w)
			}
		}
	}
	if err := set.SetDefault(cloudflare.CredentialsFromEnv(env.Getenv)); err != nil && c.path != "" {
		return nil, &exitError{code: 2, err: fmt.Errorf("%w (CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY: unset them to have no default)", err)}
	}
	return set, nil
}

// inputCredentials is what the line check needs of set: the names, and
// whether a row may name none. Without a credentials file every row may:
// the environment's credential is checked as it always was.
func inputCredentials(set *credentials.Set) *input.CredentialNames {
	return &input.CredentialNames{Names: set.Names(), Default: set.HasDefault() || set.File == ""}
}
