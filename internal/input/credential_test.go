package input

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// credResult is result with the row's credential.
func credResult(row Row, err error) string {
	if err != nil {
		return result(row, err)
	}
	return fmt.Sprintf("row %d %s cred=%q", row.Line, row.ScopeID[:4], row.Credential)
}

// TestCredentialColumn reads the credential column (CSV) and key (JSONL)
// against the known names: a known name, the default for a row that names
// none, and the line errors of an unknown name, a missing default and a
// value that is no name.
func TestCredentialColumn(t *testing.T) {
	t.Parallel()
	const pasted = "SECRETPASTEDTOKEN0123456789abcdefghijklm" // a token where a name should be
	known := &CredentialNames{Names: []string{"alice", "bob.ops"}, Default: true}
	noDefault := &CredentialNames{Names: []string{"alice", "bob.ops"}}
	csv := "Credential,zone_id,account_id,destination_conf\n" +
		" alice ," + zone + ",," + conf + "\n" +
		"," + zone + ",," + conf + "\n" +
		"carol," + zone + ",," + conf + "\n" +
		pasted + "," + zone + ",," + conf + "\n" +
		"alice smith," + zone + ",," + conf + "\n" +
		"bob.ops,," + acct + "," + gconf + "\n"
	jsonl := `{"zone_id":"` + zone + `","destination_conf":"` + conf + `","credential":"alice"}` + "\n" +
		`{"zone_id":"` + zone + `","destination_conf":"` + conf + `","credential":null}` + "\n" +
		`{"zone_id":"` + zone + `","destination_conf":"` + conf + `","credential":"carol"}` + "\n" +
		`{"zone_id":"` + zone + `","destination_conf":"` + conf + `","credential":"` + pasted + `"}` + "\n" +
		`{"zone_id":"` + zone + `","destination_conf":"` + conf + `","credential":"alice smith"}` + "\n" +
		`{"account_id":"` + acct + `","destination_conf":"` + gconf + `","CREDENTIAL":"bob.ops"}` + "\n"
	unknown := `line 4: credential: unknown credential "carol" (known: alice, bob.ops)`
	pastedErr := `line 5: credential: unknown credential "SECRET..." (40 characters) (known: alice, bob.ops)`
	notName := `line 6: credential: not a credential name (1 to 64 letters, digits, '.', '_' or '-')`
	for _, tc := range []struct {
		name, in string
		creds    *CredentialNames
		want     []string
	}{
		{"csv", csv, known, []string{
			`row 2 023e cred="alice"`, `row 3 023e cred=""`,
			"err 4 credential | " + unknown, "err 5 credential | " + pastedErr, "err 6 credential | " + notName,
			`row 7 01a7 cred="bob.ops"`}},
		{"jsonl", jsonl, known, []string{
			`row 1 023e cred="alice"`, `row 2 023e cred=""`,
			"err 3 credential | " + strings.Replace(unknown, "line 4", "line 3", 1),
			"err 4 credential | " + strings.Replace(pastedErr, "line 5", "line 4", 1),
			"err 5 credential | " + strings.Replace(notName, "line 6", "line 5", 1),
			`row 6 01a7 cred="bob.ops"`}},
		{"no default", csv, noDefault, []string{
			`row 2 023e cred="alice"`,
			"err 3 credential | line 3: credential: none given, and there is no default credential (name one of alice, bob.ops, or set CLOUDFLARE_API_TOKEN)",
			"err 4 credential | " + unknown, "err 5 credential | " + pastedErr, "err 6 credential | " + notName,
			`row 7 01a7 cred="bob.ops"`}},
		{"no file", csv, &CredentialNames{Default: true}, []string{
			`err 2 credential | line 2: credential: unknown credential "alice": no credentials file names any`,
			`row 3 023e cred=""`,
			`err 4 credential | line 4: credential: unknown credential "carol": no credentials file names any`,
			`err 5 credential | line 5: credential: unknown credential "SECRET..." (40 characters): no credentials file names any`,
			"err 6 credential | " + notName,
			`err 7 credential | line 7: credential: unknown credential "bob.ops": no credentials file names any`}},
		{"names unchecked", csv, nil, []string{
			`row 2 023e cred="alice"`, `row 3 023e cred=""`, `row 4 023e cred="carol"`, `row 5 023e cred="` + pasted + `"`,
			"err 6 credential | " + notName, `row 7 01a7 cred="bob.ops"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := NewReader(strings.NewReader(tc.in), Options{Credentials: tc.creds})
			var got []string
			for {
				row, err := r.Next()
				if err != nil && !errors.As(err, new(*LineError)) {
					break
				}
				got = append(got, credResult(row, err))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

// TestCredentialNamesListed: a long list of known names is cut short.
func TestCredentialNamesListed(t *testing.T) {
	t.Parallel()
	var names []string
	for i := range 13 {
		names = append(names, fmt.Sprintf("c%02d", i))
	}
	_, err := NewReader(strings.NewReader("zone_id,destination_conf,credential\n"+zone+","+conf+",zed\n"),
		Options{Credentials: &CredentialNames{Names: names}}).Next()
	want := `line 2: credential: unknown credential "zed" (known: c00, c01, c02, c03, c04, c05, c06, c07, c08, c09 and 3 more)`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}
