package tasks

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
)

// Secrets used in the confs below; none may appear in Redacted, String,
// GoString, a log line or an error message.
const (
	secAK     = "AKIAIOSFODNN7EXAMPLE"
	secSK     = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	secSKEnc  = "wJalrXUtnFEMI%2FK7MDENG%2FbPxRfiCYEXAMPLEKEY"
	secSig    = "sv2SIGNATUREvalue0123456789%3D"
	secSumo   = "ZaVnC4dhaV3SUMOCODE0123456789"
	secSplunk = "11111111-2222-3333-4444-555555555555"
	secDD     = "0123456789abcdef0123456789abcdef"
	secNR     = "NRAK-NEWRELICKEY0123456789"
	secBQ     = "base64:eyJ0eXBlIjoic2VydmljZV9hY2NvdW50Iiwi"
	secIBM    = "IBMCLOUDAPIKEY0123456789abc"
	secS1     = "Bearer%200e6d94e8c-5792-4ad1-be3c"
	secBasic  = "dXNlcjpwYXNzd29yZA"
	secPass   = "hunter2hunter2"
)

var allSecrets = []string{secAK, secSK, secSKEnc, "wJalrXUtnFEMI", secSig, "SIGNATUREvalue", secSumo, secSplunk,
	secDD, secNR, secBasic, secPass, secBQ, "eyJ0eXBlIjoic2VydmljZV9h", secIBM, "0e6d94e8c-5792"}

func TestParseConfValid(t *testing.T) {
	t.Parallel()
	cases := []struct {
		raw  string
		want Conf // Raw and Query are not compared here
	}{
		// AWS S3.
		{"s3://mybucket/logs?region=us-west-2", Conf{Type: TypeS3, Bucket: "mybucket", Prefix: "logs", Region: "us-west-2"}},
		{"s3://mybucket?region=us-east-1", Conf{Type: TypeS3, Bucket: "mybucket", Region: "us-east-1"}},
		{"s3://mybucket/?region=us-east-1", Conf{Type: TypeS3, Bucket: "mybucket", Region: "us-east-1"}},
		{"s3://my.dotted.bucket/a/b/c/?region=eu-central-1&sse=AES256", Conf{Type: TypeS3, Bucket: "my.dotted.bucket", Prefix: "a/b/c", Region: "eu-central-1"}},
		{"s3://mybucket/logs/{DATE}?region=us-east-1&sse=AES256", Conf{Type: TypeS3, Bucket: "mybucket", Prefix: "logs/{DATE}", Region: "us-east-1"}},
		{"S3://Legacy_Bucket/My%20Logs?region=us-east-1", Conf{Type: TypeS3, Bucket: "Legacy_Bucket", Prefix: "My Logs", Region: "us-east-1"}},
		// AWS S3 with an access key pair: Cloudflare writes with the keys.
		{"s3://b12/p?region=eu-west-1&access-key-id=" + secAK + "&secret-access-key=" + secSKEnc, Conf{Type: TypeS3, Bucket: "b12", Prefix: "p", Region: "eu-west-1"}},
		// AWS GovCloud, as Cloudflare requires it: through the S3-compatible endpoint.
		{"s3://b12/p?region=us-gov-west-1&endpoint=s3.us-gov-west-1.amazonaws.com&access-key-id=" + secAK + "&secret-access-key=" + secSKEnc,
			Conf{Type: TypeS3, Bucket: "b12", Prefix: "p", Region: "us-gov-west-1", Endpoint: "s3.us-gov-west-1.amazonaws.com"}},
		// S3-compatible: endpoint= as a URL or, as Cloudflare documents it, a host.
		{"s3://b12/p?region=auto&access-key-id=" + secAK + "&secret-access-key=" + secSKEnc + "&endpoint=https://acct.r2.cloudflarestorage.com",
			Conf{Type: TypeS3, Bucket: "b12", Prefix: "p", Region: "auto", Endpoint: "https://acct.r2.cloudflarestorage.com"}},
		{"s3://space/logs?region=sfo2&access-key-id=" + secAK + "&secret-access-key=" + secSKEnc + "&endpoint=sfo2.digitaloceanspaces.com",
			Conf{Type: TypeS3, Bucket: "space", Prefix: "logs", Region: "sfo2", Endpoint: "sfo2.digitaloceanspaces.com"}},
		{"s3://space/logs?endpoint=minio.internal:9000", Conf{Type: TypeS3, Bucket: "space", Prefix: "logs", Endpoint: "minio.internal:9000"}},
		// R2.
		{"r2://bkt/p/{DATE}?account-id=023e105f4ecef8ad9ca31a8372d0c353&access-key-id=" + secAK + "&secret-access-key=" + secSKEnc,
			Conf{Type: TypeR2, Bucket: "bkt", Prefix: "p/{DATE}", Account: "023e105f4ecef8ad9ca31a8372d0c353"}},
		// GCS.
		{"gs://bucket/path", Conf{Type: TypeGCS, Bucket: "bucket", Prefix: "path"}},
		{"gs://bucket", Conf{Type: TypeGCS, Bucket: "bucket"}},
		{"gs://my_bucket.example.com/a/{DATE}/b", Conf{Type: TypeGCS, Bucket: "my_bucket.example.com", Prefix: "a/{DATE}/b"}},
		// Azure: the short form Cloudflare's examples use, and the full SAS URL.
		{"azure://container/path?sp=rw&sv=2021-06-08&sr=c&sig=" + secSig, Conf{Type: TypeAzure, Bucket: "container", Prefix: "path"}},
		{"azure://myblobcontainer/logs/{DATE}?sv=2021&sig=" + secSig, Conf{Type: TypeAzure, Bucket: "myblobcontainer", Prefix: "logs/{DATE}"}},
		{"azure://acct01.blob.core.windows.net/cont-1/dir/sub?sv=2021-06-08&ss=b&srt=o&sp=w&sig=" + secSig,
			Conf{Type: TypeAzure, Bucket: "cont-1", Prefix: "dir/sub", Account: "acct01"}},
		{"azure://acct01.blob.core.windows.net/cont-1?sv=2021-06-08&sig=" + secSig, Conf{Type: TypeAzure, Bucket: "cont-1", Account: "acct01"}},
		{"azure://acct01.privatelink.blob.core.windows.net/cont-1/x?sig=" + secSig, Conf{Type: TypeAzure, Bucket: "cont-1", Prefix: "x", Account: "acct01"}},
		{"azure://acct01.blob.core.chinacloudapi.cn/cont-1/x?sig=" + secSig, Conf{Type: TypeAzure, Bucket: "cont-1", Prefix: "x", Account: "acct01"}},
		// Sumo Logic.
		{"sumo://endpoint1.collection.sumologic.com/receiver/v1/http/" + secSumo, Conf{Type: TypeSumo}},
		// HTTP-like.
		{"splunk://splunk.example.com:8088/services/collector/raw?channel=0f0e0d0c-2222-3333-4444-555555555555&insecure-skip-verify=false&sourcetype=cloudflare:json&header_Authorization=Splunk%20" + secSplunk,
			Conf{Type: TypeSplunk}},
		{"datadog://http-intake.logs.datadoghq.com/api/v2/logs?header_DD-API-KEY=" + secDD + "&ddsource=cloudflare", Conf{Type: TypeDatadog}},
		{"datadog://http-intake.logs.datadoghq.eu/api/v2/logs?dd-api-key=" + secDD, Conf{Type: TypeDatadog}},
		// BigQuery, Kinesis, IBM Cloud Logs, SentinelOne.
		{"bq://projects/my-proj/datasets/logs/tables/http?credentials=" + secBQ, Conf{Type: TypeBigQuery}},
		{"bq://projects/p/datasets/d/tables/t?credentials=url:%7B%22type%22%7D", Conf{Type: TypeBigQuery}},
		{"kinesis://my-stream?region=us-east-1&sts-assume-role-arn=arn:aws:iam::123456789012:role/logpush", Conf{Type: TypeKinesis, Region: "us-east-1"}},
		{"kinesis://my-stream?region=eu-west-1&access-key-id=" + secAK + "&secret-access-key=" + secSKEnc, Conf{Type: TypeKinesis, Region: "eu-west-1"}},
		{"ibmcl://0123-abcd.ingress.eu-de.logs.cloud.ibm.com/logs/v1/singles?ibm_api_key=" + secIBM, Conf{Type: TypeIBMCloudLog}},
		{"sentinelone://ingest.us1.sentinelone.net/services/collector/raw?sourcetype=marketplace-cloudflare-latest&header_Authorization=" + secS1, Conf{Type: TypeSentinelOne}},
		{"https://log-api.newrelic.com/log/v1?Api-Key=" + secNR + "&format=cloudflare", Conf{Type: TypeHTTPS}},
		{"https://logs.example.com/ingest?header_Authorization=Basic%20" + secBasic, Conf{Type: TypeHTTPS}},
		{"https://user:" + secPass + "@logs.example.com/ingest", Conf{Type: TypeHTTPS}},
		{"HTTPS://logs.example.com", Conf{Type: TypeHTTPS}},
		// file: the simulator's and the demo's destinations.
		{"file:///tmp/logpush/dest-1", Conf{Type: TypeFile, Prefix: "tmp/logpush/dest-1"}},
		{"file:///tmp/logpush/dest-1/", Conf{Type: TypeFile, Prefix: "tmp/logpush/dest-1"}},
		{"file:///", Conf{Type: TypeFile}},
	}
	for _, tc := range cases {
		t.Run(redactForName(tc.raw), func(t *testing.T) {
			t.Parallel()
			c, err := ParseConf(tc.raw)
			if err != nil {
				t.Fatalf("ParseConf: %v", err)
			}
			if c.Raw != tc.raw {
				t.Errorf("Raw changed: %q", c.Redacted())
			}
			if fields(c) != fields(tc.want) {
				t.Errorf("got  %s\nwant %s", fields(c), fields(tc.want))
			}
			if c.Query == nil {
				t.Errorf("Query is nil")
			}
			assertNoSecret(t, "Redacted", c.Redacted())
		})
	}
}

// fields shows a Conf's parsed fields (its String method redacts Raw).
func fields(c Conf) string {
	return fmt.Sprintf("{Type:%q Bucket:%q Prefix:%q Region:%q Endpoint:%q Account:%q}", c.Type, c.Bucket, c.Prefix, c.Region, c.Endpoint, c.Account)
}

// redactForName makes a subtest name without secrets.
func redactForName(raw string) string {
	c := Conf{Raw: raw}
	return c.Redacted()
}

func TestParseConfQuery(t *testing.T) {
	t.Parallel()
	c, err := ParseConf("splunk://h:8088/services/collector/raw?channel=abc&sourcetype=cloudflare:json&header_Authorization=Splunk%20tok")
	if err != nil {
		t.Fatal(err)
	}
	want := url.Values{"channel": {"abc"}, "sourcetype": {"cloudflare:json"}, "header_Authorization": {"Splunk tok"}}
	if fmt.Sprint(c.Query) != fmt.Sprint(want) {
		t.Errorf("Query = %v, want %v", c.Query, want)
	}
}

func TestParseConfInvalid(t *testing.T) {
	t.Parallel()
	long := "s3://bucket/" + strings.Repeat("a", 5000) + "?region=us-east-1"
	cases := []struct {
		name, raw, want string // want: the whole message after "destination_conf: " if it starts with "=", else a substring
	}{
		{"empty", "", "=is empty"},
		{"too long", long, fmt.Sprintf("=too long: %d bytes, limit 4096", len(long))},
		{"invalid utf8", "s3://b\xffb/x?region=us-east-1", "=is not valid UTF-8"},
		{"leading space", " s3://bucket?region=us-east-1", "=has leading or trailing whitespace"},
		{"trailing newline", "s3://bucket?region=us-east-1\n", "=has leading or trailing whitespace"},
		{"trailing nbsp", "s3://bucket?region=us-east-1\u00a0", "=has leading or trailing whitespace"},
		{"control", "s3://bucket?region=us-east-1&x=\x01", "=contains a control character (U+0001) at byte 31"},
		{"del", "s3://bucket\x7f?region=us-east-1", "control character (U+007F)"},
		{"inner space", "s3://bucket/my logs?region=us-east-1", "whitespace (U+0020) at byte 14: percent-encode it"},
		{"zero width", "s3://bucket/\u200blogs?region=us-east-1", "invisible format character (U+200B)"},
		{"no scheme", "mybucket/logs", "=missing scheme: want <scheme>://..., such as s3://bucket/path?region=us-east-1"},
		{"scheme without slashes", "s3:mybucket?region=us-east-1", "missing scheme"},
		{"empty scheme", "://mybucket", "missing scheme"},
		{"bad scheme chars", "s 3://b", "whitespace"},
		{"unknown scheme", "ftp://host/path", `=unknown scheme "ftp" (want s3, gs, azure, sumo, r2, https, datadog, splunk, bq, kinesis, ibmcl, sentinelone, file)`},
		{"no newrelic scheme", "newrelic://log-api.newrelic.com/log/v1?header_X-Insert-Key=" + secNR, `=unknown scheme "newrelic": New Relic is https://log-api.newrelic.com/log/v1?Api-Key=...&format=cloudflare`},
		{"http is not https", "http://logs.example.com/x", `unknown scheme "http"`},
		{"long scheme truncated", strings.Repeat("x", 100) + "://h", `unknown scheme "xxxxxxxxxxxxxxxxxxxx..."`},
		{"fragment", "https://h/x#frag", "must not contain '#'"},
		{"bad escape", "s3://bucket/%zz?region=us-east-1", "=is not a valid URL: invalid percent-escape (want '%' and two hex digits)"},
		{"bad port", "https://host:port/x", "=is not a valid URL: invalid port"},
		{"bad query escape", "s3://bucket?region=us-east-1&x=%G1", "=has an invalid query string: invalid percent-escape (want '%' and two hex digits)"},
		{"semicolon", "s3://bucket?region=us-east-1;sse=AES256", "';' is not a separator"},
		// s3
		{"s3 no bucket", "s3:///logs?region=us-east-1", "=missing bucket name (want s3://bucket/path?region=us-east-1)"},
		{"s3 short bucket", "s3://ab/logs?region=us-east-1", "=invalid bucket name: 2 characters, want 3 to 255"},
		{"s3 bad char", "s3://my{bucket}/logs?region=us-east-1", "=is not a valid URL: invalid character in the host"},
		{"s3 bad char 2", "s3://my$bucket/logs?region=us-east-1", "invalid bucket name: invalid character '$'"},
		{"s3 leading dash", "s3://-bucket?region=us-east-1", "must start and end with a letter or digit"},
		{"s3 trailing dot", "s3://bucket.?region=us-east-1", "must start and end with a letter or digit"},
		{"s3 port", "s3://bucket:443/x?region=us-east-1", "=bucket name must not have a port"},
		{"s3 userinfo", "s3://" + secAK + ":" + secPass + "@bucket/x?region=us-east-1", "must not contain user information"},
		{"s3 no region", "s3://mybucket/logs", "=region= is required for AWS S3 (S3-compatible storage needs endpoint= instead)"},
		{"s3 empty region", "s3://mybucket/logs?region=", "=region= is empty"},
		{"s3 two regions", "s3://mybucket/logs?region=us-east-1&region=eu-west-1", "=region= is given 2 times, want once"},
		{"s3 bad region", "s3://mybucket/logs?region=us%2Feast", "region= has an invalid character at position 3"},
		{"s3 empty endpoint", "s3://mybucket/logs?region=auto&endpoint=", "=endpoint= is empty"},
		{"s3 endpoint scheme", "s3://mybucket/logs?region=auto&endpoint=ftp://x", "endpoint= must be a host or an http(s) URL"},
		{"s3 endpoint no host", "s3://mybucket/logs?region=auto&endpoint=https://", "endpoint= has no host"},
		{"s3 govcloud without endpoint", "s3://b12/p?region=us-gov-west-1", "=region=us-gov-west-1 is AWS GovCloud, which Cloudflare reaches only as S3-compatible storage: add endpoint=s3.us-gov-west-1.amazonaws.com, access-key-id= and secret-access-key="},
		{"s3 china", "s3://b12/p?region=cn-north-1", "=region=cn-north-1 is an AWS China region, which Cloudflare Logpush does not support"},
		{"s3 key without secret", "s3://b12/p?region=us-east-1&access-key-id=" + secAK, "=access-key-id= and secret-access-key= must be given together"},
		{"s3 empty key", "s3://b12/p?region=us-east-1&access-key-id=&secret-access-key=" + secSKEnc, "=access-key-id= or secret-access-key= is empty"},
		// bq, kinesis, ibmcl, sentinelone
		{"bq bad path", "bq://projects/p/tables/t?credentials=" + secBQ, "=want bq://projects/<project>/datasets/<dataset>/tables/<table>?credentials=base64:..."},
		{"bq no credentials", "bq://projects/p/datasets/d/tables/t", "=credentials= is required for BigQuery: the service-account key, base64: or url: encoded"},
		{"bq raw credentials", "bq://projects/p/datasets/d/tables/t?credentials=eyJ0eXBlIjoic2VydmljZV9h", "=credentials= must start with base64: or url:"},
		{"kinesis no stream", "kinesis://?region=us-east-1&sts-assume-role-arn=arn:aws:iam::123456789012:role/r", "missing stream name"},
		{"kinesis no region", "kinesis://s1?sts-assume-role-arn=arn:aws:iam::123456789012:role/r", "=region= is required for Kinesis"},
		{"kinesis china", "kinesis://s1?region=cn-northwest-1&sts-assume-role-arn=arn:aws-cn:iam::123456789012:role/r", "is an AWS China region"},
		{"kinesis no auth", "kinesis://s1?region=us-east-1", "=kinesis needs sts-assume-role-arn= (recommended) or access-key-id= and secret-access-key="},
		{"ibmcl other host", "ibmcl://logs.example.com/logs/v1/singles?ibm_api_key=" + secIBM, "=host must be <instance>.ingress.<region>.logs.cloud.ibm.com"},
		{"ibmcl no key", "ibmcl://i.ingress.eu-de.logs.cloud.ibm.com/logs/v1/singles", "=ibm_api_key= is required for IBM Cloud Logs"},
		{"sentinelone no auth", "sentinelone://ingest.us1.sentinelone.net/services/collector/raw?sourcetype=x", "=header_Authorization= is required for SentinelOne (the HEC token, URL-encoded)"},
		// r2
		{"r2 no account", "r2://bkt/p?access-key-id=" + secAK + "&secret-access-key=" + secSKEnc, "=account-id= is required for R2"},
		{"r2 bucket too long", "r2://" + strings.Repeat("b", 64) + "/p?account-id=x", "invalid bucket name: 64 characters, want 3 to 63"},
		// gs
		{"gs no bucket", "gs:///path", "=missing bucket name (want gs://bucket/path)"},
		{"gs bad bucket", "gs://buck!et/path", "invalid bucket name: invalid character '!'"},
		// azure
		{"azure no container", "azure://?sig=" + secSig, "missing container"},
		{"azure no sig", "azure://container/path?sp=rw&sv=2021-06-08", "missing the SAS signature (sig=)"},
		{"azure empty sig", "azure://container/path?sig=", "missing the SAS signature"},
		{"azure two sigs", "azure://container/path?sig=" + secSig + "&sig=" + secSig, "=sig= is given 2 times, want once"},
		{"azure not blob host", "azure://logs.example.com/c/p?sig=" + secSig, "host is neither a container name nor a blob endpoint"},
		{"azure bad account", "azure://My_Account.blob.core.windows.net/c1/p?sig=" + secSig, "invalid storage account name: want lower-case letters and digits only"},
		{"azure account only", "azure://acct01.blob.core.windows.net/?sig=" + secSig, "missing container after the account host"},
		{"azure port", "azure://acct01.blob.core.windows.net:443/c1?sig=" + secSig, "host must not have a port"},
		{"azure short container", "azure://ab/p?sig=" + secSig, "invalid container name: 2 characters, want 3 to 63"},
		{"azure userinfo", "azure://u:" + secPass + "@container/p?sig=" + secSig, "must not contain user information"},
		// sumo
		{"sumo no host", "sumo:///receiver/v1/http/" + secSumo, "=missing host (want sumo://host/path)"},
		{"sumo other path", "sumo://endpoint1.collection.sumologic.com/" + secSumo, "path must be /receiver/v1/http/<collector code>"},
		{"sumo empty code", "sumo://endpoint1.collection.sumologic.com/receiver/v1/http/", "path must be /receiver/v1/http/"},
		// http-like
		{"https no host", "https:///ingest", "=missing host (want https://host/path)"},
		{"datadog no host", "datadog://?header_DD-API-KEY=" + secDD, "missing host (want datadog://host/path)"},
		// file
		{"file relative", "file://tmp/dir", "=file needs an absolute path and no host: file:///dir"},
		{"file empty", "file://", "file needs an absolute path"},
		// Secrets the redactor could not mask are refused, never shown.
		{"encoded secret name", "s3://b12/p?endpoint=x&access-key-id=a&secret%2Daccess%2Dkey=" + secSK, `the value of "secret-access-key" cannot be masked when shown`},
		{"quote in secret", "https://h/x?header_Authorization=Basic'" + secBasic, `the value of "header_Authorization" cannot be masked`},
		{"quote in userinfo", "https://us'er:" + secPass + "@h/x", "the user information cannot be masked"},
		{"at in userinfo", "https://us@er:" + secPass + "@h/x", "the user information cannot be masked"},
		{"quote in sumo code", "sumo://h.sumologic.com/receiver/v1/http/ab'" + secSumo, "the collector code cannot be masked"},
		{"ampersand in sumo code", "sumo://h.sumologic.com/receiver/v1/http/ab&" + secSumo, "the collector code cannot be masked"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := ParseConf(tc.raw)
			if err == nil {
				t.Fatalf("ParseConf accepted it: %s", fields(c))
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "destination_conf" {
				t.Fatalf("error %T %v, want a *FieldError for destination_conf", err, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "destination_conf: ") {
				t.Errorf("message %q does not start with the field", msg)
			}
			if exact, ok := strings.CutPrefix(tc.want, "="); ok {
				if fe.Msg != exact {
					t.Errorf("message\n got %q\nwant %q", fe.Msg, exact)
				}
			} else if !strings.Contains(fe.Msg, tc.want) {
				t.Errorf("message %q does not contain %q", fe.Msg, tc.want)
			}
			if fe.Msg != strings.ToLower(fe.Msg[:1])+fe.Msg[1:] {
				t.Errorf("message %q is not lower-case", fe.Msg)
			}
			if len(tc.raw) > 8 && strings.Contains(msg, tc.raw) {
				t.Errorf("message quotes the conf: %q", msg)
			}
			assertNoSecret(t, "error", msg)
			if c.Raw != "" || c.Type != "" || c.Query != nil {
				t.Errorf("a failed parse returned a non-zero Conf")
			}
		})
	}
}

func TestNeedsChallengeTokenReadable(t *testing.T) {
	t.Parallel()
	cases := []struct {
		raw                      string
		needsChallenge, readable bool
	}{
		{"s3://b12/logs?region=us-west-2", true, true},
		{"s3://b12/logs?region=auto&endpoint=https://acct.r2.cloudflarestorage.com&access-key-id=a&secret-access-key=b", false, false},
		{"s3://b12/logs?endpoint=sfo2.digitaloceanspaces.com", false, false},
		{"gs://bucket/path", true, true},
		{"azure://container/path?sig=x", true, true},
		{"azure://acct01.blob.core.windows.net/container/path?sig=x", true, true},
		{"sumo://endpoint1.collection.sumologic.com/receiver/v1/http/CODE", true, false},
		{"file:///tmp/d", true, true},
		{"r2://bkt/p?account-id=a&access-key-id=b&secret-access-key=c", false, false},
		{"https://logs.example.com/ingest", false, false},
		{"datadog://http-intake.logs.datadoghq.com/api/v2/logs?header_DD-API-KEY=k", false, false},
		{"splunk://h:8088/services/collector/raw?channel=c&header_Authorization=Splunk%20t", false, false},
		{"s3://b12/logs?region=us-west-2&access-key-id=a&secret-access-key=b", false, false},
		{"https://log-api.newrelic.com/log/v1?Api-Key=k&format=cloudflare", false, false},
		{"bq://projects/p/datasets/d/tables/t?credentials=base64:e30=", false, false},
		{"kinesis://s1?region=us-east-1&sts-assume-role-arn=arn:aws:iam::123456789012:role/r", false, false},
		{"ibmcl://i.ingress.eu-de.logs.cloud.ibm.com/logs/v1/singles?ibm_api_key=k", false, false},
		{"sentinelone://ingest.us1.sentinelone.net/services/collector/raw?header_Authorization=Bearer%20t", false, false},
	}
	for _, tc := range cases {
		c, err := ParseConf(tc.raw)
		if err != nil {
			t.Fatalf("%s: %v", redactForName(tc.raw), err)
		}
		if got := c.NeedsChallenge(); got != tc.needsChallenge {
			t.Errorf("%s: NeedsChallenge = %v, want %v", c, got, tc.needsChallenge)
		}
		if got := c.TokenReadable(); got != tc.readable {
			t.Errorf("%s: TokenReadable = %v, want %v", c, got, tc.readable)
		}
		if c.TokenReadable() && !c.NeedsChallenge() {
			t.Errorf("%s: readable without a challenge", c)
		}
	}
	if (Conf{}).NeedsChallenge() || (Conf{}).TokenReadable() {
		t.Errorf("the zero Conf needs a challenge")
	}
}

func TestKey(t *testing.T) {
	t.Parallel()
	cases := []struct {
		raw, filename, want string
	}{
		// The documented answer: relative to the bucket.
		{"s3://mybucket/logs?region=us-east-1", "logs/challenge-filename.txt", "logs/challenge-filename.txt"},
		// The reported answer: with the bucket in front.
		{"s3://mybucket/logs?region=us-east-1", "mybucket/logs/challenge-filename.txt", "logs/challenge-filename.txt"},
		{"s3://mybucket/logs?region=us-east-1", "/logs/challenge.txt", "logs/challenge.txt"},
		{"s3://mybucket/logs?region=us-east-1", "/mybucket/logs/challenge.txt", "logs/challenge.txt"},
		{"s3://mybucket?region=us-east-1", "challenge.txt", "challenge.txt"},
		{"s3://mybucket?region=us-east-1", "mybucket/challenge.txt", "challenge.txt"},
		{"s3://mybucket/a/b?region=us-east-1", "a/b/ownership-challenge-1.txt", "a/b/ownership-challenge-1.txt"},
		// The path starts with the bucket's name.
		{"s3://logs/logs?region=us-east-1", "logs/challenge.txt", "logs/challenge.txt"},
		{"s3://logs/logs?region=us-east-1", "logs/logs/challenge.txt", "logs/challenge.txt"},
		{"s3://logs/logs/2024?region=us-east-1", "logs/2024/challenge.txt", "logs/2024/challenge.txt"},
		{"s3://logs/logs/2024?region=us-east-1", "logs/logs/2024/challenge.txt", "logs/2024/challenge.txt"},
		// A name that merely starts like the bucket is not stripped.
		{"s3://mybucket/logs?region=us-east-1", "mybucketx/challenge.txt", "mybucketx/challenge.txt"},
		// {DATE} in the path.
		{"s3://mybucket/logs/{DATE}?region=us-east-1", "logs/20240523/challenge.txt", "logs/20240523/challenge.txt"},
		{"s3://mybucket/logs/{DATE}?region=us-east-1", "mybucket/logs/20240523/challenge.txt", "logs/20240523/challenge.txt"},
		{"s3://logs/logs/{DATE}?region=us-east-1", "logs/20240523/challenge.txt", "logs/20240523/challenge.txt"},
		{"s3://logs/logs/{DATE}?region=us-east-1", "logs/logs/{DATE}/challenge.txt", "logs/{DATE}/challenge.txt"},
		{"s3://logs/logs/{DATE}?region=us-east-1", "logs/logs/2024052/challenge.txt", "logs/2024052/challenge.txt"},
		// Other storage.
		{"gs://bucket/path", "path/challenge.txt", "path/challenge.txt"},
		{"gs://bucket/path", "bucket/path/challenge.txt", "path/challenge.txt"},
		{"azure://container/path?sig=x", "container/path/challenge.txt", "path/challenge.txt"},
		{"azure://acct01.blob.core.windows.net/container/path?sig=x", "path/challenge.txt", "path/challenge.txt"},
		// file: the root is the bucket.
		{"file:///tmp/d", "tmp/d/challenge.txt", "tmp/d/challenge.txt"},
		{"file:///tmp/d", "/tmp/d/challenge.txt", "tmp/d/challenge.txt"},
		{"file:///tmp/d", "//tmp/d/challenge.txt", "tmp/d/challenge.txt"},
	}
	for _, tc := range cases {
		c, err := ParseConf(tc.raw)
		if err != nil {
			t.Fatalf("%s: %v", tc.raw, err)
		}
		if got := c.Key(tc.filename); got != tc.want {
			t.Errorf("ParseConf(%q).Key(%q) = %q, want %q", tc.raw, tc.filename, got, tc.want)
		}
	}
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	confs := []string{
		"s3://b12/p?region=auto&access-key-id=" + secAK + "&secret-access-key=" + secSKEnc + "&endpoint=https://acct.r2.cloudflarestorage.com",
		"s3://b12/p?region=auto&access-key-id=" + secAK + "&secret-access-key=" + secSK + "&endpoint=https://acct.r2.cloudflarestorage.com",
		"r2://b12/p/{DATE}?account-id=X&access-key-id=" + secAK + "&secret-access-key=" + secSK,
		"azure://container/path?sp=rw&sv=2021-06-08&sr=c&sig=" + secSig,
		"azure://acct01.blob.core.windows.net/container/path?sv=2021-06-08&sig=" + secSig,
		"sumo://endpoint1.collection.sumologic.com/receiver/v1/http/" + secSumo,
		"splunk://h:8088/services/collector/raw?channel=c&insecure-skip-verify=false&sourcetype=cloudflare:json&header_Authorization=Splunk%20" + secSplunk,
		"datadog://http-intake.logs.datadoghq.com/api/v2/logs?header_DD-API-KEY=" + secDD + "&ddsource=cloudflare",
		"datadog://http-intake.logs.datadoghq.com/api/v2/logs?dd-api-key=" + secDD + "&ddsource=cloudflare",
		"s3://b12/p?region=eu-west-1&access-key-id=" + secAK + "&secret-access-key=" + secSKEnc,
		"bq://projects/p/datasets/d/tables/t?credentials=" + secBQ,
		"kinesis://s1?region=us-east-1&access-key-id=" + secAK + "&secret-access-key=" + secSK,
		"ibmcl://i.ingress.eu-de.logs.cloud.ibm.com/logs/v1/singles?ibm_api_key=" + secIBM,
		"sentinelone://ingest.us1.sentinelone.net/services/collector/raw?sourcetype=x&header_Authorization=" + secS1,
		"https://log-api.newrelic.com/log/v1?Api-Key=" + secNR + "&format=cloudflare",
		"https://log-api.newrelic.com/log/v1?X-License-Key=" + secNR + "&format=cloudflare",
		"https://logs.example.com/ingest?header_Authorization=Basic%20" + secBasic,
		"https://admin:" + secPass + "@logs.example.com/ingest",
	}
	for _, raw := range confs {
		c, err := ParseConf(raw)
		if err != nil {
			t.Fatalf("%s: %v", redactForName(raw), err)
		}
		var logged strings.Builder
		slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "conf", c)
		for name, s := range map[string]string{
			"Redacted": c.Redacted(), "String": c.String(), "%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", c),
			"%#v": fmt.Sprintf("%#v", c), "%s": fmt.Sprintf("%s", c), "slog": logged.String(),
		} {
			assertNoSecret(t, name, s)
			if !strings.Contains(s, "REDACTED") {
				t.Errorf("%s shows nothing masked: %s", name, s)
			}
		}
	}
}

// assertNoSecret fails if s contains one of the test secrets.
func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, sec := range allSecrets {
		if strings.Contains(s, sec) {
			t.Errorf("%s reveals %q…: %s", what, sec[:4], strings.ReplaceAll(s, sec, "<SECRET>"))
		}
	}
}

func TestValidScopeID(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]bool{
		"023e105f4ecef8ad9ca31a8372d0c353":  true,
		"023E105F4ECEF8AD9CA31A8372D0C353":  true,
		"023e105f4ecef8ad9ca31a8372d0c35":   false,
		"023e105f4ecef8ad9ca31a8372d0c3533": false,
		"023e105f4ecef8ad9ca31a8372d0c35g":  false,
		" 023e105f4ecef8ad9ca31a8372d0c35":  false,
		"":                                  false,
	} {
		if got := ValidScopeID(id); got != want {
			t.Errorf("ValidScopeID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestFieldError(t *testing.T) {
	t.Parallel()
	err := error(&FieldError{Field: "destination_conf", Msg: "is empty"})
	if got, want := err.Error(), "destination_conf: is empty"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
