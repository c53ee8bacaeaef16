package redact

import (
	"regexp"
	"strings"
)

// Mask replaces every secret value.
const Mask = "REDACTED"

// secretParam matches query parameters whose values are secrets: S3/R2 keys,
// the Azure SAS signature, header_* values (Splunk, Datadog, New Relic, HTTPS
// auth headers), and the generic names integrations use for tokens.
// The key part is kept so that an operator can still see what was configured.
var secretParam = regexp.MustCompile(`(?i)((?:^|[?&;\s"'])(?:secret-access-key|access-key-id|sig|signature|header_[^=&\s"']*|api[-_]?key|apikey|token|access[-_]?token|password|secret|x-amz-security-token|x-amz-signature|session-token)=)[^&\s"']*`)

// userinfo matches credentials embedded in a URL authority: scheme://user:pass@host.
var userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s"'?#]+@`)

// sumoPath matches the collector code of a Sumo Logic HTTP source, which is
// itself the credential: sumo://host/receiver/v1/http/<code>.
var sumoPath = regexp.MustCompile(`(?i)(sumo://[^/\s"']+/receiver/v1/http/)[^?\s"'&]+`)

// String returns s with every secret it recognises replaced by Mask.
// It is safe on any text, parseable or not, and never panics.
func String(s string) string {
	if s == "" {
		return s
	}
	s = secretParam.ReplaceAllString(s, "${1}"+Mask)
	s = userinfo.ReplaceAllString(s, "${1}"+Mask+"@")
	s = sumoPath.ReplaceAllString(s, "${1}"+Mask)
	return s
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
