package simulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// TokenIssuer is the iss claim of every token the simulator issues.
const TokenIssuer = "cloudflare-logpush-simulator"

// tokenHeader is base64url(`{"alg":"HS256","typ":"JWT"}`), the JOSE header
// of the tokens.
const tokenHeader = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

// claims are the token's claims; times are Unix seconds, as in a JWT.
type claims struct {
	Iss string `json:"iss"`
	Sub string `json:"sub"` // hex SHA-256 of the destination_conf
	Iat int64  `json:"iat"`
	Exp int64  `json:"exp"`
	Jti string `json:"jti"`
}

// token returns a JWT-like token for conf issued at now:
// base64url(header).base64url(claims).base64url(HMAC-SHA256). Its alphabet
// (A-Z a-z 0-9 - _ .) fits the schema's ownership_challenge pattern.
func (s *Simulator) token(conf string, now time.Time, jti uint64) string {
	sub := sha256.Sum256([]byte(conf))
	raw, _ := json.Marshal(claims{ // cannot fail: strings and integers
		Iss: TokenIssuer,
		Sub: hex.EncodeToString(sub[:]),
		Iat: now.Unix(),
		Exp: now.Add(s.cfg.TokenTTL).Unix(),
		Jti: fmt.Sprintf("%016x", jti),
	})
	signed := tokenHeader + "." + base64.RawURLEncoding.EncodeToString(raw)
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}
