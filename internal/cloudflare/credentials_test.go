package cloudflare_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
)

func TestCredentialsValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		creds cloudflare.Credentials
		ok    bool
	}{
		{"token", cloudflare.Credentials{APIToken: testToken}, true},
		{"email and key", cloudflare.Credentials{Email: testEmail, APIKey: testKey}, true},
		{"none", cloudflare.Credentials{}, false},
		{"both modes", cloudflare.Credentials{APIToken: testToken, Email: testEmail, APIKey: testKey}, false},
		{"token and email", cloudflare.Credentials{APIToken: testToken, Email: testEmail}, false},
		{"email only", cloudflare.Credentials{Email: testEmail}, false},
		{"key only", cloudflare.Credentials{APIKey: testKey}, false},
		{"token with newline", cloudflare.Credentials{APIToken: testToken + "\n"}, false},
		{"key with space", cloudflare.Credentials{Email: testEmail, APIKey: "a b"}, false},
	}
	for _, tc := range cases {
		err := tc.creds.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%s: Validate = %v", tc.name, err)
		}
		if err != nil {
			if !errors.Is(err, cloudflare.ErrInvalidCredentials) {
				t.Errorf("%s: %v is not ErrInvalidCredentials", tc.name, err)
			}
			if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), testKey) {
				t.Errorf("%s: error reveals a secret: %v", tc.name, err)
			}
		}
	}
}

func TestCredentialsFromEnv(t *testing.T) {
	t.Parallel()
	env := map[string]string{"CLOUDFLARE_API_TOKEN": " " + testToken + "\n", "CLOUDFLARE_EMAIL": "", "CLOUDFLARE_API_KEY": ""}
	got := cloudflare.CredentialsFromEnv(func(k string) string { return env[k] })
	if got != (cloudflare.Credentials{APIToken: testToken}) || got.Validate() != nil {
		t.Fatalf("CredentialsFromEnv = mode %v", got)
	}
}

// TestCredentialsNeverPrinted prints credentials every way a log line or a
// debug dump could.
func TestCredentialsNeverPrinted(t *testing.T) {
	t.Parallel()
	for _, creds := range []cloudflare.Credentials{
		{APIToken: testToken},
		{Email: testEmail, APIKey: testKey},
		{APIToken: testToken, Email: testEmail, APIKey: testKey},
	} {
		cfg := cloudflare.Config{Credentials: creds}
		var out []string
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%T"} {
			out = append(out, fmt.Sprintf(verb, creds), fmt.Sprintf(verb, &creds), fmt.Sprintf(verb, cfg))
		}
		var logs bytes.Buffer
		slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "creds", creds, "cfg", cfg)
		slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "creds", creds)
		js, _ := json.Marshal(cfg)
		out = append(out, logs.String(), string(js))
		for _, s := range out {
			for _, secret := range []string{testToken, testKey, testEmail} {
				if strings.Contains(s, secret) {
					t.Fatalf("printed credentials reveal a secret: %s", s)
				}
			}
		}
	}
}
