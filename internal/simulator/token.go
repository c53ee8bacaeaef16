package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
)

// tokenHeader is base64url(`{"alg":"HS256","typ":"JWT"}`), the JOSE header
// of the tokens.
const tokenHeader = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

// token returns a token for the destination conf of t issued at now. By
// default it is JWT-shaped: base64url(header).base64url(claims).base64url(
// HMAC-SHA256). As Cloudflare documents, the claims bind it to the object
// type, the object id and the destination_conf, and it expires after
// TokenTTL; there is no iat. The claims' names are ours (Cloudflare does not
// document them): with Config.OpaqueTokens the token is random text with
// nothing to decode, looked up when presented. Either alphabet (A-Z a-z
// 0-9 - _ .) fits the schema's ownership_challenge pattern. The caller
// holds s.mu.
func (s *Simulator) token(t target, conf string, now time.Time, jti uint64) string {
	exp := now.Add(s.cfg.TokenTTL)
	if s.cfg.OpaqueTokens {
		// Unique by jti, unguessable by the MAC: 32 bytes, base64url.
		var raw [8]byte
		binary.BigEndian.PutUint64(raw[:], jti)
		tok := base64.RawURLEncoding.EncodeToString(s.sign(string(raw[:]) + t.scope + t.id + conf))
		s.issued[tok] = issued{key: destKey(t, conf), exp: exp}
		return tok
	}
	raw, _ := json.Marshal(cloudflare.Claims{ // cannot fail: strings and integers
		ObjectType:  t.scope,
		ObjectID:    t.id,
		Destination: cloudflare.ConfDigest(conf),
		Exp:         exp.Unix(),
		Jti:         fmt.Sprintf("%016x", jti),
	})
	signed := tokenHeader + "." + base64.RawURLEncoding.EncodeToString(raw)
	return signed + "." + base64.RawURLEncoding.EncodeToString(s.sign(signed))
}

// issued is what the simulator knows of an opaque token.
type issued struct {
	key [32]byte // destKey of the destination it was issued for
	exp time.Time
}

func (s *Simulator) sign(signed string) []byte {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(signed))
	return mac.Sum(nil)
}

// tokenCheck is what validate finds of a presented token.
type tokenCheck int

const (
	tokenBad        tokenCheck = iota // not one of ours: malformed or a wrong signature
	tokenForeign                      // ours, for another destination
	tokenExpired                      // ours, for this destination, expired
	tokenSuperseded                   // ours, for this destination, not its latest (Config.LatestTokenOnly)
	tokenValid
)

// stale reports whether c is a token of this destination that no longer
// validates.
func (c tokenCheck) stale() bool { return c == tokenExpired || c == tokenSuperseded }

// check verifies token against the destination conf of t at now: its
// signature and claims, or for an opaque token what was issued. Any
// unexpired token issued for that exact (scope, id, conf) is valid, unless
// Config.LatestTokenOnly, which takes only the latest. The caller holds
// s.mu.
func (s *Simulator) check(token string, t target, conf string, now time.Time) tokenCheck {
	key := destKey(t, conf)
	var exp time.Time
	if s.cfg.OpaqueTokens {
		is, ok := s.issued[token]
		switch {
		case !ok:
			return tokenBad
		case is.key != key:
			return tokenForeign
		}
		exp = is.exp
	} else {
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
		}
		exp = time.Unix(c.Exp, 0)
	}
	if !now.Before(exp) {
		return tokenExpired
	}
	if s.cfg.LatestTokenOnly {
		if d := s.dests[key]; d == nil || d.latest != token {
			return tokenSuperseded
		}
	}
	return tokenValid
}
