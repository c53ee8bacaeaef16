package credentials

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// ErrInvalid is wrapped by every error of Cloudflare.Validate.
var ErrInvalid = errors.New("invalid cloudflare credentials")

// Cloudflare is a credential that authenticates Cloudflare API calls, either with an API token (preferred)
// or with the legacy account email and global API key. Exactly one of the
// two modes must be set.
//
// String, GoString, Format, LogValue and MarshalJSON never reveal the
// values, so a Cloudflare credential (or a Config holding one) can be printed or
// logged by mistake without leaking it.
type Cloudflare struct {
	// APIToken is sent as "Authorization: Bearer <token>".
	APIToken string
	// Email is sent as X-Auth-Email, together with APIKey.
	Email string
	// APIKey is the global API key, sent as X-Auth-Key.
	APIKey string
}

// Digest names the credential without revealing it (a SHA-256 prefix), for
// Redis keys shared by every process that uses it, such as its API budget.
func (c Cloudflare) Digest() string {
	sum := sha256.Sum256([]byte(c.APIToken + "\x00" + c.Email + "\x00" + c.APIKey))
	return hex.EncodeToString(sum[:8])
}

// FromEnv reads CLOUDFLARE_API_TOKEN, CLOUDFLARE_EMAIL and
// CLOUDFLARE_API_KEY through getenv (os.Getenv when nil), trimming the
// surrounding whitespace that secret files and shell heredocs leave. It does
// not validate: call Validate.
func FromEnv(getenv func(string) string) Cloudflare {
	if getenv == nil {
		getenv = os.Getenv
	}
	return Cloudflare{
		APIToken: strings.TrimSpace(getenv("CLOUDFLARE_API_TOKEN")),
		Email:    strings.TrimSpace(getenv("CLOUDFLARE_EMAIL")),
		APIKey:   strings.TrimSpace(getenv("CLOUDFLARE_API_KEY")),
	}
}

// Validate reports whether exactly one authentication mode is set (a token,
// or an email with a key) and every value set can be sent as a header.
func (c Cloudflare) Validate() error {
	token, email, key := c.APIToken != "", c.Email != "", c.APIKey != ""
	switch {
	case token && (email || key):
		return fmt.Errorf("%w: set either an api token or an email and api key, not both", ErrInvalid)
	case token:
		return checkHeaderValue("api token", c.APIToken)
	case email && key:
		if err := checkHeaderValue("email", c.Email); err != nil {
			return err
		}
		return checkHeaderValue("api key", c.APIKey)
	case email:
		return fmt.Errorf("%w: email set without an api key", ErrInvalid)
	case key:
		return fmt.Errorf("%w: api key set without an email", ErrInvalid)
	default:
		return fmt.Errorf("%w: none set", ErrInvalid)
	}
}

// checkHeaderValue rejects whitespace and control characters: a value
// pasted with a newline would otherwise fail every request at the transport
// and look like a network problem.
func checkHeaderValue(name, v string) error {
	if strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("%w: %s contains whitespace or control characters", ErrInvalid, name)
	}
	return nil
}

// mode names the authentication mode without revealing any value.
func (c Cloudflare) mode() string {
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

// String describes the authentication mode, never a value.
func (c Cloudflare) String() string { return "credentials.Cloudflare{mode: " + c.mode() + "}" }

// GoString is String, so that %#v does not print the fields.
func (c Cloudflare) GoString() string { return c.String() }

// Format prints String for every verb, so that no verb (%d, %x, %+v...)
// reaches the fields.
func (c Cloudflare) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// LogValue logs the authentication mode only.
func (c Cloudflare) LogValue() slog.Value {
	return slog.GroupValue(slog.String("mode", c.mode()))
}

// MarshalJSON encodes the authentication mode only.
func (c Cloudflare) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Mode string `json:"mode"`
	}{c.mode()})
}
