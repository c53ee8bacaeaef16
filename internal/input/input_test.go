package input

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/logpush-onboard/logpush-onboard/tasks"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	zone  = "023e105f4ecef8ad9ca31a8372d0c353"
	acct  = "01a7362d577a6c3019a474fd6f485823"
	conf  = "s3://mybucket/logs?region=us-west-2"
	gconf = "gs://bucket/path"
	// secret* must never appear in an error message.
	secretAK   = "AKIDSECRETEXAMPLE"
	secretSK   = "SKSECRETVALUEwJalrXUtnFEMI"
	secretConf = "s3://b12/p?region=auto&access-key-id=" + secretAK + "&secret-access-key=" + secretSK + "&endpoint=https://acct.example.com"
)

// result is one return of Next, in a form a test can compare:
// "row L scope id-prefix type", "err L field | message" or "fatal | message".
func result(row Row, err error) string {
	var le *LineError
	switch {
	case err == nil:
		return fmt.Sprintf("row %d %s %s %s", row.Line, row.Scope, row.ScopeID[:4], row.Conf.Type)
	case errors.As(err, &le):
		field := le.Field
		if field == "" {
			field = "-"
		}
		return fmt.Sprintf("err %d %s | %s", le.Line, field, le.Error())
	}
	return "fatal | " + err.Error()
}

// readAll reads r to io.EOF or a fatal error and returns every result.
func readAll(t testing.TB, r *Reader) []string {
	t.Helper()
	var out []string
	for i := 0; ; i++ {
		if i > 10000 {
			t.Fatalf("Next does not reach the end")
		}
		row, err := r.Next()
		if err == io.EOF {
			if _, again := r.Next(); again != io.EOF {
				t.Fatalf("Next after io.EOF: %v", again)
			}
			return out
		}
		out = append(out, result(row, err))
		var le *LineError
		if err != nil && !errors.As(err, &le) {
			if _, again := r.Next(); again != err {
				t.Fatalf("fatal error not sticky: %v then %v", err, again)
			}
			return out
		}
	}
}

// match compares results with expectations: a row must be equal; "err L
// field | text" and "fatal | text" must have that line and field and contain
// text.
func match(t *testing.T, got, want []string) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		g, w := got[i], want[i]
		head, text, isErr := strings.Cut(w, " | ")
		if !isErr {
			ok = g == w
			continue
		}
		ghead, gtext, _ := strings.Cut(g, " | ")
		ok = ghead == head && strings.Contains(gtext, text)
	}
	if !ok {
		t.Errorf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	for _, g := range got {
		for _, s := range []string{secretAK, secretSK, "secret-access-key="} {
			if strings.Contains(g, s) {
				t.Errorf("result reveals a secret: %s", g)
			}
		}
	}
}

func TestReaderCSV(t *testing.T) {
	t.Parallel()
	long := "s3://mybucket/" + strings.Repeat("a", 5000) + "?region=us-east-1"
	huge := strings.Repeat("x", 100<<10)
	quotedLines := "\"" + strings.Repeat("q", 40<<10) + "\n" + strings.Repeat("q", 40<<10) + "\""
	cases := []struct {
		name  string
		in    string
		extra []string
		want  []string
	}{
		{"basic", "zone_id,account_id,destination_conf\n" + zone + ",," + conf + "\n," + acct + "," + gconf + "\n",
			nil, []string{"row 2 zone 023e s3", "row 3 account 01a7 gs"}},
		{"no final newline", "zone_id,account_id,destination_conf\n" + zone + ",," + conf,
			nil, []string{"row 2 zone 023e s3"}},
		{"column order, case and spaces", " Destination_Conf ,ACCOUNT_ID,\tzone_id\n" + conf + ",," + zone + "\n",
			nil, []string{"row 2 zone 023e s3"}},
		{"only one id column", "destination_conf,zone_id\n" + conf + "," + zone + "\n",
			nil, []string{"row 2 zone 023e s3"}},
		{"bom and crlf", "\xef\xbb\xbfzone_id,account_id,destination_conf\r\n" + zone + ",," + conf + "\r\n\r\n," + acct + "," + conf + "\r\n",
			nil, []string{"row 2 zone 023e s3", "row 4 account 01a7 s3"}},
		{"blank lines", "\n\nzone_id,account_id,destination_conf\n\n  \n,,\n" + zone + ",," + conf + "\n\n",
			nil, []string{"row 7 zone 023e s3"}},
		{"upper-case id and spaces", "zone_id,account_id,destination_conf\n " + strings.ToUpper(zone) + " ,," + conf + "\n",
			nil, []string{"row 2 zone 023e s3"}},
		// A spreadsheet's spaces around the conf, bare or inside quotes,
		// are trimmed as those around the ids are.
		{"spaces around the conf", "zone_id,account_id,destination_conf\n" + zone + ",,  " + conf + " \n," + acct + ",\" " + conf + "\t\"\n",
			nil, []string{"row 2 zone 023e s3", "row 3 account 01a7 s3"}},
		{"quoted comma", "zone_id,account_id,destination_conf\n" + zone + ",,\"s3://mybucket/a,b?region=us-east-1\"\n",
			nil, []string{"row 2 zone 023e s3"}},
		{"quoted newline keeps the start line", "zone_id,account_id,destination_conf\n" + zone + ",\"\n\n\",x\n" + zone + ",,\"s3://b12/a\nb?region=x\"\n" + zone + ",," + conf + "\n",
			nil, []string{"err 2 destination_conf | missing scheme", "err 5 destination_conf | control character (U+000A)", "row 7 zone 023e s3"}},
		{"id too short", "zone_id,account_id,destination_conf\n" + zone[:31] + ",," + conf + "\n",
			nil, []string{"err 2 zone_id | line 2: zone_id: must be 32 hex characters, got 31"}},
		{"id not hex", "zone_id,account_id,destination_conf\n," + "g" + acct[1:] + "," + conf + "\n",
			nil, []string{`err 2 account_id | account_id: must be 32 hex characters, got 'g' at position 1`}},
		{"both ids", "zone_id,account_id,destination_conf\n" + zone + "," + acct + "," + conf + "\n",
			nil, []string{"err 2 - | line 2: both zone_id and account_id are set (want exactly one)"}},
		{"no id", "zone_id,account_id,destination_conf\n,," + conf + "\n",
			nil, []string{"err 2 - | line 2: neither zone_id nor account_id is set (want exactly one)"}},
		{"unknown scheme", "zone_id,account_id,destination_conf\n" + zone + ",,ftp://host/x\n",
			nil, []string{`err 2 destination_conf | line 2: destination_conf: unknown scheme "ftp" (want s3, gs, azure, sumo, r2, https, datadog, splunk, bq, kinesis, ibmcl, sentinelone, file)`}},
		{"empty conf", "zone_id,account_id,destination_conf\n" + zone + ",,\n",
			nil, []string{"err 2 destination_conf | destination_conf: is empty"}},
		{"conf over 4096", "zone_id,account_id,destination_conf\n" + zone + ",," + long + "\n" + zone + ",," + conf + "\n",
			nil, []string{fmt.Sprintf("err 2 destination_conf | destination_conf: too long: %d bytes, limit 4096", len(long)), "row 3 zone 023e s3"}},
		{"line over 64 KiB", "zone_id,account_id,destination_conf\n" + zone + ",," + conf + "\n" + zone + ",," + huge + "\n" + zone + ",," + gconf + "\n",
			nil, []string{"row 2 zone 023e s3", "err 3 - | line 3: line too long (limit 65536 bytes)", "row 4 zone 023e gs"}},
		{"long line at the end", "zone_id,account_id,destination_conf\n" + huge,
			nil, []string{"err 2 - | line too long"}},
		{"quoted record over 64 KiB", "zone_id,account_id,destination_conf\n" + zone + ",," + quotedLines + "\n" + zone + ",," + conf + "\n",
			nil, []string{"err 2 - | line 2: line too long", "row 4 zone 023e s3"}},
		{"invalid utf8 in conf", "zone_id,account_id,destination_conf\n" + zone + ",,s3://b\xff/x?region=x\n",
			nil, []string{"err 2 destination_conf | destination_conf: is not valid UTF-8"}},
		{"invalid utf8 in id", "zone_id,account_id,destination_conf\n" + zone[:31] + "\xff,," + conf + "\n",
			nil, []string{"err 2 zone_id | zone_id: is not valid UTF-8"}},
		{"too few fields", "zone_id,account_id,destination_conf\n" + zone + "," + conf + "\n" + zone + ",," + conf + "\n",
			nil, []string{"err 2 - | line 2: has 2 fields, want 3 as in the header", "row 3 zone 023e s3"}},
		{"too many fields", "zone_id,account_id,destination_conf\n" + zone + ",," + conf + ",x\n",
			nil, []string{"err 2 - | has 4 fields, want 3"}},
		{"bare quote", "zone_id,account_id,destination_conf\n" + zone + `,,s3://b"x` + "\n" + zone + ",," + conf + "\n",
			nil, []string{`err 2 - | line 2: invalid CSV: bare " in non-quoted-field (line 2, column`, "row 3 zone 023e s3"}},
		{"unterminated quote", "zone_id,account_id,destination_conf\n" + zone + `,,"s3://b` + "\n",
			nil, []string{`err 2 - | invalid CSV: extraneous or missing " in quoted-field`}},
		{"secret conf in a bad row", "zone_id,account_id,destination_conf\n" + zone + "," + acct + "," + secretConf + "\n" + zone + ",,x" + secretConf + "\n",
			nil, []string{"err 2 - | both", "err 3 destination_conf | unknown scheme"}},
		{"extra column", "zone_id,account_id,destination_conf,Dataset\n" + zone + ",," + conf + ",http_requests\n",
			[]string{"dataset"}, []string{"row 2 zone 023e s3"}},
		{"extra with control character", "zone_id,account_id,destination_conf,dataset\n" + zone + ",," + conf + ",a\x01b\n",
			[]string{" DATASET"}, []string{"err 2 dataset | dataset: contains a control character at byte 1"}},
		{"empty input", "", nil, nil},
		{"blank input", "\xef\xbb\xbf\n \n\r\n", nil, nil},
		{"header only", "zone_id,account_id,destination_conf\r\n", nil, nil},
		// Fatal header errors.
		{"unknown column", "zone_id,account_id,destination_conf,dataset\n" + zone + ",," + conf + ",x\n",
			nil, []string{"fatal | invalid CSV header: line 1: unknown column dataset (want zone_id, account_id, destination_conf, credential)"}},
		{"unknown column after blank lines", "\n\nzone_id,destination_conf,x y\n",
			[]string{"dataset"}, []string{`fatal | invalid CSV header: line 3: unknown column "x y" (want zone_id, account_id, destination_conf, credential, dataset)`}},
		{"no header", zone + ",," + secretConf + "\n",
			nil, []string{"fatal | invalid CSV header: line 1: the first line is data, not a header (want a header zone_id,account_id,destination_conf)"}},
		{"duplicate column", "zone_id,ZONE_ID,destination_conf\n",
			nil, []string{"fatal | invalid CSV header: line 1: column zone_id appears twice"}},
		{"empty column name", "zone_id,,destination_conf\n",
			nil, []string{"fatal | invalid CSV header: line 1: column 2 has no name"}},
		{"no conf column", "zone_id,account_id\n", nil, []string{"fatal | invalid CSV header: line 1: no destination_conf column"}},
		{"no id column", "destination_conf\n", nil, []string{"fatal | invalid CSV header: line 1: no zone_id or account_id column"}},
		{"header too long", "zone_id,account_id,destination_conf" + huge + "\n", nil, []string{"fatal | invalid CSV header: line 1: line too long"}},
		{"bad quote in header", "zone_id,\"account_id,destination_conf\n", nil, []string{"fatal | invalid CSV header: line 1: invalid CSV"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, format := range []Format{CSV, Auto} {
				match(t, readAll(t, NewReader(strings.NewReader(tc.in), Options{Format: format, Extra: tc.extra})), tc.want)
				// The same, one byte at a time.
				match(t, readAll(t, NewReader(iotest.OneByteReader(strings.NewReader(tc.in)), Options{Format: format, Extra: tc.extra})), tc.want)
			}
		})
	}
}

func TestReaderJSONL(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("x", 100<<10)
	obj := func(kv ...string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := 0; i < len(kv); i += 2 {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "%q:%s", kv[i], kv[i+1])
		}
		b.WriteString("}")
		return b.String()
	}
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	okZone := obj("zone_id", q(zone), "destination_conf", q(conf))
	cases := []struct {
		name  string
		in    string
		extra []string
		want  []string
	}{
		{"basic", okZone + "\n" + obj("account_id", q(acct), "destination_conf", q(gconf)) + "\n",
			nil, []string{"row 1 zone 023e s3", "row 2 account 01a7 gs"}},
		{"bom, crlf, blank lines, spaces", "\xef\xbb\xbf\r\n  \n" + okZone + "\r\n\r\n\t" + obj("account_id", q(acct), "zone_id", "null", "destination_conf", q(conf)) + "  \r\n",
			nil, []string{"row 3 zone 023e s3", "row 5 account 01a7 s3"}},
		{"keys in any case", obj("Zone_ID", q(zone), "DESTINATION_CONF", q(conf)) + "\n", nil, []string{"row 1 zone 023e s3"}},
		{"number id", obj("zone_id", "123", "destination_conf", q(conf)) + "\n" + okZone,
			nil, []string{"err 1 zone_id | line 1: zone_id: must be a string, got a number", "row 2 zone 023e s3"}},
		{"other types", obj("zone_id", "true", "destination_conf", q(conf)) + "\n" + obj("zone_id", q(zone), "destination_conf", "{}") + "\n" + obj("account_id", "[]", "destination_conf", q(conf)),
			nil, []string{"err 1 zone_id | got a boolean", "err 2 destination_conf | got an object", "err 3 account_id | got an array"}},
		{"unknown key", obj("zone_id", q(zone), "destination_conf", q(conf), "dataset", q("x")) + "\n",
			nil, []string{"err 1 dataset | line 1: dataset: unknown key (want zone_id, account_id, destination_conf, credential)"}},
		{"unknown odd key", obj("zone_id", q(zone), "destination_conf", q(conf), "a b", q("x")) + "\n",
			nil, []string{`err 1 "a b" | line 1: "a b": unknown key`}},
		{"extra key", obj("zone_id", q(zone), "destination_conf", q(conf), "dataset", q("x")) + "\n" + obj("zone_id", q(zone), "destination_conf", q(conf), "dataset", "1") + "\n",
			[]string{"dataset"}, []string{"row 1 zone 023e s3", "err 2 dataset | dataset: must be a string, got a number"}},
		{"duplicate key", obj("zone_id", q(zone), "ZONE_ID", q(zone), "destination_conf", q(conf)) + "\n",
			nil, []string{"err 1 ZONE_ID | key appears twice"}},
		{"invalid json", "{\"zone_id\": \"" + zone + "\",\n" + okZone + "\n{zone_id: 1}\n",
			nil, []string{"err 1 - | line 1: invalid JSON", "row 2 zone 023e s3", "err 3 - | invalid JSON: invalid character 'z'"}},
		{"not an object", "[1,2]\n\"s\"\n" + okZone + "\n",
			nil, []string{"err 1 - | a JSON array is not JSONL: one object per line", "err 2 - | want a JSON object", "row 3 zone 023e s3"}},
		{"trailing garbage", okZone + " x\n" + okZone + okZone + "\n" + okZone + "\n",
			nil, []string{"err 1 - | unexpected data after the JSON object", "err 2 - | unexpected data after the JSON object", "row 3 zone 023e s3"}},
		{"both and neither", obj("zone_id", q(zone), "account_id", q(acct), "destination_conf", q(conf)) + "\n" + obj("destination_conf", q(conf)) + "\n" + obj("zone_id", q(""), "account_id", "null", "destination_conf", q(conf)),
			nil, []string{"err 1 - | both", "err 2 - | neither", "err 3 - | neither"}},
		{"missing conf", obj("zone_id", q(zone)) + "\n", nil, []string{"err 1 destination_conf | destination_conf: is missing"}},
		{"bad id", obj("zone_id", q(zone+"0"), "destination_conf", q(conf)) + "\n", nil, []string{"err 1 zone_id | must be 32 hex characters, got 33"}},
		{"invalid utf8", `{"zone_id":"` + zone + `","destination_conf":"s3://b` + "\xff" + `/x?region=x"}` + "\n" + `{"zone_id":"` + zone[:31] + "\xfe" + `","destination_conf":"x"}`,
			nil, []string{"err 1 destination_conf | destination_conf: is not valid UTF-8", "err 2 zone_id | zone_id: is not valid UTF-8"}},
		{"conf over 4096", obj("zone_id", q(zone), "destination_conf", q("s3://b12/"+strings.Repeat("p", 5000)+"?region=x")) + "\n",
			nil, []string{"err 1 destination_conf | destination_conf: too long: 5018 bytes, limit 4096"}},
		{"line over 64 KiB", okZone + "\n" + obj("zone_id", q(zone), "destination_conf", q(huge)) + "\n" + okZone + "\n",
			nil, []string{"row 1 zone 023e s3", "err 2 - | line 2: line too long (limit 65536 bytes)", "row 3 zone 023e s3"}},
		{"long line at the end", okZone + "\n" + huge, nil, []string{"row 1 zone 023e s3", "err 2 - | line too long"}},
		{"secret conf in a bad row", obj("zone_id", q(zone), "destination_conf", q("x"+secretConf)) + "\n" + obj("zone_id", q(zone), "destination_conf", q(secretConf), secretConf, q("")) + "\n",
			nil, []string{"err 1 destination_conf | unknown scheme", `err 2 "s3://b12/p?region=auto&access-key-id=RED..." | unknown key`}},
		{"empty", "", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			formats := []Format{JSONL}
			if strings.HasPrefix(strings.TrimLeft(tc.in, "\xef\xbb\xbf \r\n\t"), "{") {
				formats = append(formats, Auto)
			}
			for _, format := range formats {
				match(t, readAll(t, NewReader(strings.NewReader(tc.in), Options{Format: format, Extra: tc.extra})), tc.want)
				match(t, readAll(t, NewReader(iotest.OneByteReader(strings.NewReader(tc.in)), Options{Format: format, Extra: tc.extra})), tc.want)
			}
		})
	}
}

func TestRowFields(t *testing.T) {
	t.Parallel()
	in := "Dataset,zone_id,account_id,destination_conf,aws_profile\n" +
		"http_requests," + strings.ToUpper(zone) + ",," + secretConf + ",\n"
	r := NewReader(strings.NewReader(in), Options{Extra: []string{"dataset", "AWS_Profile", "zone_id", "", "dataset"}})
	row, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if row.Line != 2 || row.Scope != tasks.ScopeZone || row.ScopeID != zone {
		t.Errorf("row = line %d scope %q id %q", row.Line, row.Scope, row.ScopeID)
	}
	if row.Conf.Raw != secretConf || row.Conf.Type != tasks.TypeS3 || row.Conf.Bucket != "b12" || row.Conf.NeedsChallenge() {
		t.Errorf("conf = %s", row.Conf)
	}
	if len(row.Extra) != 2 || row.Extra["dataset"] != "http_requests" || row.Extra["aws_profile"] != "" {
		t.Errorf("Extra = %q", row.Extra)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("Next = %v, want io.EOF", err)
	}

	// JSONL: only the extra keys present; none without Options.Extra.
	r = NewReader(strings.NewReader(`{"account_id":"`+acct+`","destination_conf":"`+gconf+`","dataset":"dns_logs"}`+"\n"+
		`{"account_id":"`+acct+`","destination_conf":"`+gconf+`"}`), Options{Extra: []string{"dataset", "role_arn"}})
	for _, want := range []map[string]string{{"dataset": "dns_logs"}, {}} {
		row, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(row.Extra) != fmt.Sprint(want) || row.Extra == nil {
			t.Errorf("Extra = %q, want %q", row.Extra, want)
		}
	}
	row, err = NewReader(strings.NewReader("zone_id,destination_conf\n"+zone+","+conf), Options{}).Next()
	if err != nil || row.Extra != nil {
		t.Errorf("Extra without Options.Extra = %v, %v", row.Extra, err)
	}
}

func TestLineError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  *LineError
		want string
	}{
		{&LineError{Line: 12, Field: "zone_id", Err: errors.New("must be 32 hex characters, got 31")}, "line 12: zone_id: must be 32 hex characters, got 31"},
		{&LineError{Line: 3, Err: ErrBothIDs}, "line 3: both zone_id and account_id are set (want exactly one)"},
		{&LineError{Line: 4, Field: "destination_conf", Err: &tasks.FieldError{Field: "destination_conf", Msg: "is empty"}}, "line 4: destination_conf: is empty"},
		{&LineError{Line: 5, Field: "x"}, "line 5: x: invalid"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	le := &LineError{Line: 1, Err: ErrLineTooLong}
	if !errors.Is(le, ErrLineTooLong) {
		t.Errorf("LineError does not unwrap")
	}
	_, err := NewReader(strings.NewReader("zone_id,destination_conf\n"+zone+",ftp://x"), Options{}).Next()
	var fe *tasks.FieldError
	if !errors.As(err, &fe) || fe.Field != "destination_conf" {
		t.Errorf("a conf error does not unwrap to its *tasks.FieldError: %v", err)
	}
}

func TestParseFormat(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Format{"auto": Auto, "csv": CSV, "jsonl": JSONL, " CSV ": CSV, "JSONL": JSONL} {
		got, err := ParseFormat(in)
		if err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v; want %v", in, got, err, want)
		}
		if again, _ := ParseFormat(got.String()); again != got {
			t.Errorf("ParseFormat(%v.String()) = %v", got, again)
		}
	}
	for _, in := range []string{"", "json", "tsv"} {
		if _, err := ParseFormat(in); err == nil || !strings.Contains(err.Error(), "want auto, csv or jsonl") {
			t.Errorf("ParseFormat(%q) error = %v", in, err)
		}
	}
	if s := Format(9).String(); s != "Format(9)" {
		t.Errorf("String() = %q", s)
	}
}

// errReader returns data, then err.
type errReader struct {
	data string
	err  error
}

func (e *errReader) Read(p []byte) (int, error) {
	if e.data == "" {
		return 0, e.err
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	return n, nil
}

func TestReaderIOError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		in   string
		opt  Options
		want []string
	}{
		{"csv", "zone_id,account_id,destination_conf\n" + zone + ",," + conf + "\n" + zone, Options{},
			[]string{"row 2 zone 023e s3", "fatal | read input: boom"}},
		{"jsonl", `{"zone_id":"` + zone + `","destination_conf":"` + conf + `"}` + "\n{", Options{Format: JSONL},
			[]string{"row 1 zone 023e s3", "fatal | read input: boom"}},
		{"detect", "   ", Options{}, []string{"fatal | read input: boom"}},
	} {
		got := readAll(t, NewReader(&errReader{data: tc.in, err: boom}, tc.opt))
		match(t, got, tc.want)
	}
}

// TestGolden pins every error message of a hostile file, in both formats,
// in testdata/*.golden. Run with -update to rewrite them.
func TestGolden(t *testing.T) {
	t.Parallel()
	csvLines := []string{
		"\xef\xbb\xbfzone_id,account_id,destination_conf,dataset",
		zone + ",," + conf + ",http_requests",
		zone[:31] + ",," + conf + ",",
		"," + strings.Repeat("z", 32) + "," + conf + ",",
		zone + "," + acct + "," + conf + ",",
		",," + conf + ",",
		zone + ",,ftp://host/x,",
		zone + ",,s3://mybucket/logs,",
		zone + ",," + secretConf + " ,",
		zone + ",,azure://container/path?sv=2021,",
		zone + ",,file://relative/dir,",
		zone + ",,\"sumo://h.example.com/x\ny\",",
		zone + ",," + conf,
		zone + `,,s3://"b",`,
		zone + ",," + strings.Repeat("x", 70<<10) + ",",
		zone + ",,s3://b\xff?region=x,",
		zone + ",," + conf + ",a\x00b",
	}
	jsonLines := []string{
		`{"zone_id":"` + zone + `","destination_conf":"` + conf + `","dataset":"dns"}`,
		`{"zone_id":123,"destination_conf":"` + conf + `"}`,
		`{"zone_id":"` + zone + `","destination_conf":"` + conf + `","aws_profile":"p"}`,
		`{"zone_id":"` + zone + `","zone_id":"` + zone + `","destination_conf":"` + conf + `"}`,
		`{"zone_id":"` + zone + `","destination_conf":"` + conf + `"} {}`,
		`{"zone_id":"` + zone + `","destination_conf":"` + conf + `"`,
		`["zone_id"]`,
		`{"account_id":"` + acct + `","destination_conf":"` + secretConf + `&header_Authorization=x y"}`,
		`{"account_id":"` + acct + `","destination_conf":"` + strings.Repeat("x", 70<<10) + `"}`,
		`{"account_id":"` + acct + `","destination_conf":"s3://b` + "\xff" + `"}`,
		`{"account_id":"` + acct + `","destination_conf":null}`,
	}
	for name, in := range map[string]string{
		"hostile.csv.golden":   strings.Join(csvLines, "\n") + "\n",
		"hostile.jsonl.golden": strings.Join(jsonLines, "\r\n") + "\r\n",
	} {
		got := strings.Join(readAll(t, NewReader(strings.NewReader(in), Options{Extra: []string{"dataset"}})), "\n") + "\n"
		for _, s := range []string{secretAK, secretSK} {
			if strings.Contains(got, s) {
				t.Errorf("%s: a message reveals a secret", name)
			}
		}
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if got != string(want) {
			t.Errorf("%s differs:\n--- got\n%s--- want\n%s", name, got, want)
		}
	}
}

// TestJSONArray: a JSON array is named as such, with what to do, whether
// the format was guessed or given.
func TestJSONArray(t *testing.T) {
	t.Parallel()
	const in = `[{"zone_id":"023e105f4ecef8ad9ca31a8372d0c353","destination_conf":"gs://b/p"}]` + "\n"
	_, err := NewReader(strings.NewReader(in), Options{}).Next()
	if !errors.Is(err, ErrJSONArray) || !strings.Contains(err.Error(), "JSONL: one object per line") {
		t.Errorf("auto: %v", err)
	}
	_, err = NewReader(strings.NewReader(in), Options{Format: JSONL}).Next()
	var le *LineError
	if !errors.As(err, &le) || le.Line != 1 || !errors.Is(err, ErrJSONArray) {
		t.Errorf("jsonl: %v", err)
	}
}
