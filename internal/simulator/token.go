package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
)

// tokenHeader is base64url(`{"alg":"HS256","typ":"JWT"}`), the JOSE header
// of the tokens.
const tokenHeader = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

// token returns a JWT-shaped token for the destination conf of t issued at
// now: base64url(header).base64url(claims).base64url(HMAC-SHA256). As
// Cloudflare documents, the claims bind it to the object type, the object
// id and the destination_conf, and it expires after TokenTTL; there is no
// iat. Its alphabet (A-Z a-z 0-9 - _ .) fits the schema's
// ownership_challenge pattern.
func (s *Simulator) token(t target, conf string, now time.Time, jti uint64) string {
	raw, _ := json.Marshal(cloudflare.Claims{ // cannot fail: strings and integers
		ObjectType:  t.scope,
		ObjectID:    t.id,
		Destination: cloudflare.ConfDigest(conf),
		Exp:         now.Add(s.cfg.TokenTTL).Unix(),
		Jti:         fmt.Sprintf("%016x", jti),
	})
	signed := tokenHeader + "." + base64.RawURLEncoding.EncodeToString(raw)
	return signed + "." + base64.RawURLEncoding.EncodeToString(s.sign(signed))
}

func (s *Simulator) sign(signed string) []byte {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(signed))
	return mac.Sum(nil)
}

// tokenCheck is what validate finds of a presented token.
type tokenCheck int

const (
	tokenBad     tokenCheck = iota // not one of ours: malformed or a wrong signature
	tokenForeign                   // ours, for another destination
	tokenExpired                   // ours, for this destination, expired
	tokenValid
)

// check verifies token's signature and claims against the destination conf
// of t at now. Any unexpired token issued for that exact (scope, id, conf)
// is valid, not only the latest.
func (s *Simulator) check(token string, t target, conf string, now time.Time) tokenCheck {
	i := strings.LastIndexByte(token, '.')
	if i < 0 {
		return tokenBad
	}
	sig, err := base64.RawURLEncoding.DecodeString(token[i+1:])
	if err != nil || !hmac.Equal(sig, s.sign(token[:i])) {
		return tokenBad
	}
	c, ok := cloudflare.ParseClaims(token)
	switch {
	case !ok:
		return tokenBad
	case c.ObjectType != t.scope || c.ObjectID != t.id || c.Destination != cloudflare.ConfDigest(conf):
		return tokenForeign
	case !now.Before(time.Unix(c.Exp, 0)):
		return tokenExpired
	}
	return tokenValid
}
