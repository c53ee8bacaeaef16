package credentials

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v4"

	"github.com/logpush-onboard/logpush-onboard/internal/budget"
)

// ErrFile is wrapped by every error of LoadFile about
// the file's content (not about opening it).
var ErrFile = errors.New("invalid credentials file")

// MaxFileBytes caps a credentials file: a name and a token take
// about a hundred bytes, so ten thousand credentials fit well within it.
const MaxFileBytes = 4 << 20

// Fields of an entry of a credentials file.
const (
	credFieldToken     = "token"
	credFieldEmail     = "email"
	credFieldKey       = "key"
	credFieldAPIRate   = "api_rate"
	credFieldBudgetKey = "budget_key"
)

var credFields = []string{credFieldToken, credFieldEmail, credFieldKey, credFieldAPIRate, credFieldBudgetKey}

var (
	credentialName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
)

// ValidName reports whether name can name a credential in a
// credentials file and in an input row: 1 to 64 letters, digits, '.', '_'
// or '-'.
func ValidName(name string) bool { return credentialName.MatchString(name) }

// Named is one credential of a Set.
//
// Like Cloudflare, it never prints, logs or encodes a secret value.
type Named struct {
	// Name is what input rows give in their credential column; "" for the
	// default credential (from the environment).
	Name string
	// Credentials authenticate the calls made for the rows that name it.
	Credentials Cloudflare
	// APIRate is this credential's API budget, LIMIT/WINDOW as the
	// --api-rate flag takes it ("1000/5m"); "": the process's --api-rate.
	APIRate string
	// BudgetKey names this credential's shared budget, as --budget-key
	// does; "": one budget per credential (Credentials.Digest).
	BudgetKey string
}

// String names the credential and its mode, never a value.
func (n Named) String() string {
	name := n.Name
	if name == "" {
		name = "(default)"
	}
	return "credentials.Named{name: " + name + ", mode: " + n.Credentials.mode() + "}"
}

// GoString is String.
func (n Named) GoString() string { return n.String() }

// Format prints String for every verb.
func (n Named) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, n.String()) }

// LogValue logs the name, the mode and the budget settings.
func (n Named) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", n.Name), slog.String("mode", n.Credentials.mode()),
		slog.String("api_rate", n.APIRate), slog.String("budget_key", n.BudgetKey))
}

// Digest is Credentials.Digest: what a Redis key may use for this
// credential.
func (n Named) Digest() string { return n.Credentials.Digest() }

// Set holds the credentials a batch may use: an optional default
// (CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY), used
// by the rows that name none, and the named credentials of a credentials
// file. Input rows, tasks and events carry names only; every process reads
// the secrets from the same file.
//
// The zero value is an empty set without a default. It prints and logs its
// names only.
type Set struct {
	// File is the credentials file the named credentials come from; "" when
	// none was loaded.
	File string
	// Warnings are findings that do not stop the load, such as a file that
	// other users may read; the caller logs them. They hold no secret.
	Warnings []string

	// Pointers, so that even printing a Set value, whose
	// unexported fields fmt shows without their methods, shows addresses.
	def    *Named
	byName map[string]*Named
	names  []string // sorted
}

// SetDefault makes c the credential of the rows that name none, after
// checking it with Validate; a zero c (nothing set in the environment)
// leaves the set without a default.
func (s *Set) SetDefault(c Cloudflare) error {
	if c == (Cloudflare{}) {
		s.def = nil
		return nil
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("default credential: %w", err)
	}
	s.def = &Named{Credentials: c}
	return nil
}

// HasDefault reports whether the set has a default credential.
func (s *Set) HasDefault() bool { return s != nil && s.def != nil }

// Lookup returns the credential called name; "" is the default. ok is
// false when there is no such credential.
func (s *Set) Lookup(name string) (Named, bool) {
	if s == nil {
		return Named{}, false
	}
	if name == "" {
		if s.def == nil {
			return Named{}, false
		}
		return *s.def, true
	}
	c, ok := s.byName[name]
	if !ok {
		return Named{}, false
	}
	return *c, true
}

// Has reports whether Lookup(name) would find a credential.
func (s *Set) Has(name string) bool {
	_, ok := s.Lookup(name)
	return ok
}

// Names returns the names of the named credentials, sorted (not the
// default's ""). Names are not secrets: errors may list them.
func (s *Set) Names() []string {
	if s == nil {
		return nil
	}
	return slices.Clone(s.names)
}

// Len is the number of named credentials.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.names)
}

// String lists the names, never a value. The printing methods take a
// value, so that a Set printed by value is covered too.
func (s Set) String() string {
	return fmt.Sprintf("credentials.Set{default: %t, names: [%s]}", s.def != nil, strings.Join(s.names, " "))
}

// GoString is String.
func (s Set) GoString() string { return s.String() }

// Format prints String for every verb.
func (s Set) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// LogValue logs the file, whether there is a default and the names.
func (s Set) LogValue() slog.Value {
	return slog.GroupValue(slog.String("file", s.File), slog.Bool("default", s.def != nil), slog.Any("names", slices.Clone(s.names)))
}

// MarshalJSON encodes what LogValue logs.
func (s Set) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		File    string   `json:"file"`
		Default bool     `json:"default"`
		Names   []string `json:"names"`
	}{s.File, s.def != nil, slices.Clone(s.names)})
}

// LoadFile reads a credentials file: YAML, or JSON (which is
// YAML too), mapping each credential's name to either an API token or an
// entry with these fields:
//
//	alice:                       # a name: 1 to 64 letters, digits, '.', '_' or '-'
//	  token: "..."               # an API token, or:
//	bob:
//	  email: bob@example.com     # an email and a global API key
//	  key: "..."
//	  api_rate: 1000/5m          # optional: this credential's API budget (as --api-rate)
//	  budget_key: bob-user       # optional: its shared budget's name (as --budget-key)
//	carol: "..."                 # shorthand for {token: "..."}
//
// Values are taken as written: a key of digits stays the string it is,
// whatever YAML would make of it. The set has no default: SetDefault
// gives it the environment's.
//
// Every error names the file and, where it applies, the credential, the
// field and the line; none holds a value of the file but a credential's
// name and its api_rate or budget_key. A file that other users may read
// (any permission bit for others) is loaded with a warning in Warnings:
// a Kubernetes Secret volume is mounted 0644 unless told otherwise, and
// refusing it would break the common setup for little gain.
func LoadFile(path string) (*Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("credentials file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("credentials file: %w", err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("credentials file %s: %w: is a directory", path, ErrFile)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("credentials file %s: %w", path, err)
	}
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("credentials file %s: %w: larger than %d bytes", path, ErrFile, MaxFileBytes)
	}
	s, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("credentials file %s: %w", path, err)
	}
	s.File = path
	if perm := fi.Mode().Perm(); perm&0o007 != 0 {
		s.Warnings = append(s.Warnings, fmt.Sprintf("credentials file %s is readable by other users (mode %04o): chmod o-rwx it, or set defaultMode 0440 on its Kubernetes Secret volume", path, perm))
	}
	return s, nil
}

// Parse is LoadFile for the content of a file.
// Its errors wrap ErrFile and name no file.
func Parse(b []byte) (*Set, error) {
	var doc yaml.Node
	ld, err := yaml.NewLoader(strings.NewReader(string(b)))
	if err == nil {
		err = ld.Load(&doc)
	}
	switch {
	case errors.Is(err, io.EOF):
		return nil, fmt.Errorf("%w: empty: it names no credential", ErrFile)
	case err != nil:
		return nil, fmt.Errorf("%w: %s", ErrFile, yamlReason(err))
	}
	var more yaml.Node
	if err := ld.Load(&more); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: more than one YAML document (want one mapping of names to credentials)", ErrFile)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, fmt.Errorf("%w: empty: it names no credential", ErrFile)
		}
		root = root.Content[0]
	}
	root = deref(root)
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, fmt.Errorf("%w: empty: it names no credential", ErrFile)
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: line %d: want a mapping of credential names to credentials, got %s", ErrFile, root.Line, kindName(root))
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("%w: it names no credential", ErrFile)
	}
	s := &Set{byName: make(map[string]*Named, len(root.Content)/2)}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := deref(root.Content[i]), deref(root.Content[i+1])
		if k.Kind != yaml.ScalarNode || !ValidName(k.Value) {
			// The name is not shown: what stands where a name should may be
			// a pasted secret.
			return nil, fmt.Errorf("%w: line %d: credential names are 1 to 64 letters, digits, '.', '_' or '-'", ErrFile, k.Line)
		}
		name := k.Value
		if _, dup := s.byName[name]; dup {
			return nil, fmt.Errorf("%w: line %d: credential %s appears twice", ErrFile, k.Line, name)
		}
		c, err := parseEntry(name, v)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrFile, err)
		}
		s.byName[name] = &c
		s.names = append(s.names, name)
	}
	slices.Sort(s.names)
	return s, nil
}

// parseEntry reads the credential called name.
func parseEntry(name string, v *yaml.Node) (Named, error) {
	c := Named{Name: name}
	bad := func(n *yaml.Node, field, format string, args ...any) (Named, error) {
		where := fmt.Sprintf("line %d: credential %s", n.Line, name)
		if field != "" {
			where += ": " + field
		}
		return Named{}, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...))
	}
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" || v.Value == "" {
			return bad(v, "", "no token given (want a token, or a mapping with token, or email and key)")
		}
		c.Credentials.APIToken = v.Value
	case yaml.MappingNode:
		seen := map[string]bool{}
		for j := 0; j+1 < len(v.Content); j += 2 {
			fk, fv := deref(v.Content[j]), deref(v.Content[j+1])
			field := fk.Value
			if fk.Kind != yaml.ScalarNode || !slices.Contains(credFields, field) {
				shown := "an unknown field"
				if fk.Kind == yaml.ScalarNode && len(field) <= 24 && credentialName.MatchString(field) {
					shown = "unknown field " + field
				}
				return bad(fk, "", "%s (want %s)", shown, strings.Join(credFields, ", "))
			}
			if seen[field] {
				return bad(fk, field, "appears twice")
			}
			seen[field] = true
			if fv.Kind != yaml.ScalarNode {
				return bad(fv, field, "must be a string, got %s", kindName(fv))
			}
			val := fv.Value
			if fv.Tag == "!!null" {
				val = ""
			}
			if val == "" {
				return bad(fv, field, "is empty")
			}
			switch field {
			case credFieldToken:
				c.Credentials.APIToken = val
			case credFieldEmail:
				c.Credentials.Email = val
			case credFieldKey:
				c.Credentials.APIKey = val
			case credFieldAPIRate:
				if _, err := budget.ParseRate(val); err != nil {
					return bad(fv, field, "%v", err)
				}
				c.APIRate = val
			case credFieldBudgetKey:
				if err := budget.CheckKey(val); err != nil {
					return bad(fv, field, "%v", err)
				}
				c.BudgetKey = val
			}
		}
	default:
		return bad(v, "", "want a token, or a mapping with token, or email and key; got %s", kindName(v))
	}
	cr := c.Credentials
	switch token, email, key := cr.APIToken != "", cr.Email != "", cr.APIKey != ""; {
	case token && (email || key):
		return bad(v, "", "both a token and an email/key: give one of the two")
	case email && !key:
		return bad(v, credFieldKey, "missing: an email needs its global API key")
	case key && !email:
		return bad(v, credFieldEmail, "missing: a global API key needs its account email")
	case !token && !email:
		return bad(v, credFieldToken, "missing: give a token, or email and key")
	}
	for _, f := range []struct{ field, v string }{{credFieldToken, cr.APIToken}, {credFieldEmail, cr.Email}, {credFieldKey, cr.APIKey}} {
		if f.v != "" && hasControl(f.v) {
			return bad(v, f.field, "contains whitespace or control characters")
		}
	}
	if err := cr.Validate(); err != nil { // covered above; kept as the last word
		return bad(v, "", "%v", err)
	}
	return c, nil
}

// deref follows a YAML alias to its anchored node.
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// kindName describes a node's kind for an error message, without its value.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	}
	return "something else"
}

// yamlReason describes a YAML or JSON syntax error by its position and the
// parser's message, which names no value of the input.
func yamlReason(err error) string {
	var le *yaml.LoadError
	if errors.As(err, &le) {
		msg := le.Message
		if msg == "" {
			msg = "invalid YAML or JSON"
		}
		if le.Mark.Line > 0 {
			return fmt.Sprintf("line %d, column %d: invalid YAML or JSON: %s", le.Mark.Line, le.Mark.Column, msg)
		}
		return "invalid YAML or JSON: " + msg
	}
	return "invalid YAML or JSON"
}

// hasControl reports whether s holds a space or a control character.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f })
}

// NewSet returns a set of the named credentials given, checked as Parse
// checks a file's entries (a valid and unique name, one authentication
// mode, a valid api_rate and budget_key), without a default: SetDefault
// gives it one. It is the set of a program that holds its credentials
// elsewhere than in a file. Errors name the credential, never a value.
func NewSet(named ...Named) (*Set, error) {
	s := &Set{byName: make(map[string]*Named, len(named))}
	for _, n := range named {
		if !ValidName(n.Name) {
			return nil, fmt.Errorf("%w: credential names are 1 to 64 letters, digits, '.', '_' or '-'", ErrInvalid)
		}
		if _, dup := s.byName[n.Name]; dup {
			return nil, fmt.Errorf("%w: credential %s appears twice", ErrInvalid, n.Name)
		}
		if err := n.Credentials.Validate(); err != nil {
			return nil, fmt.Errorf("credential %s: %w", n.Name, err)
		}
		if n.APIRate != "" {
			if _, err := budget.ParseRate(n.APIRate); err != nil {
				return nil, fmt.Errorf("%w: credential %s: %s: %w", ErrInvalid, n.Name, credFieldAPIRate, err)
			}
		}
		if n.BudgetKey != "" {
			if err := budget.CheckKey(n.BudgetKey); err != nil {
				return nil, fmt.Errorf("%w: credential %s: %s: %w", ErrInvalid, n.Name, credFieldBudgetKey, err)
			}
		}
		c := n
		s.byName[n.Name] = &c
		s.names = append(s.names, n.Name)
	}
	slices.Sort(s.names)
	return s, nil
}
