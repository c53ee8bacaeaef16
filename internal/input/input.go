package input

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/logpush-onboard/logpush-onboard/credentials"
	"github.com/logpush-onboard/logpush-onboard/internal/redact"
	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// MaxLineBytes caps a line of the input (a CSV record, with the line ends
// inside its quoted fields): a longer one is a LineError wrapping
// ErrLineTooLong, skipped without being held in memory. A valid record is
// far shorter: two ids and a destination_conf of at most tasks.MaxConfLen.
const MaxLineBytes = 64 << 10

// Column and key names.
const (
	FieldZoneID          = "zone_id"
	FieldAccountID       = "account_id"
	FieldDestinationConf = "destination_conf"
	// FieldCredential names, per row, the Cloudflare credential its calls
	// use (a name of the credentials file, never a secret); optional, like
	// the column.
	FieldCredential = "credential"
	// FieldZoneName is the zone's domain, for people reading the file (plan
	// writes it); optional and never used.
	FieldZoneName = "zone_name"
)

// Errors that a LineError may wrap, and ErrHeader, which the fatal error for
// an unusable CSV header wraps.
var (
	ErrLineTooLong = fmt.Errorf("line too long (limit %d bytes)", MaxLineBytes)
	ErrBothIDs     = errors.New("both zone_id and account_id are set (want exactly one)")
	ErrNoID        = errors.New("neither zone_id nor account_id is set (want exactly one)")
	ErrHeader      = errors.New("invalid CSV header")
	ErrJSONArray   = errors.New("a JSON array is not JSONL: one object per line (jq -c '.[]' in.json > in.jsonl)")
)

// Format is the format of the input (tasks.Format).
type Format = tasks.Format

// Formats (tasks.FormatAuto, tasks.FormatCSV, tasks.FormatJSONL).
const (
	Auto  = tasks.FormatAuto
	CSV   = tasks.FormatCSV
	JSONL = tasks.FormatJSONL
)

// ParseFormat parses "auto", "csv" or "jsonl", in any case.
func ParseFormat(s string) (Format, error) { return tasks.ParseFormat(s) }

// Options set how the input is read.
type Options struct {
	// Format of the input. Default Auto.
	Format Format
	// Extra lists the columns (CSV) or keys (JSONL) allowed besides zone_id,
	// account_id, destination_conf and credential, such as a per-row
	// "dataset"; names are matched without regard to case and surrounding
	// spaces, and the core names are ignored here. Any other column is a fatal header
	// error, any other key a LineError. Default: none.
	Extra []string
	// Credentials, when set, are the credentials a row may name in its
	// credential column: another name is a LineError, and so is a row that
	// names none when there is no default. nil: a name is only checked to
	// be one (credentials.ValidName).
	Credentials *CredentialNames
}

// CredentialNames are the credentials rows may name (Options.Credentials;
// tasks.CredentialNames).
type CredentialNames = tasks.CredentialNames

// Row is one destination of the batch.
type Row struct {
	// Line is the line where the record starts, from 1.
	Line int
	// Scope is tasks.ScopeZone or tasks.ScopeAccount.
	Scope string
	// ScopeID is the zone or account id, lower-cased.
	ScopeID string
	// Conf is the parsed destination_conf.
	Conf tasks.Conf
	// Credential names the Cloudflare credential of the row's calls; "" for
	// the default credential.
	Credential string
	// Extra holds the extra columns or keys present in the input, by their
	// lower-case name as listed in Options.Extra; nil when Options.Extra is
	// empty.
	Extra map[string]string
}

// LineError is a bad line of the input (tasks.LineError).
type LineError = tasks.LineError

// kind is what a column or key holds.
type kind uint8

const (
	kindUnknown kind = iota
	kindZone
	kindAccount
	kindConf
	kindCredential
	kindNote // read and ignored: zone_name
	kindExtra
)

// column is one CSV column.
type column struct {
	kind kind
	name string // lower-case name, for kindExtra
}

// fields are the values of one record.
type fields struct {
	zone, account, conf string
	credential          string
	hasConf             bool
	extra               map[string]string
}

// set stores v, read in a column or key of kind k named name, in f: the
// one mapping of CSV columns and JSONL keys to fields.
func (f *fields) set(k kind, name, v string) {
	switch k {
	case kindZone:
		f.zone = v
	case kindAccount:
		f.account = v
	case kindConf:
		f.conf, f.hasConf = v, true
	case kindCredential:
		f.credential = v
	case kindExtra:
		f.extra[name] = v
	}
}

// Reader reads rows from a CSV or JSONL batch. It is not safe for
// concurrent use.
type Reader struct {
	lr      *lineReader
	format  Format
	extra   []string // lower-case names allowed besides the core fields
	creds   *CredentialNames
	started bool
	err     error // sticky: io.EOF or a fatal error

	// CSV
	cr   *csv.Reader
	cols []column // nil until the header is read
}

// NewReader returns a Reader of r. It reads nothing until the first call to
// Next.
func NewReader(r io.Reader, opt Options) *Reader {
	rd := &Reader{lr: newLineReader(r), format: opt.Format, creds: opt.Credentials}
	for _, name := range opt.Extra {
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" || coreKind(name) != kindUnknown || slices.Contains(rd.extra, name) {
			continue
		}
		rd.extra = append(rd.extra, name)
	}
	return rd
}

// Next returns the next row. At the end of the input it returns io.EOF. A
// bad line is a *LineError, after which Next may be called again for the
// following lines; any other error (I/O, an unusable CSV header) is fatal
// and Next returns it again on every later call.
func (r *Reader) Next() (Row, error) {
	if r.err != nil {
		return Row{}, r.err
	}
	if !r.started {
		r.started = true
		if err := r.start(); err != nil {
			r.err = fmt.Errorf("read input: %w", err)
			return Row{}, r.err
		}
	}
	var row Row
	var err error
	if r.format == JSONL {
		row, err = r.nextJSONL()
	} else {
		row, err = r.nextCSV()
	}
	var le *LineError
	if err != nil && !errors.As(err, &le) {
		r.err = err
	}
	return row, err
}

// start skips a byte order mark, picks the format and sets up CSV.
func (r *Reader) start() error {
	if err := r.lr.skipBOM(); err != nil {
		return err
	}
	if r.format != CSV && r.format != JSONL {
		b, err := r.lr.firstByte()
		if err != nil {
			return err
		}
		r.format = CSV
		switch b {
		case '{':
			r.format = JSONL
		case '[':
			return ErrJSONArray
		}
	}
	if r.format == CSV {
		r.cr = csv.NewReader(r.lr)
		r.cr.FieldsPerRecord = -1
		r.cr.ReuseRecord = true
		r.cr.LazyQuotes = false
	}
	return nil
}

func (r *Reader) nextCSV() (Row, error) {
	for {
		r.lr.beginRecord()
		rec, err := r.cr.Read()
		line := r.lr.recordLine()
		var lineErr error
		var pe *csv.ParseError
		switch {
		case r.lr.overflow:
			lineErr = ErrLineTooLong
		case err == io.EOF:
			return Row{}, io.EOF
		case errors.As(err, &pe):
			lineErr = fmt.Errorf("invalid CSV: %w (line %d, column %d)", pe.Err, line+pe.Line-pe.StartLine, pe.Column)
		case err != nil:
			return Row{}, fmt.Errorf("read input: %w", err)
		}
		if lineErr != nil {
			if r.cols == nil {
				return Row{}, fmt.Errorf("%w: line %d: %w", ErrHeader, line, lineErr)
			}
			return Row{}, &LineError{Line: line, Err: lineErr}
		}
		if allBlank(rec) {
			continue
		}
		if r.cols == nil {
			if err := r.header(rec, line); err != nil {
				return Row{}, err
			}
			continue
		}
		if len(rec) != len(r.cols) {
			return Row{}, &LineError{Line: line, Err: fmt.Errorf("has %d fields, want %d as in the header", len(rec), len(r.cols))}
		}
		var f fields
		if len(r.extra) > 0 {
			f.extra = make(map[string]string, len(r.extra))
		}
		for i, v := range rec {
			f.set(r.cols[i].kind, r.cols[i].name, v)
		}
		return r.row(line, f)
	}
}

// allBlank reports whether every field of a record is white space: a blank
// line, or an empty row such as ",," that spreadsheets write.
func allBlank(rec []string) bool {
	for _, v := range rec {
		if strings.TrimSpace(v) != "" {
			return false
		}
	}
	return true
}

// header reads the CSV header; its errors are fatal.
func (r *Reader) header(rec []string, line int) error {
	cols := make([]column, len(rec))
	seen := make(map[string]bool, len(rec))
	for i, raw := range rec {
		if !utf8.ValidString(raw) {
			return fmt.Errorf("%w: line %d: column %d: name is not valid UTF-8", ErrHeader, line, i+1)
		}
		name := strings.ToLower(strings.TrimSpace(raw))
		switch {
		case name == "":
			return fmt.Errorf("%w: line %d: column %d has no name (want %s)", ErrHeader, line, i+1, r.want())
		case looksLikeData(name):
			return fmt.Errorf("%w: line %d: the first line is data, not a header (want a header %s,%s,%s)",
				ErrHeader, line, FieldZoneID, FieldAccountID, FieldDestinationConf)
		case seen[name]:
			return fmt.Errorf("%w: line %d: column %s appears twice", ErrHeader, line, showName(name))
		}
		seen[name] = true
		switch k := r.kindOf(name); k {
		case kindUnknown:
			return fmt.Errorf("%w: line %d: unknown column %s (want %s)", ErrHeader, line, showName(name), r.want())
		default:
			cols[i] = column{kind: k, name: name}
		}
	}
	switch {
	case !seen[FieldDestinationConf]:
		return fmt.Errorf("%w: line %d: no %s column", ErrHeader, line, FieldDestinationConf)
	case !seen[FieldZoneID] && !seen[FieldAccountID]:
		return fmt.Errorf("%w: line %d: no %s or %s column", ErrHeader, line, FieldZoneID, FieldAccountID)
	}
	r.cols = cols
	return nil
}

// looksLikeData reports whether a header name is rather a value: a conf or
// an id, as when the header line is missing.
func looksLikeData(name string) bool {
	return strings.Contains(name, "://") || tasks.ValidScopeID(name)
}

// coreKind returns the kind of a core field name (lower case).
func coreKind(name string) kind {
	switch name {
	case FieldZoneID:
		return kindZone
	case FieldAccountID:
		return kindAccount
	case FieldDestinationConf:
		return kindConf
	case FieldCredential:
		return kindCredential
	case FieldZoneName:
		return kindNote
	}
	return kindUnknown
}

// kindOf returns the kind of a column or key name (lower case).
func (r *Reader) kindOf(name string) kind {
	if k := coreKind(name); k != kindUnknown {
		return k
	}
	if slices.Contains(r.extra, name) {
		return kindExtra
	}
	return kindUnknown
}

// want lists the allowed names, for error messages.
func (r *Reader) want() string {
	return strings.Join(append([]string{FieldZoneID, FieldAccountID, FieldDestinationConf, FieldCredential}, r.extra...), ", ")
}

// showName quotes a column or key name from the input for an error
// message: short and without secrets, since a mangled line may put a
// destination_conf where a name is expected.
func showName(name string) string {
	simple := len(name) <= 64
	for i := 0; i < len(name) && simple; i++ {
		c := name[i]
		simple = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.'
	}
	if simple && name != "" {
		return name
	}
	name = redact.String(name)
	if utf8.RuneCountInString(name) > 40 {
		name = string([]rune(name)[:40]) + "..."
	}
	return strconv.Quote(name)
}

func (r *Reader) nextJSONL() (Row, error) {
	for {
		b, line, tooLong, err := r.lr.next()
		switch {
		case err == io.EOF:
			return Row{}, io.EOF
		case err != nil:
			return Row{}, fmt.Errorf("read input: %w", err)
		case tooLong:
			return Row{}, &LineError{Line: line, Err: ErrLineTooLong}
		}
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		f, le := r.decode(b, line)
		if le != nil {
			return Row{}, le
		}
		return r.row(line, f)
	}
}

// decode reads one JSON object.
func (r *Reader) decode(b []byte, line int) (fields, *LineError) {
	bad := func(field string, format string, args ...any) (fields, *LineError) {
		return fields{}, &LineError{Line: line, Field: field, Err: fmt.Errorf(format, args...)}
	}
	var f fields
	if len(r.extra) > 0 {
		f.extra = make(map[string]string, len(r.extra))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil {
		return bad("", "invalid JSON: %s", jsonReason(err))
	} else if d, ok := tok.(json.Delim); ok && d == '[' {
		return bad("", "%w", ErrJSONArray)
	} else if !ok || d != '{' {
		return bad("", "want a JSON object")
	}
	var seen [kindExtra]bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return bad("", "invalid JSON: %s", jsonReason(err))
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return bad("", "invalid JSON: %s", jsonReason(err))
		}
		name := strings.ToLower(key)
		k := r.kindOf(name)
		switch {
		case k == kindUnknown:
			return bad(showName(key), "unknown key (want %s)", r.want())
		case k == kindExtra && hasKey(f.extra, name), k != kindExtra && seen[k]:
			return bad(showName(key), "key appears twice")
		}
		field := name
		if k != kindExtra {
			seen[k] = true
		}
		v, err := jsonString(raw)
		if err != nil {
			return bad(field, "%w", err)
		}
		f.set(k, name, v)
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return bad("", "invalid JSON: %s", jsonReason(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("", "unexpected data after the JSON object")
	}
	return f, nil
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// jsonString returns the string a JSON value holds; null is "".
func jsonString(raw json.RawMessage) (string, error) {
	if !utf8.Valid(raw) {
		return "", errors.New("is not valid UTF-8")
	}
	var got string
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("invalid JSON string: %s", jsonReason(err))
		}
		return s, nil
	case 'n':
		return "", nil
	case 't', 'f':
		got = "a boolean"
	case '{':
		got = "an object"
	case '[':
		got = "an array"
	default:
		got = "a number"
	}
	return "", fmt.Errorf("must be a string, got %s", got)
}

// jsonReason describes a JSON syntax error. encoding/json quotes at most
// one character of the input.
func jsonReason(err error) string {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("%s (byte %d)", se.Error(), se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "unexpected end of line"
	}
	return "malformed"
}

// row checks the fields of one record and builds its Row.
func (r *Reader) row(line int, f fields) (Row, error) {
	bad := func(field string, err error) (Row, error) {
		return Row{}, &LineError{Line: line, Field: field, Err: err}
	}
	for _, c := range []struct{ name, v string }{{FieldZoneID, f.zone}, {FieldAccountID, f.account}, {FieldDestinationConf, f.conf}, {FieldCredential, f.credential}} {
		if !utf8.ValidString(c.v) {
			return bad(c.name, errors.New("is not valid UTF-8"))
		}
	}
	for _, name := range r.extra {
		if v, ok := f.extra[name]; ok && !utf8.ValidString(v) {
			return bad(name, errors.New("is not valid UTF-8"))
		}
	}
	zone, account := strings.TrimSpace(f.zone), strings.TrimSpace(f.account)
	scope, field, id := tasks.ScopeZone, FieldZoneID, zone
	switch {
	case zone != "" && account != "":
		return bad("", ErrBothIDs)
	case zone == "" && account == "":
		return bad("", ErrNoID)
	case account != "":
		scope, field, id = tasks.ScopeAccount, FieldAccountID, account
	}
	if err := checkID(id); err != nil {
		return bad(field, err)
	}
	if !f.hasConf {
		return bad(FieldDestinationConf, errors.New("is missing"))
	}
	// Spaces around it (a spreadsheet's) are trimmed as around the ids: a
	// URL cannot carry them.
	conf, err := tasks.ParseConf(strings.TrimSpace(f.conf))
	if err != nil {
		return bad(FieldDestinationConf, err)
	}
	for _, name := range r.extra {
		if i := strings.IndexFunc(f.extra[name], unicode.IsControl); i >= 0 {
			return bad(name, fmt.Errorf("contains a control character at byte %d", i))
		}
	}
	cred := strings.TrimSpace(f.credential)
	if err := r.checkCredential(cred); err != nil {
		return bad(FieldCredential, err)
	}
	return Row{Line: line, Scope: scope, ScopeID: strings.ToLower(id), Conf: conf, Credential: cred, Extra: f.extra}, nil
}

// maxListedNames bounds the credential names a line error lists.
const maxListedNames = 10

// checkCredential checks a row's credential name against
// Options.Credentials.
func (r *Reader) checkCredential(name string) error {
	known := r.creds
	switch {
	case name != "" && !credentials.ValidName(name):
		// Not shown: what is no name may be a pasted secret.
		return errors.New("not a credential name (1 to 64 letters, digits, '.', '_' or '-')")
	case known == nil:
		return nil
	case name == "" && !known.Default:
		if len(known.Names) == 0 {
			return errors.New("none given, and there is no default credential (set CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY)")
		}
		return fmt.Errorf("none given, and there is no default credential (name one of %s, or set CLOUDFLARE_API_TOKEN)", listNames(known.Names))
	case name != "" && !slices.Contains(known.Names, name):
		if len(known.Names) == 0 {
			return fmt.Errorf("unknown credential %s: no credentials file names any", showCredential(name))
		}
		return fmt.Errorf("unknown credential %s (known: %s)", showCredential(name), listNames(known.Names))
	}
	return nil
}

// showCredential quotes an unknown credential name for an error. A long
// one is cut short: a name has the shape of an API token, and a token
// pasted into the column would otherwise be printed whole.
func showCredential(name string) string {
	if len(name) > 24 {
		return strconv.Quote(name[:6]+"...") + fmt.Sprintf(" (%d characters)", len(name))
	}
	return strconv.Quote(name)
}

// listNames lists credential names for an error, at most maxListedNames.
func listNames(names []string) string {
	if len(names) <= maxListedNames {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:maxListedNames], ", ") + fmt.Sprintf(" and %d more", len(names)-maxListedNames)
}

// checkID checks a zone or account id: 32 hex characters.
func checkID(id string) error {
	if n := utf8.RuneCountInString(id); n != 32 {
		return fmt.Errorf("must be 32 hex characters, got %d", n)
	}
	for i, c := range id {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return fmt.Errorf("must be 32 hex characters, got %q at position %d", c, i+1)
		}
	}
	return nil
}
