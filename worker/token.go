package worker

import (
	"errors"
	"strings"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
)

const maxTokenLen = 4096

var (
	errNoToken = errors.New("not an ownership challenge token (letters, digits and / + . - _, at most 4096)")
	// errUnchanged: the challenge file is the one the location held before
	// this challenge (another destination's, on a shared path).
	errUnchanged = errors.New("challenge file unchanged since before the challenge")
	// errForeignToken: the file's token names another zone, account or
	// destination_conf.
	errForeignToken = errors.New("challenge file holds another destination's token")
	// errExpiredToken: the file's token has expired.
	errExpiredToken = errors.New("challenge file holds an expired token")
)

// CleanToken trims surrounding space from an ownership token and checks it
// against Cloudflare's schema. The error never repeats the token.
func CleanToken(s string) (string, error) {
	tok := strings.TrimSpace(s)
	if tok == "" || len(tok) > maxTokenLen || !cloudflare.IsChallengeText(tok) {
		return "", errNoToken
	}
	return tok, nil
}
