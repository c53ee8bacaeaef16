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
