package worker

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
)

const maxTokenLen = 4096

var (
	errStaleToken = errors.New("token was issued before this challenge")
	errNoToken    = errors.New("not an ownership challenge token (letters, digits and / + . - _, at most 4096)")
)

// parseToken takes the token out of a challenge file. When the token is a
// JWT whose claims carry iat, a token issued before notBefore belongs to an
// earlier challenge (the file name is reused and never deleted).
func parseToken(body []byte, notBefore time.Time) (string, error) {
	tok, err := CleanToken(string(body))
	if err != nil {
		return "", err
	}
	if iat, ok := issuedAt(tok); ok && iat.Before(notBefore.Truncate(time.Second)) {
		return "", errStaleToken
	}
	return tok, nil
}

// CleanToken trims surrounding space from an ownership token and checks it
// against Cloudflare's schema. The error never repeats the token.
func CleanToken(s string) (string, error) {
	tok := strings.TrimSpace(s)
	if tok == "" || len(tok) > maxTokenLen || !cloudflare.IsChallengeText(tok) {
		return "", errNoToken
	}
	return tok, nil
}

func issuedAt(tok string) (time.Time, bool) {
	parts := bytes.Split([]byte(tok), []byte("."))
	if len(parts) != 3 {
		return time.Time{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(string(parts[1]))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		IAT *int64 `json:"iat"`
	}
	if json.Unmarshal(raw, &claims) != nil || claims.IAT == nil {
		return time.Time{}, false
	}
	return time.Unix(*claims.IAT, 0), true
}
