package cloudflare

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
)

// ErrInvalidCredentials is wrapped by every error of Credentials.Validate.
var ErrInvalidCredentials = errors.New("invalid cloudflare credentials")

// Credentials authenticate API calls, either with an API token (preferred)
// or with the legacy account email and global API key. Exactly one of the
// two modes must be set.
//
// String, GoString, Format, LogValue and MarshalJSON never reveal the
// values, so a Credentials (or a Config holding one) can be printed or
// logged by mistake without leaking it.
type Credentials struct {
	// APIToken is sent as "Authorization: Bearer <token>".
	APIToken string
	// Email is sent as X-Auth-Email, together with APIKey.
	Email string
	// APIKey is the global API key, sent as X-Auth-Key.
	APIKey string
}

// Digest names the credential without revealing it (a SHA-256 prefix), for
// Redis keys shared by every process that uses it, such as its API budget.
func (c Credentials) Digest() string {
	sum := sha256.Sum256([]byte(c.APIToken + "\x00" + c.Email + "\x00" + c.APIKey))
	return hex.EncodeToString(sum[:8])
}

// CredentialsFromEnv reads CLOUDFLARE_API_TOKEN, CLOUDFLARE_EMAIL and
// CLOUDFLARE_API_KEY through getenv (os.Getenv when nil), trimming the
// surrounding whitespace that secret files and shell heredocs leave. It does
// not validate: call Validate.
func CredentialsFromEnv(getenv func(string) string) Credentials {
	if getenv == nil {
		getenv = os.Getenv
	}
	return Credentials{
		APIToken: strings.TrimSpace(getenv("CLOUDFLARE_API_TOKEN")),
		Email:    strings.TrimSpace(getenv("CLOUDFLARE_EMAIL")),
		APIKey:   strings.TrimSpace(getenv("CLOUDFLARE_API_KEY")),
	}
}

// Validate reports whether exactly one authentication mode is set (a token,
// or an email with a key) and every value set can be sent as a header.
func (c Credentials) Validate() error {
	token, email, key := c.APIToken != "", c.Email != "", c.APIKey != ""
	switch {
	case token && (email || key):
		return fmt.Errorf("%w: set either an api token or an email and api key, not both", ErrInvalidCredentials)
	case token:
		return checkHeaderValue("api token", c.APIToken)
	case email && key:
		if err := checkHeaderValue("email", c.Email); err != nil {
			return err
		}
		return checkHeaderValue("api key", c.APIKey)
	case email:
		return fmt.Errorf("%w: email set without an api key", ErrInvalidCredentials)
	case key:
		return fmt.Errorf("%w: api key set without an email", ErrInvalidCredentials)
	default:
		return fmt.Errorf("%w: none set", ErrInvalidCredentials)
	}
}

// checkHeaderValue rejects whitespace and control characters: a value
// pasted with a newline would otherwise fail every request at the transport
// and look like a network problem.
func checkHeaderValue(name, v string) error {
	if hasControl(v, false) {
		return fmt.Errorf("%w: %s contains whitespace or control characters", ErrInvalidCredentials, name)
	}
	return nil
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

// mode names the authentication mode without revealing any value.
func (c Credentials) mode() string {
	switch {
	case c.APIToken != "" && c.Email == "" && c.APIKey == "":
		return "api_token"
	case c.APIToken == "" && c.Email != "" && c.APIKey != "":
		return "email_key"
	case c.APIToken == "" && c.Email == "" && c.APIKey == "":
		return "none"
	default:
		return "invalid"
	}
}

// apply sets the authentication headers of the current mode.
func (c Credentials) apply(h http.Header) {
	if c.APIToken != "" {
		h.Set("Authorization", "Bearer "+c.APIToken)
		return
	}
	h.Set("X-Auth-Email", c.Email)
	h.Set("X-Auth-Key", c.APIKey)
}

// String describes the authentication mode, never a value.
func (c Credentials) String() string { return "cloudflare.Credentials{mode: " + c.mode() + "}" }

// GoString is String, so that %#v does not print the fields.
func (c Credentials) GoString() string { return c.String() }

// Format prints String for every verb, so that no verb (%d, %x, %+v...)
// reaches the fields.
func (c Credentials) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// LogValue logs the authentication mode only.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("mode", c.mode()))
}

// MarshalJSON encodes the authentication mode only.
func (c Credentials) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Mode string `json:"mode"`
	}{c.mode()})
}
