package redact

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// fastPathInputs hold secrets in every form the expressions cover, in
// mixed case, with the Unicode case variants Go's (?i) accepts, and text
// that comes close without a secret.
var fastPathInputs = []string{
	"",
	"s3://b/logs?region=us-east-1",
	"s3://my-logs/http/{DATE}?region=us-east-1",
	"file:///var/tmp/logpush/dest-00042",
	"gs://bucket/path",
	"r2://b/p?account-id=abc",
	"no secret here at all",
	"=",
	"key",
	"a=b",
	"@",
	"://@",
	// Every name alternative of secretParam, in several cases.
	"s3://b/p?region=auto&access-key-id=AKIA123&secret-access-key=abc/def+g&endpoint=https://x",
	"s3://b/p?ACCESS-KEY-ID=AKIA123&Secret-Access-Key=abc",
	"azure://c/p?sp=rw&sv=2020&sig=abc%2Fdef%3D",
	"azure://c/p?SIG=abc&Signature=x&X-Amz-Signature=y",
	"https://h/x?x-amz-signature=aa&signature=bb",
	"https://h/x?api-key=1&api_key=2&apikey=3&APIKEY=4&ApiKey=5",
	"https://h/x?license-key=1&license_key=2&LicenseKey=3&insert-key=4&InsertKey=5",
	"https://h/x?access-token=1&access_token=2&AccessToken=3&TOKEN=4&token=5",
	"https://h/x?password=1&PASSWD=2&PassWord=3&secret=4&SECRET=5",
	"https://h/x?x-api-key=k1&X-Insert-Key=k2&client_secret=k3&refresh_token=k4",
	"https://h/x?my_app-Api-Key=k1&a1_b2-c3_token=k2",
	"splunk://h:8088/services/collector/raw?channel=x&header_Authorization=Splunk%20tok",
	"datadog://http-intake.logs.datadoghq.com/v1/input?header_DD-API-KEY=k123",
	"datadog://h/v1/input?HEADER_X=1&Header_Y=2&header_=3",
	"https://log-api.newrelic.com/log/v1?X-License-Key=lic1&format=cloudflare",
	"datadog://http-intake.logs.datadoghq.com/api/v2/logs?dd-api-key=k123&ddsource=cloudflare",
	"splunk://h/raw?sourcetype=cloudflare:json&channel=c",
	"https://h/x?signed=1&keys=2&tokens=3&monkey=4",
	"token=abc",
	"key=abc",
	"sig=abc;token=def",
	`bad destination "s3://b?secret-access-key=zz"`,
	"quoted 'sig=abc' and \"token=x\" and\ttab secret=y",
	"s3://b?secret-access-key=REDACTED",
	// userinfo.
	"https://u:p@logs.example.com/x",
	"HTTPS://User:Pass@logs.example.com/x",
	"https://logs.example.com/x@y",
	"mail user@example.com, no scheme",
	"https://user@h/x?header_Authorization=Basic%20xyz",
	"https://user:pass1234@logs.example.com/ingest?header_Authorization=Basic%20xyz",
	"x://a@b s://c@d",
	// sumoPath.
	"sumo://endpoint1.collection.sumologic.com/receiver/v1/http/ZaVnC4dhaV3",
	"SUMO://endpoint1.collection.sumologic.com/Receiver/V1/HTTP/ZaVnC4dhaV3",
	"Sumo://e.sumologic.com/receiver/v1/http/code?x=1",
	"sumo://u:p@e.sumologic.com/receiver/v1/http/code",
	"sumo://e.sumologic.com/other/path",
	"xsumo://e/receiver/v1/http/abc",
	// Unicode case variants: U+212A KELVIN SIGN folds to k, U+017F LONG S
	// to s, so these are secrets to (?i).
	"https://h/x?api\u212aey=secret1",
	"https://h/x?\u017fig=secret2",
	"https://h/x?\u017fecret=secret3",
	"\u017fumo://e.sumologic.com/receiver/v1/http/code",
	"\u017fUMO://e/receiver/v1/http/code?token=t",
	"https://h/x?région=eu&token=x",
	"héllo wörld =",
	"https://ü:p@h/x",
}

func TestFastPathSameAsAllExpressions(t *testing.T) {
	t.Parallel()
	for _, in := range fastPathInputs {
		checkFastPath(t, in)
	}
}

// TestFastPathRandom builds texts from fragments that make and break the
// anchors and the expressions.
func TestFastPathRandom(t *testing.T) {
	t.Parallel()
	frags := []string{
		"s3://", "https://", "sumo://", "SuMo://", "\u017fumo://", "://", ":", "/", "@", "=", "&", "?", ";", " ", "\"", "'", "\t",
		"key", "KEY", "K", "\u212aey", "api", "-", "_", "sig", "SIG", "\u017fig", "token", "ToKeN", "passw", "PASSWD", "ord",
		"secret", "SeCrEt", "credentials", "CrEdEnTiAlS", "credential", "header_", "HEADER_", "receiver/v1/http/", "RECEIVER/V1/HTTP/", "host", "x", "1", "é", "REDACTED",
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		var b strings.Builder
		for range 1 + r.IntN(12) {
			b.WriteString(frags[r.IntN(len(frags))])
		}
		checkFastPath(t, b.String())
		if t.Failed() {
			return
		}
	}
}

func FuzzFastPath(f *testing.F) {
	for _, in := range fastPathInputs {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in string) { checkFastPath(t, in) })
}

// allExpressions is String without the pre-checks: every expression runs.
// Tests hold String to it.
func allExpressions(s string) string {
	if s == "" {
		return s
	}
	s = secretParam.ReplaceAllString(s, "${1}"+Mask)
	s = userinfo.ReplaceAllString(s, "${1}"+Mask+"@")
	s = sumoPath.ReplaceAllString(s, "${1}"+Mask)
	return s
}

// checkFastPath holds String to allExpressions on in, and each pre-check
// to its expression: a pre-check that says no must mean no match.
func checkFastPath(t *testing.T, in string) {
	t.Helper()
	if got, want := String(in), allExpressions(in); got != want {
		t.Errorf("String(%q)\n got %q\nwant %q (all expressions)", in, got, want)
	}
	for _, c := range []struct {
		name  string
		may   func(string) bool
		match bool
	}{
		{"secretParam", mayHaveSecretParam, secretParam.MatchString(in)},
		{"userinfo", mayHaveUserinfo, userinfo.MatchString(in)},
		{"sumoPath", mayHaveSumoPath, sumoPath.MatchString(in)},
	} {
		if c.match && !c.may(in) {
			t.Errorf("%s matches %q but its pre-check says it cannot", c.name, in)
		}
	}
}

func BenchmarkString(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"plain", "s3://my-logs/http/{DATE}?region=us-east-1"},
		{"file", "file:///var/tmp/logpush/dest-00042"},
		{"secret", "https://logs.example.com/ingest?header_Authorization=Bearer%20abc123&tags=env:prod"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = String(bc.in)
			}
		})
		b.Run(bc.name+"/all", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = allExpressions(bc.in)
			}
		})
	}
}
