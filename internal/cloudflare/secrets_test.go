package cloudflare_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
)

// TestErrorsNeverCarrySecrets runs every call against a server that echoes
// the request (body and auth headers) back in its error messages, in every
// shape: 4xx, 5xx, 2xx success=false, a challenge result with valid=false.
func TestErrorsNeverCarrySecrets(t *testing.T) {
	t.Parallel()
	const (
		secretKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
		accessKey = "AKIAIOSFODNN7EXAMPLE"
		challenge = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZWNyZXQifQ.c2lnbmF0dXJlLXNlY3JldA"
	)
	conf := "s3://bucket/logs?region=us-east-1&access-key-id=" + accessKey + "&secret-access-key=" + secretKey
	secrets := []string{testToken, testKey, challenge, secretKey, accessKey}

	echo := func(r *http.Request) string {
		body, _ := io.ReadAll(r.Body)
		var req map[string]string
		_ = json.Unmarshal(body, &req)
		return "got " + string(body) + " conf=" + req["destination_conf"] + " token " + req["ownership_challenge"] +
			" auth " + r.Header.Get("Authorization") + " key " + r.Header.Get("X-Auth-Key") + " secret " + secretKey
	}
	answers := map[string]func(w http.ResponseWriter, r *http.Request){
		"400": func(w http.ResponseWriter, r *http.Request) { writeEnvelope(w, 400, nil, cfErr(1001, echo(r))) },
		"403": func(w http.ResponseWriter, r *http.Request) { writeEnvelope(w, 403, nil, cfErr(10000, echo(r))) },
		"500": func(w http.ResponseWriter, r *http.Request) { writeEnvelope(w, 500, nil, cfErr(10002, echo(r))) },
		"200 success false": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"success": false, "errors": []any{cfErr(1001, echo(r))}, "messages": []any{}, "result": nil})
		},
		"200 valid false": func(w http.ResponseWriter, r *http.Request) {
			writeEnvelope(w, 200, map[string]any{"filename": "", "message": echo(r), "valid": false})
		},
		"error_chain": func(w http.ResponseWriter, r *http.Request) {
			writeEnvelope(w, 400, nil, map[string]any{"code": 6003, "message": "Invalid request headers",
				"error_chain": []any{cfErr(6111, echo(r))}})
		},
	}
	for _, creds := range []cloudflare.Credentials{{APIToken: testToken}, {Email: testEmail, APIKey: testKey}} {
		b := setup(t, cloudflare.Config{Credentials: creds})
		zone := cloudflare.Target{Scope: "zone", ID: zoneID}
		for name, h := range answers {
			b.handle(h)
			_, cerr := b.client.Challenge(context.Background(), zone, conf)
			_, verr := b.client.Validate(context.Background(), zone, conf, challenge)
			for _, err := range []error{cerr, verr} {
				if err == nil {
					t.Fatalf("%s: no error", name)
				}
				ae := asAPIError(t, err)
				for _, s := range []string{err.Error(), ae.Message} {
					for _, secret := range secrets {
						if strings.Contains(s, secret) {
							t.Errorf("%s: error reveals %q: %s", name, secret[:6]+"…", s)
						}
					}
				}
				if !strings.Contains(ae.Message, "REDACTED") && !(err == verr && name == "200 valid false") {
					t.Errorf("%s: echo not visibly redacted: %s", name, ae.Message)
				}
			}
		}
	}
}
