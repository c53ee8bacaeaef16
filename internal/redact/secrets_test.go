package redact

import (
	"slices"
	"testing"
)

func TestSecretsTable(t *testing.T) {
	t.Parallel()
	cases := []struct {
		conf string
		want []string
	}{
		{"s3://bucket/logs?region=us-east-1", nil},
		{"s3://b/p?region=us-east-1&access-key-id=AKIAEXAMPLE&secret-access-key=abc%2Fdef",
			[]string{"AKIAEXAMPLE", "abc%2Fdef", "abc/def"}},
		{"azure://container/path?sv=2020&sig=SIGVALUE123&se=2030", []string{"SIGVALUE123"}},
		{"https://user:pass1234@logs.example.com/ingest?header_Authorization=Basic%20xyz", []string{"user:pass1234", "Basic%20xyz", "Basic xyz"}},
		{"sumo://endpoint.collection.sumologic.com/receiver/v1/http/ZaVnC4dhaV3", []string{"ZaVnC4dhaV3"}},
		{"s3://b/p?secret-access-key=REDACTED", nil}, // already masked: nothing to learn
	}
	for _, tc := range cases {
		if got := Secrets(tc.conf); !slices.Equal(got, tc.want) {
			t.Errorf("Secrets(%q) = %q, want %q", tc.conf, got, tc.want)
		}
	}
}
