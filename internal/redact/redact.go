package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces every secret value.
const Mask = "REDACTED"

// secretNames matches the names of query parameters whose values are
// secrets: S3/R2/Kinesis keys, the Azure SAS signature, BigQuery's
// credentials (a service-account key), header_* values (Splunk, Datadog,
// SentinelOne, HTTPS auth headers), and the names integrations use for
// keys and tokens, with any prefix (dd-api-key, x-api-key, X-License-Key,
// X-Insert-Key, New Relic's Api-Key, IBM Cloud Logs' ibm_api_key,
// client_secret, refresh_token, x-amz-security-token).
const secretNames = `secret-access-key|access-key-id|sig|signature|x-amz-signature|` +
	`credentials|(?:[a-z0-9]+[-_])*(?:api[-_]?key|apikey|license[-_]?key|insert[-_]?key|access[-_]?token|token|password|passwd|secret)`

// secretParam matches a secret query parameter in any text. The key part is
// kept so that an operator can still see what was configured.
var secretParam = regexp.MustCompile(`(?i)((?:^|[?&;\s"'])(?:` + secretNames + `|header_[^=&\s"']*)=)[^&\s"']*`)

// secretName matches a whole (decoded) parameter name that SecretParam
// reports: every header_* name, whatever characters follow.
var secretName = regexp.MustCompile(`(?is)^(?:` + secretNames + `|header_.*)$`)

// userinfo matches credentials embedded in a URL authority: scheme://user:pass@host.
var userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s"'?#]+@`)

// sumoPath matches the collector code of a Sumo Logic HTTP source, which is
// itself the credential: sumo://host/receiver/v1/http/<code>.
var sumoPath = regexp.MustCompile(`(?i)(sumo://[^/\s"']+/receiver/v1/http/)[^?\s"'&]+`)

// String returns s with every secret it recognises replaced by Mask.
// It is safe on any text, parseable or not, and never panics.
//
// Each expression runs only when the text it is about to run on holds the
// substrings every match of it contains (see mayHaveSecretParam,
// mayHaveUserinfo and mayHaveSumoPath), so the result is always that of
// running all three; most text has no secret and costs a few scans.
func String(s string) string {
	if s == "" {
		return s
	}
	if mayHaveSecretParam(s) {
		s = secretParam.ReplaceAllString(s, "${1}"+Mask)
	}
	if mayHaveUserinfo(s) {
		s = userinfo.ReplaceAllString(s, "${1}"+Mask+"@")
	}
	if mayHaveSumoPath(s) {
		s = sumoPath.ReplaceAllString(s, "${1}"+Mask)
	}
	return s
}

// The pre-checks below are necessary conditions for a match: each looks
// for literal text that every match of its expression contains, so a false
// answer proves there is no match. Punctuation ('=', ':', '/', '@', '_')
// has no case variants. Under (?i) Go folds letters by Unicode simple case
// folding, where two ASCII letters have non-ASCII variants ('k' matches
// U+212A KELVIN SIGN, 's' matches U+017F LONG S): so the checks compare
// letters ASCII-case-insensitively only when s is all ASCII, and otherwise
// rely on punctuation alone.

// mayHaveSecretParam reports whether secretParam can match s. Every match
// holds "=" after the parameter name, and every name alternative of
// secretNames and header_ holds one of paramAnchors (secret-access-key,
// access-key-id, the *key names: "key"; sig, signature, x-amz-signature:
// "sig"; access_token, token: "token"; password, passwd: "passw"; secret:
// "secret"; header_*: "header_"; credentials: "credentials"), in any ASCII
// case.
func mayHaveSecretParam(s string) bool {
	if strings.IndexByte(s, '=') < 0 {
		return false
	}
	if !isASCII(s) {
		return true
	}
	for i := 0; i < len(s); i++ {
		var anchors []string
		switch lower(s[i]) {
		case 'k':
			anchors = anchorsK
		case 's':
			anchors = anchorsS
		case 't':
			anchors = anchorsT
		case 'p':
			anchors = anchorsP
		case 'h':
			anchors = anchorsH
		case 'c':
			anchors = anchorsC
		default:
			continue
		}
		for _, a := range anchors {
			if hasPrefixFold(s[i:], a) {
				return true
			}
		}
	}
	return false
}

// paramAnchors, by first letter: every secret parameter name holds one.
var (
	anchorsK = []string{"key"}
	anchorsS = []string{"sig", "secret"}
	anchorsT = []string{"token"}
	anchorsP = []string{"passw"}
	anchorsH = []string{"header_"}
	anchorsC = []string{"credentials"}
)

// mayHaveUserinfo reports whether userinfo can match s: every match holds
// "://" and then "@" (the expression is case-sensitive).
func mayHaveUserinfo(s string) bool {
	i := strings.Index(s, "://")
	return i >= 0 && strings.IndexByte(s[i+3:], '@') >= 0
}

// mayHaveSumoPath reports whether sumoPath can match s: every match holds
// "sumo://" in any case, and so "://" whatever s holds.
func mayHaveSumoPath(s string) bool {
	if !strings.Contains(s, "://") {
		return false
	}
	if !isASCII(s) {
		return true
	}
	for i := 0; i+len("sumo://") <= len(s); i++ {
		if lower(s[i]) == 's' && hasPrefixFold(s[i:], "sumo://") {
			return true
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hasPrefixFold reports whether s starts with prefix (lower-case ASCII),
// in any ASCII case.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if lower(s[i]) != prefix[i] {
			return false
		}
	}
	return true
}

// SecretParam reports whether a query parameter of a destination_conf,
// named name (already percent-decoded), carries a secret that String masks
// when it is written plainly as name=value.
func SecretParam(name string) bool {
	return secretName.MatchString(name)
}

// Values returns s with each of the given literal secrets replaced by Mask.
// Use it where a secret is known by value (an API token, a challenge token)
// and could have been echoed back by a remote system. Empty secrets and
// secrets shorter than 4 bytes are ignored, so that short values do not mask
// ordinary text.
func Values(s string, secrets ...string) string {
	for _, v := range secrets {
		if len(v) < 4 {
			continue
		}
		s = strings.ReplaceAll(s, v, Mask)
	}
	return s
}

// Secrets returns the values String masks in conf, as written and
// URL-decoded, so that they can be masked wherever they appear alone: in a
// file name derived from the conf's path, or quoted back by a remote system.
// String decides what a secret is: the secrets are the spans of conf that
// its redacted form replaces with Mask.
func Secrets(conf string) []string {
	red := String(conf)
	if red == conf || strings.Contains(conf, Mask) {
		return nil
	}
	pieces := strings.Split(red, Mask)
	if !strings.HasPrefix(conf, pieces[0]) {
		return nil
	}
	var secrets []string
	pos := len(pieces[0])
	for i, next := range pieces[1:] {
		end := len(conf)
		if next != "" || i < len(pieces)-2 {
			j := strings.Index(conf[pos:], next)
			if j < 0 {
				return secrets
			}
			end = pos + j
		}
		secret := conf[pos:end]
		secrets = append(secrets, secret)
		if dec, err := url.QueryUnescape(secret); err == nil && dec != secret {
			secrets = append(secrets, dec)
		}
		pos = end + len(next)
	}
	return secrets
}
