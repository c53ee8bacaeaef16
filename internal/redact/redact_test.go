package redact

import (
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"s3://b/logs?region=us-east-1", "s3://b/logs?region=us-east-1"},
		{"s3://b/p?region=auto&access-key-id=AKIA123&secret-access-key=abc/def+g&endpoint=https://x", "s3://b/p?region=auto&access-key-id=REDACTED&secret-access-key=REDACTED&endpoint=https://x"},
		{"azure://c/p?sp=rw&sv=2020&sig=abc%2Fdef%3D", "azure://c/p?sp=rw&sv=2020&sig=REDACTED"},
		{"splunk://h:8088/services/collector/raw?channel=x&header_Authorization=Splunk%20tok", "splunk://h:8088/services/collector/raw?channel=x&header_Authorization=REDACTED"},
		{"datadog://http-intake.logs.datadoghq.com/v1/input?header_DD-API-KEY=k123", "datadog://http-intake.logs.datadoghq.com/v1/input?header_DD-API-KEY=REDACTED"},
		{"https://u:p@logs.example.com/x", "https://REDACTED@logs.example.com/x"},
		{"sumo://endpoint1.collection.sumologic.com/receiver/v1/http/ZaVnC4dhaV3", "sumo://endpoint1.collection.sumologic.com/receiver/v1/http/REDACTED"},
		{`bad destination "s3://b?secret-access-key=zz"`, `bad destination "s3://b?secret-access-key=REDACTED"`},
		// Prefixed key and token names that integrations use as plain query
		// parameters rather than header_* ones.
		{"datadog://http-intake.logs.datadoghq.com/api/v2/logs?dd-api-key=k123&ddsource=cloudflare", "datadog://http-intake.logs.datadoghq.com/api/v2/logs?dd-api-key=REDACTED&ddsource=cloudflare"},
		{"https://log-api.newrelic.com/log/v1?X-License-Key=lic1&format=cloudflare", "https://log-api.newrelic.com/log/v1?X-License-Key=REDACTED&format=cloudflare"},
		{"https://h/x?x-api-key=k1&X-Insert-Key=k2&client_secret=k3&refresh_token=k4", "https://h/x?x-api-key=REDACTED&X-Insert-Key=REDACTED&client_secret=REDACTED&refresh_token=REDACTED"},
		// BigQuery's service-account key, IBM Cloud Logs' and New Relic's keys.
		{"bq://projects/p/datasets/d/tables/t?credentials=base64:eyJ0eXBlIjoi+/=", "bq://projects/p/datasets/d/tables/t?credentials=REDACTED"},
		{"ibmcl://i.ingress.eu-de.logs.cloud.ibm.com/logs/v1/singles?ibm_api_key=k1", "ibmcl://i.ingress.eu-de.logs.cloud.ibm.com/logs/v1/singles?ibm_api_key=REDACTED"},
		{"https://log-api.newrelic.com/log/v1?Api-Key=k2&format=cloudflare", "https://log-api.newrelic.com/log/v1?Api-Key=REDACTED&format=cloudflare"},
		{"kinesis://s?region=us-east-1&sts-assume-role-arn=arn:aws:iam::123456789012:role/r", "kinesis://s?region=us-east-1&sts-assume-role-arn=arn:aws:iam::123456789012:role/r"},
		// Names that merely end like a secret name are not secrets.
		{"splunk://h/raw?sourcetype=cloudflare:json&channel=c", "splunk://h/raw?sourcetype=cloudflare:json&channel=c"},
	}
	for _, c := range cases {
		if got := String(c.in); got != c.want {
			t.Errorf("String(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

func TestValues(t *testing.T) {
	t.Parallel()
	got := Values("token abcdef and ab", "abcdef", "ab", "")
	if strings.Contains(got, "abcdef") || !strings.Contains(got, " ab") {
		t.Fatalf("Values: %q", got)
	}
}

func TestSecretParam(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"secret-access-key": true, "access-key-id": true, "sig": true, "SIG": true,
		"header_Authorization": true, "header_DD-API-KEY": true, "header_X With Space": true,
		"Api-Key": true, "dd-api-key": true, "credentials": true, "CREDENTIALS": true, "ibm_api_key": true, "X-License-Key": true, "token": true, "client_secret": true,
		"region": false, "endpoint": false, "account-id": false, "sv": false, "sp": false, "se": false,
		"sourcetype": false, "sts-assume-role-arn": false, "sts-external-id": false, "channel": false, "ddsource": false, "signed": false, "": false,
	} {
		if got := SecretParam(name); got != want {
			t.Errorf("SecretParam(%q) = %v, want %v", name, got, want)
		}
	}
}
