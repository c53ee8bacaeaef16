package cloudflare

import (
	"net/http"

	"github.com/logpush-onboard/logpush-onboard/credentials"
)

// Credentials authenticate API calls (credentials.Cloudflare).
type Credentials = credentials.Cloudflare

// ErrInvalidCredentials is wrapped by every error of Credentials.Validate.
var ErrInvalidCredentials = credentials.ErrInvalid

// CredentialsFromEnv is credentials.FromEnv.
func CredentialsFromEnv(getenv func(string) string) Credentials { return credentials.FromEnv(getenv) }

// applyCredentials sets the authentication headers of c's mode.
func applyCredentials(c Credentials, h http.Header) {
	if c.APIToken != "" {
		h.Set("Authorization", "Bearer "+c.APIToken)
		return
	}
	h.Set("X-Auth-Email", c.Email)
	h.Set("X-Auth-Key", c.APIKey)
}

// hasControl reports whether s holds a control character, or a space when
// allowSpace is false.
func hasControl(s string, allowSpace bool) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b < ' ' || b == 0x7f || (b == ' ' && !allowSpace) {
			return true
		}
	}
	return false
}
