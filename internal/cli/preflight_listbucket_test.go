package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/internal/input"
)

// TestPreflightWithoutListBucket: S3 answers AccessDenied for the missing
// probe of a reader without s3:ListBucket, which the worker onboards when
// the reader has s3:GetObject: preflight warns, naming s3:ListBucket
// first, and lets the batch go. When S3 says that s3:GetObject is what is
// missing, the batch stops.
func TestPreflightWithoutListBucket(t *testing.T) {
	t.Parallel()
	cf := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"success":true,"errors":[],"messages":[],"result":{"id":"t1","status":"active"}}`)
	}))
	t.Cleanup(cf.Close)
	for _, tt := range []struct {
		name, missing string
		ok            bool
	}{
		{"list", "s3:ListBucket", true},
		{"get", "s3:GetObject", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s3 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>User: `+
					`arn:aws:iam::123456789012:user/reader is not authorized to perform: %s on resource: "arn:aws:s3:::bkt" `+
					`because no identity-based policy allows the %s action</Message></Error>`, tt.missing, tt.missing)
			}))
			t.Cleanup(s3.Close)
			rows := fmt.Sprintf("zone_id,account_id,destination_conf\n%032x,,s3://bkt/logs?region=us-east-1\n%032x,,s3://bkt/other?region=us-east-1\n", 1, 2)
			var out, errb bytes.Buffer
			env := Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
				return map[string]string{"CLOUDFLARE_API_TOKEN": "preflight-token"}[k]
			}}
			open := func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(rows)), nil }
			err := preflight(context.Background(), env, open, input.Options{}, preflightFlags{apiURL: cf.URL},
				credentials.Storage{S3Endpoint: s3.URL, S3AccessKeyID: "AKIAPREFLIGHT", S3SecretAccessKey: "secret"})
			stderr := errb.String()
			if tt.ok {
				if err != nil || !strings.Contains(stderr, "preflight: warning: line 2 and 1 more row: s3:ListBucket missing on arn:aws:s3:::bkt") ||
					!strings.Contains(stderr, "arn:aws:iam::123456789012:user/reader") {
					t.Fatalf("preflight = %v: %s; want a warning naming s3:ListBucket, and no problem", err, stderr)
				}
				return
			}
			if err == nil || !strings.Contains(stderr, "preflight: line 2") || strings.Contains(stderr, "warning") {
				t.Fatalf("preflight = %v: %s; want the batch stopped", err, stderr)
			}
		})
	}
}
