package tasks

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/logpush-onboard/logpush-onboard/internal/redact"
)

// FuzzParseConf checks that ParseConf never panics, keeps Raw byte-identical,
// shows no secret in Redacted, and never quotes a conf in an error.
func FuzzParseConf(f *testing.F) {
	for _, s := range []string{
		"s3://mybucket/logs?region=us-west-2",
		"s3://b12/p?region=auto&access-key-id=AK&secret-access-key=SK&endpoint=https://acct.r2.cloudflarestorage.com",
		"s3://b12/p?region=auto&access-key-id=AKIA&secret-access-key=wJal%2Fr&endpoint=sfo2.digitaloceanspaces.com",
		"s3://mybucket/logs/{DATE}?region=us-east-1&sse=AES256",
		"r2://b12/p/{DATE}?account-id=X&access-key-id=AK&secret-access-key=SK",
		"gs://bucket/path",
		"azure://container/path?sp=rw&sv=2021-06-08&sr=c&sig=SIG",
		"azure://acct01.blob.core.windows.net/cont/dir?sv=2021-06-08&ss=b&srt=o&sp=w&sig=SIG%3D",
		"sumo://endpoint1.collection.sumologic.com/receiver/v1/http/CODE",
		"splunk://host:8088/services/collector/raw?channel=UUID&insecure-skip-verify=false&sourcetype=cloudflare:json&header_Authorization=Splunk%20TOKEN",
		"datadog://http-intake.logs.datadoghq.com/api/v2/logs?header_DD-API-KEY=KEY&ddsource=cloudflare",
		"https://log-api.newrelic.com/log/v1?Api-Key=KEY&format=cloudflare",
		"bq://projects/p/datasets/d/tables/t?credentials=base64:KEY",
		"kinesis://s?region=us-east-1&access-key-id=AK&secret-access-key=SK",
		"ibmcl://i.ingress.eu-de.logs.cloud.ibm.com/logs/v1/singles?ibm_api_key=KEY",
		"sentinelone://h/services/collector/raw?header_Authorization=KEY",
		"https://logs.example.com/ingest?header_Authorization=Basic%20X",
		"https://user:secretpass@logs.example.com/ingest",
		"file:///tmp/logpush/dest",
		// Hostile shapes.
		"",
		" s3://b?region=x",
		"ftp://host/x",
		"s3://b12?region=x&secret%2Daccess%2Dkey=secretvalue",
		"https://h/x?header_Authorization=Basic'secretvalue",
		"https://us@er:secretpass@h/x",
		"sumo://h/receiver/v1/http/ab'secretcode",
		"s3://b12?region=x&secret-access-key=secret value",
		"s3://b12?region=x;secret-access-key=secretvalue",
		"s3://b12?region=x#secret-access-key=secretvalue",
		"s3://b12/%zz?secret-access-key=secretvalue",
		"secret://secret",
		"s3://b\xff?region=x",
		"azure://a.blob.core.windows.net/?sig=secret",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := ParseConf(raw)
		if err != nil {
			checkParseError(t, raw, err)
			return
		}
		if c.Raw != raw {
			t.Fatalf("Raw changed")
		}
		if !knownType(c.Type) {
			t.Fatalf("unknown Type %q", c.Type)
		}
		if c.TokenReadable() && !c.NeedsChallenge() {
			t.Fatalf("readable without a challenge")
		}
		if strings.HasPrefix(c.Key("/x/y.txt"), "/") || strings.HasPrefix(c.Key(c.Bucket+"/x"), "/") {
			t.Fatalf("Key starts with /")
		}
		checkRedacted(t, c)
	})
}

// checkParseError checks one error of ParseConf.
func checkParseError(t *testing.T, raw string, err error) {
	t.Helper()
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != confField || fe.Msg == "" {
		t.Fatalf("error %T %q, want a *FieldError for %s", err, err, confField)
	}
	msg := err.Error()
	if strings.Contains(raw, "secret") && strings.Contains(msg, raw) {
		t.Fatalf("error quotes the conf: %q", msg)
	}
	// No long secret-looking value of a secret parameter appears, unless it
	// is also part of a parameter name or the scheme (which may be quoted).
	scheme, _, _ := strings.Cut(raw, "://")
	_, query, _ := strings.Cut(raw, "?")
	names := scheme
	var values []string
	for piece := range strings.SplitSeq(query, "&") {
		k, v, _ := strings.Cut(piece, "=")
		names += "\x00" + k
		if dk, err := url.QueryUnescape(k); err == nil && redact.SecretParam(dk) {
			values = append(values, v)
		}
	}
	for _, v := range values {
		if len(v) >= 16 && alnum(v) && !strings.Contains(names, v) && strings.Contains(msg, v) {
			t.Fatalf("error shows a secret value: %q", msg)
		}
	}
}

func alnum(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) {
			return false
		}
	}
	return true
}

// checkRedacted checks that Redacted shows no part of a secret: it finds the
// secrets of c structurally (the values of secret query parameters, the
// user information, the Sumo collector code), blanks them out of Raw to get a
// skeleton, and requires every unmasked stretch of Redacted to be part of
// that skeleton.
func checkRedacted(t *testing.T, c Conf) {
	t.Helper()
	raw := c.Raw
	skel := []byte(raw)
	blank := func(from, to int) {
		for i := from; i < to; i++ {
			skel[i] = 0
		}
	}
	var secrets []string
	// Query: the values of secret parameters, split as url.ParseQuery does.
	if q := strings.IndexByte(raw, '?'); q >= 0 {
		off := q + 1
		for piece := range strings.SplitSeq(raw[q+1:], "&") {
			k, v, hasValue := strings.Cut(piece, "=")
			if dk, err := url.QueryUnescape(k); err == nil && redact.SecretParam(dk) && hasValue {
				start := off + len(k) + 1
				blank(start, start+len(v))
				secrets = append(secrets, v)
			}
			off += len(piece) + 1
		}
	}
	// Authority and path, as url.Parse splits them.
	hostStart := strings.Index(raw, "://") + 3
	end := len(raw)
	if q := strings.IndexByte(raw, '?'); q >= 0 {
		end = q
	}
	hostEnd := end
	if i := strings.IndexByte(raw[hostStart:end], '/'); i >= 0 {
		hostEnd = hostStart + i
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("accepted conf does not parse: %v", err)
	}
	if u.User != nil {
		at := strings.LastIndexByte(raw[hostStart:hostEnd], '@')
		if at < 0 {
			t.Fatalf("user information without '@'")
		}
		blank(hostStart, hostStart+at)
		secrets = append(secrets, raw[hostStart:hostStart+at])
	}
	if c.Type == TypeSumo {
		if !strings.EqualFold(raw[hostEnd:min(end, hostEnd+len(sumoPath))], sumoPath) {
			t.Fatalf("accepted Sumo conf without the literal %s path", sumoPath)
		}
		blank(hostEnd+len(sumoPath), end)
		secrets = append(secrets, raw[hostEnd+len(sumoPath):end])
	}
	red := c.Redacted()
	if len(secrets) > 0 && !strings.Contains(red, redact.Mask) {
		t.Fatalf("conf with secrets shows no mask")
	}
	skeleton := string(skel)
	for seg := range strings.SplitSeq(strings.ReplaceAll(red, redact.Mask, "\x00"), "\x00") {
		if !strings.Contains(skeleton, seg) {
			t.Fatalf("Redacted shows part of a secret: %q", seg)
		}
	}
	// The values themselves, decoded, are not shown either (unless they also
	// occur outside the secrets).
	for _, v := range secretValues(c) {
		if len(v) >= 4 && strings.Contains(red, v) && !strings.Contains(skeleton, v) {
			t.Fatalf("Redacted shows a secret value")
		}
	}
}

// secretValues returns the decoded values of c's secret query parameters.
func secretValues(c Conf) []string {
	var vs []string
	for k, v := range c.Query {
		if redact.SecretParam(k) {
			vs = append(vs, v...)
		}
	}
	return vs
}
