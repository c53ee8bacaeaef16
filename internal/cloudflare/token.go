package cloudflare

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// ChallengeFileName is the fixed name of the challenge file Cloudflare
// writes into a destination's path: one object per resolved path, shared by
// every destination that pushes there and overwritten by each challenge
// (developers.cloudflare.com logs/logpush/logpush-job/logpush-ownership-challenge).
const ChallengeFileName = "ownership-challenge.txt"

// ChallengeFile is the challenge file of a destination whose path inside
// its bucket is prefix, on day now: prefix/ownership-challenge.txt, with
// Cloudflare's {DATE} placeholder filled as YYYYMMDD in UTC.
func ChallengeFile(prefix string, now time.Time) string {
	prefix = strings.Trim(strings.ReplaceAll(prefix, "{DATE}", now.UTC().Format("20060102")), "/")
	if prefix == "" {
		return ChallengeFileName
	}
	return prefix + "/" + ChallengeFileName
}

// TokenTTL is how long an ownership challenge token validates.
const TokenTTL = 7 * 24 * time.Hour

// Claims are what an ownership challenge token binds: Cloudflare documents
// the token as a JWT whose claims name the object type (zone or account),
// the object id, the destination_conf, and an expiry, without naming the
// claims. These names are the simulator's; the worker uses them only to
// rule out a token that plainly names another destination, never to accept
// one (see TokenFor).
type Claims struct {
	// ObjectType is "zone" or "account".
	ObjectType string `json:"object_type,omitempty"`
	// ObjectID is the zone or account id.
	ObjectID string `json:"object_id,omitempty"`
	// Destination is ConfDigest of the destination_conf.
	Destination string `json:"destination,omitempty"`
	// Exp is the expiry, Unix seconds.
	Exp int64 `json:"exp,omitempty"`
	// Jti tells two tokens of one destination apart.
	Jti string `json:"jti,omitempty"`
}

// ConfDigest is the hex SHA-256 of a destination_conf, as Claims carry it.
func ConfDigest(conf string) string {
	sum := sha256.Sum256([]byte(conf))
	return hex.EncodeToString(sum[:])
}

// ParseClaims decodes the payload of a JWT-shaped token without checking
// its signature; ok is false for a token that is not a JWT with a JSON
// payload.
func ParseClaims(token string) (c Claims, ok bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return Claims{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(raw, &c) != nil {
		return Claims{}, false
	}
	return c, true
}

// TokenVerdict is what a token's claims say about one destination.
type TokenVerdict int

const (
	// TokenUnknown: the claims do not say (an opaque token, or claims by
	// other names); only Cloudflare can tell.
	TokenUnknown TokenVerdict = iota
	// TokenForeign: the claims name another zone, account or
	// destination_conf. Sending it to validate would only earn a 1002.
	TokenForeign
	// TokenExpired: the claims' expiry has passed.
	TokenExpired
	// TokenMatches: every claim present names this destination.
	TokenMatches
)

// TokenFor says whether token, by its claims, is for the destination conf of
// scope ("zone" or "account") and id at now. Claims that are absent are not
// held against the token.
func TokenFor(token, scope, id, conf string, now time.Time) TokenVerdict {
	c, ok := ParseClaims(token)
	if !ok || (c.ObjectType == "" && c.ObjectID == "" && c.Destination == "" && c.Exp == 0) {
		return TokenUnknown
	}
	switch {
	case c.ObjectType != "" && c.ObjectType != scope,
		c.ObjectID != "" && !strings.EqualFold(c.ObjectID, id),
		c.Destination != "" && c.Destination != ConfDigest(conf):
		return TokenForeign
	case c.Exp != 0 && !now.Before(time.Unix(c.Exp, 0)):
		return TokenExpired
	}
	return TokenMatches
}

// maxTokenLen caps an ownership challenge token.
const maxTokenLen = 4096

// errNoToken is CleanToken's error: it never repeats the text.
var errNoToken = errors.New("not an ownership challenge token (letters, digits and / + . - _, at most 4096)")

// CleanToken trims surrounding space from an ownership token and checks it
// against Cloudflare's schema. The error never repeats the token.
func CleanToken(s string) (string, error) {
	tok := strings.TrimSpace(s)
	if tok == "" || len(tok) > maxTokenLen || !IsChallengeText(tok) {
		return "", errNoToken
	}
	return tok, nil
}
