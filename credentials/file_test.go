package credentials_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/logpush-onboard/logpush-onboard/credentials"
)

// Recognisable secrets of the credentials files below: no error, string or
// log line may hold them.
const (
	fileTokenA = "SECRETFILETOKENA0123456789abcdefghijklmn"
	fileTokenC = "SECRETFILETOKENC0123456789abcdefghijklmn"
	fileKeyB   = "0123456789012345678901234567890123456" // digits: YAML would read a number
	fileEmailB = "SECRETEMAILB@example.com"
)

var fileSecrets = []string{fileTokenA, fileTokenC, fileKeyB, fileEmailB, "SECRETX"}

func writeCredFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return path
}

// checkCredFile checks the set of every good file below.
func checkCredFile(t *testing.T, s *credentials.Set) {
	t.Helper()
	if got, want := s.Names(), []string{"alice", "bob.ops", "carol_2"}; !slices.Equal(got, want) {
		t.Fatalf("Names = %v, want %v", got, want)
	}
	a, ok := s.Lookup("alice")
	if !ok || a.Credentials != (credentials.Cloudflare{APIToken: fileTokenA}) || a.APIRate != "" || a.BudgetKey != "" || a.Name != "alice" {
		t.Errorf("alice = %+v (%v)", a.Credentials.Digest(), ok)
	}
	b, ok := s.Lookup("bob.ops")
	if !ok || b.Credentials != (credentials.Cloudflare{Email: fileEmailB, APIKey: fileKeyB}) || b.APIRate != "1000/5m" || b.BudgetKey != "bob:user" {
		t.Errorf("bob.ops = %v %q %q (%v)", b, b.APIRate, b.BudgetKey, ok)
	}
	c, ok := s.Lookup("carol_2")
	if !ok || c.Credentials != (credentials.Cloudflare{APIToken: fileTokenC}) || c.APIRate != "60/m" {
		t.Errorf("carol_2 = %v %q (%v)", c, c.APIRate, ok)
	}
	if a.Digest() == c.Digest() || a.Digest() != (credentials.Cloudflare{APIToken: fileTokenA}).Digest() {
		t.Error("Digest: want Credentials.Digest, one per credential")
	}
	if s.HasDefault() || s.Has("") || s.Has("dave") || !s.Has("alice") {
		t.Error("Has: want the three names only, and no default before SetDefault")
	}
}

// TestLoadCredentialsFile loads the same credentials as YAML (with the
// token shorthand and a numeric-looking key) and as JSON.
func TestLoadCredentialsFile(t *testing.T) {
	t.Parallel()
	yamlFile := `# Cloudflare credentials by name
alice:
  token: ` + fileTokenA + `
bob.ops:
  email: ` + fileEmailB + `
  key: ` + fileKeyB + `
  api_rate: 1000/5m
  budget_key: bob:user
carol_2:
  token: "` + fileTokenC + `"
  api_rate: 60/m
`
	shorthand := "alice: " + fileTokenA + "\nbob.ops: {email: " + fileEmailB + ", key: " + fileKeyB +
		", api_rate: 1000/5m, budget_key: 'bob:user'}\ncarol_2: {token: " + fileTokenC + ", api_rate: 60/m}\n"
	jsonFile := `{"alice": {"token": "` + fileTokenA + `"},
 "bob.ops": {"email": "` + fileEmailB + `", "key": "` + fileKeyB + `", "api_rate": "1000/5m", "budget_key": "bob:user"},
 "carol_2": {"token": "` + fileTokenC + `", "api_rate": "60/m"}}`
	for _, tc := range []struct{ name, file, content string }{
		{"yaml", "credentials.yaml", yamlFile},
		{"yaml shorthand", "credentials.yml", shorthand},
		{"json", "credentials.json", jsonFile},
		{"json without extension", "credentials", jsonFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeCredFile(t, tc.file, tc.content, 0o600)
			s, err := credentials.LoadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			checkCredFile(t, s)
			if s.File != path || len(s.Warnings) != 0 {
				t.Errorf("File %q, Warnings %q", s.File, s.Warnings)
			}
		})
	}
}

// TestCredentialSetDefault: the environment's credential is the one of
// rows that name none; an empty environment leaves no default, a broken
// one is an error.
func TestCredentialSetDefault(t *testing.T) {
	t.Parallel()
	s, err := credentials.Parse([]byte("alice: " + fileTokenA))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetDefault(credentials.Cloudflare{}); err != nil || s.HasDefault() {
		t.Fatalf("SetDefault(zero) = %v, HasDefault %v", err, s.HasDefault())
	}
	if err := s.SetDefault(credentials.Cloudflare{APIToken: fileTokenC, APIKey: "SECRETX"}); err == nil || strings.Contains(err.Error(), "SECRETX") {
		t.Fatalf("SetDefault(both modes) = %v", err)
	}
	if err := s.SetDefault(credentials.Cloudflare{APIToken: fileTokenC}); err != nil {
		t.Fatal(err)
	}
	d, ok := s.Lookup("")
	if !ok || d.Credentials.APIToken != fileTokenC || d.Name != "" || !s.HasDefault() {
		t.Fatalf("Lookup(\"\") = %v, %v", d, ok)
	}
	if got := s.Names(); !slices.Equal(got, []string{"alice"}) {
		t.Errorf("Names = %v: the default is not a name", got)
	}
	var none credentials.Set
	if none.Has("") || none.Has("alice") || none.Len() != 0 {
		t.Error("the zero CredentialSet must be empty")
	}
}

// TestCredentialsFileErrors pins every error: each names the line, the
// credential and the field, and none holds a secret of the file.
func TestCredentialsFileErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, content, want string }{
		{"empty", "", "empty: it names no credential"},
		{"comments only", "# nothing yet\n", "empty: it names no credential"},
		{"empty mapping", "{}", "it names no credential"},
		{"a list", "- " + fileTokenA + "\n", "line 1: want a mapping of credential names to credentials, got a list"},
		{"a scalar", fileTokenA + "\n", "line 1: want a mapping of credential names to credentials, got a single value"},
		{"two documents", "alice: " + fileTokenA + "\n---\nbob: " + fileTokenC + "\n", "more than one YAML document"},
		{"bad yaml", "alice:\n  token: " + fileTokenA + "\n bob: " + fileTokenC + "\n", "line 3, column 2: invalid YAML or JSON: did not find expected key"},
		{"bad escape", `alice: {token: "SECRETX\q` + fileTokenA + `"}`, "line 1, column 24: invalid YAML or JSON: found unknown escape character"},
		{"bad json", `{"alice": {"token": "` + fileTokenA + `"}`, "line 2, column 1: invalid YAML or JSON: did not find expected ',' or '}'"},
		{"bad name", "alice smith: " + fileTokenA + "\n", "line 1: credential names are 1 to 64 letters, digits, '.', '_' or '-'"},
		{"long name", strings.Repeat("a", 65) + ": " + fileTokenA + "\n", "line 1: credential names are 1 to 64"},
		{"list as name", "? [a, b]\n: " + fileTokenA + "\n", "line 1: credential names are 1 to 64"},
		{"name twice", "alice: " + fileTokenA + "\nalice: " + fileTokenC + "\n", "line 2: credential alice appears twice"},
		{"no token", "alice:\n", "line 1: credential alice: no token given"},
		{"empty mapping entry", "alice: {}\n", "line 1: credential alice: token: missing: give a token, or email and key"},
		{"list entry", "alice: [" + fileTokenA + "]\n", "line 1: credential alice: want a token, or a mapping with token, or email and key; got a list"},
		{"unknown field", "alice:\n  tokn: " + fileTokenA + "\n", "line 2: credential alice: unknown field tokn (want token, email, key, api_rate, budget_key)"},
		{"secret as field", "alice:\n  " + fileTokenA + ": x\n", "line 2: credential alice: an unknown field (want token, email, key, api_rate, budget_key)"},
		{"field twice", "alice:\n  token: " + fileTokenA + "\n  token: " + fileTokenC + "\n", "line 3: credential alice: token: appears twice"},
		{"field not a string", "alice:\n  token: [" + fileTokenA + "]\n", "line 2: credential alice: token: must be a string, got a list"},
		{"empty field", "alice:\n  token: ''\n", "line 2: credential alice: token: is empty"},
		{"null field", "alice:\n  token:\n", "line 2: credential alice: token: is empty"},
		{"token and key", "alice:\n  token: " + fileTokenA + "\n  email: " + fileEmailB + "\n  key: " + fileKeyB + "\n",
			"line 2: credential alice: both a token and an email/key: give one of the two"},
		{"email without key", "bob:\n  email: " + fileEmailB + "\n", "line 2: credential bob: key: missing: an email needs its global API key"},
		{"key without email", "bob:\n  key: " + fileKeyB + "\n", "line 2: credential bob: email: missing: a global API key needs its account email"},
		{"rate only", "bob:\n  api_rate: 1000/5m\n", "line 2: credential bob: token: missing: give a token, or email and key"},
		{"bad api_rate", "bob:\n  token: " + fileTokenA + "\n  api_rate: 1000 per 5m\n", `line 3: credential bob: api_rate: invalid rate "1000 per 5m": want <limit>/<window>, e.g. 1200/5m`},
		{"api_rate window", "bob:\n  token: " + fileTokenA + "\n  api_rate: 10/0s\n", `line 3: credential bob: api_rate: invalid rate "10/0s": window 0s is shorter than 1s`},
		{"bad budget_key", "bob:\n  token: " + fileTokenA + "\n  budget_key: bob user\n", "line 3: credential bob: budget_key: use 1 to 64 letters, digits, '.', '_', ':' or '-'"},
		{"token with space", "alice:\n  token: \"SECRETX " + fileTokenA + "\"\n", "line 2: credential alice: token: contains whitespace or control characters"},
		{"key with newline", "bob: {email: " + fileEmailB + ", key: \"" + fileKeyB + "\\n\"}\n", "line 1: credential bob: key: contains whitespace or control characters"},
		{"email with tab", "bob: {email: \"" + fileEmailB + "\\t\", key: " + fileKeyB + "}\n", "line 1: credential bob: email: contains whitespace or control characters"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeCredFile(t, "creds.yaml", tc.content, 0o600)
			s, err := credentials.LoadFile(path)
			if err == nil {
				t.Fatalf("loaded %v, want an error", s)
			}
			if !errors.Is(err, credentials.ErrFile) {
				t.Errorf("%v does not wrap ErrCredentialsFile", err)
			}
			want := "credentials file " + path + ": invalid credentials file: " + tc.want
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error\n %s\nwant it to start with\n %s", err, want)
			}
			for _, sec := range fileSecrets {
				if strings.Contains(err.Error(), sec) {
					t.Errorf("error holds the secret %q: %v", sec, err)
				}
			}
		})
	}
}

// TestCredentialsFileAccess: a missing file names itself; one other users
// may read loads with a warning.
func TestCredentialsFileAccess(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	if _, err := credentials.LoadFile(missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := credentials.LoadFile(t.TempDir()); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("directory: %v", err)
	}
	path := writeCredFile(t, "open.yaml", "alice: "+fileTokenA+"\n", 0o644)
	s, err := credentials.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "readable by other users (mode 0644)") || strings.Contains(s.Warnings[0], fileTokenA) {
		t.Errorf("Warnings = %q", s.Warnings)
	}
	group := writeCredFile(t, "group.yaml", "alice: "+fileTokenA+"\n", 0o440)
	if s, err := credentials.LoadFile(group); err != nil || len(s.Warnings) != 0 {
		t.Errorf("a group-readable file (a Secret volume with defaultMode 0440): %v, %q", err, s.Warnings)
	}
}

// TestCredentialSetRedacted prints, logs and encodes a set and its
// credentials every way there is: no secret may appear, the names must.
func TestCredentialSetRedacted(t *testing.T) {
	t.Parallel()
	s, err := credentials.Parse([]byte("alice: " + fileTokenA + "\nbob.ops: {email: " + fileEmailB + ", key: '" + fileKeyB + "'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetDefault(credentials.Cloudflare{APIToken: fileTokenC}); err != nil {
		t.Fatal(err)
	}
	a, _ := s.Lookup("alice")
	b, _ := s.Lookup("bob.ops")
	d, _ := s.Lookup("")
	var out bytes.Buffer
	for _, v := range []any{s, *s, a, b, d, &a, []credentials.Named{a, b}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
		j, err := json.Marshal(v)
		if err != nil {
			t.Errorf("json %T: %v", v, err)
		}
		out.Write(j)
		slog.New(slog.NewTextHandler(&out, nil)).Info("x", "v", v)
		slog.New(slog.NewJSONHandler(&out, nil)).Info("x", "v", v)
	}
	text := out.String()
	for _, sec := range []string{fileTokenA, fileTokenC, fileKeyB, fileEmailB} {
		if strings.Contains(text, sec) {
			t.Errorf("secret %q in\n%s", sec, text)
		}
	}
	if !strings.Contains(text, "alice") || !strings.Contains(text, "bob.ops") {
		t.Errorf("the names should show:\n%s", text)
	}
}
