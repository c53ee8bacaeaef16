package input

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// FuzzReader checks that Reader never panics or loops, that line numbers
// never go back, that every LineError names a line and says something, and
// that every Row is well formed.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"zone_id,account_id,destination_conf\n" + zone + ",," + conf + "\n," + acct + "," + gconf + "\n",
		"\xef\xbb\xbfzone_id,account_id,destination_conf,dataset\r\n" + zone + ",," + conf + ",x\r\n\r\n,,\r\n",
		"destination_conf,zone_id\n\"s3://b12/a\nb?region=x\"," + zone + "\n\"" + conf + "\"\"\"," + zone + "\n",
		"zone_id,account_id,destination_conf\n" + zone[:31] + ",," + conf + "\n" + zone + "," + acct + ",\n,,ftp://x\n",
		"zone_id,account_id,destination_conf\n" + zone + `,,s3://"b"` + "\n" + zone + `,,"unterminated`,
		"zone_id,account_id\n",
		zone + ",," + conf + "\n",
		`{"zone_id":"` + zone + `","destination_conf":"` + conf + `"}` + "\n" + `{"account_id":"` + acct + `","destination_conf":"` + gconf + `","dataset":"d"}`,
		`{"zone_id":123}` + "\n" + `{"zone_id":"` + zone + `","zone_id":null}` + "\n{\n[1]\n" + `{"a":1} x` + "\n",
		"\n\n  {\"account_id\":\"" + acct + "\",\"destination_conf\":\"s3://b\xff\"}\r\n",
		"",
		"\xef\xbb\xbf",
	} {
		for format := range uint8(3) {
			f.Add([]byte(s), format, format == 1)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, format uint8, extra bool) {
		opt := Options{Format: Format(format % 3)}
		if extra {
			opt.Extra = []string{"dataset", "role_arn"}
		}
		r := NewReader(bytes.NewReader(data), opt)
		maxLine := bytes.Count(data, []byte{'\n'}) + 1
		last := 0
		for calls := 1; ; calls++ {
			if calls > maxLine+1 {
				t.Fatalf("%d calls to Next for %d lines", calls, maxLine)
			}
			row, err := r.Next()
			if err == io.EOF {
				return
			}
			line := row.Line
			var le *LineError
			switch {
			case err == nil:
				checkRow(t, row, opt)
			case errors.As(err, &le):
				line = le.Line
				if le.Field == "" && (le.Err == nil || le.Err.Error() == "") {
					t.Fatalf("LineError with neither field nor message: %#v", le)
				}
			default: // fatal: sticky, and the end
				if _, again := r.Next(); again != err {
					t.Fatalf("fatal error not sticky: %v, then %v", err, again)
				}
				return
			}
			if line < 1 || line > maxLine || line < last {
				t.Fatalf("line %d after line %d, in an input of %d lines (%v)", line, last, maxLine, err)
			}
			if err != nil && len(err.Error()) > 512 {
				t.Fatalf("message of %d bytes", len(err.Error()))
			}
			last = line
		}
	})
}

// checkRow checks the invariants of a Row.
func checkRow(t *testing.T, row Row, opt Options) {
	t.Helper()
	if row.Scope != tasks.ScopeZone && row.Scope != tasks.ScopeAccount {
		t.Fatalf("scope %q", row.Scope)
	}
	if !tasks.ValidScopeID(row.ScopeID) || row.ScopeID != lower(row.ScopeID) {
		t.Fatalf("scope id %q", row.ScopeID)
	}
	if _, err := tasks.ParseConf(row.Conf.Raw); err != nil || row.Conf.Type == "" {
		t.Fatalf("conf does not parse again: %v", err)
	}
	if (len(opt.Extra) > 0) != (row.Extra != nil) {
		t.Fatalf("Extra = %v with Options.Extra %v", row.Extra, opt.Extra)
	}
	for k := range row.Extra {
		if k != "dataset" && k != "role_arn" {
			t.Fatalf("Extra has %q", k)
		}
	}
}

func lower(s string) string { return string(bytes.ToLower([]byte(s))) }
