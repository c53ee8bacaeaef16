package tasks

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/redact"
)

// Scope values: the wire strings for the two kinds of owner of a Logpush
// job, as they appear in payloads and events.
const (
	ScopeZone    = "zone"
	ScopeAccount = "account"
)

// MaxConfLen is Cloudflare's limit on the length of a destination_conf.
// ParseConf counts bytes, as the API client does, so that a conf it accepts
// is never refused for its length later.
const MaxConfLen = 4096

// Destination types: the scheme of a destination_conf, lower-cased. Events
// carry it as destination_type and metrics use it as a (bounded) label.
// Destinations lists them with Cloudflare's rule for each.
const (
	TypeS3          = "s3"          // AWS S3, or S3-compatible storage with endpoint=
	TypeGCS         = "gs"          // Google Cloud Storage
	TypeAzure       = "azure"       // Azure Blob Storage (a SAS URL with https replaced by azure)
	TypeR2          = "r2"          // Cloudflare R2
	TypeHTTPS       = "https"       // any HTTPS endpoint, New Relic's Log API included
	TypeDatadog     = "datadog"     // Datadog HTTP intake
	TypeSplunk      = "splunk"      // Splunk HEC
	TypeSumo        = "sumo"        // Sumo Logic HTTP source
	TypeBigQuery    = "bq"          // Google BigQuery (credentials= holds a service-account key)
	TypeKinesis     = "kinesis"     // Amazon Kinesis Data Streams
	TypeIBMCloudLog = "ibmcl"       // IBM Cloud Logs
	TypeSentinelOne = "sentinelone" // SentinelOne HEC
	TypeFile        = "file"        // local directory: the simulator and demos, not Cloudflare
)

// Destination is one row of the destination table: a type, its challenge
// rule and the Cloudflare page that documents it.
type Destination struct {
	// Type is one of the Type* constants.
	Type string
	// Challenge says when Cloudflare asks for an ownership challenge.
	Challenge string
	// Doc is the Cloudflare documentation page of the type.
	Doc string
}

// Destinations is the destination table, from Cloudflare's destination
// pages and its Logpush FAQ ("Which destinations require an ownership
// challenge?"), in the order error messages list the types. The README
// shows the same table.
var Destinations = []Destination{
	{TypeS3, "yes, unless access-key-id and secret-access-key are in the conf; none with endpoint= (S3-compatible, AWS GovCloud)", docBase + "aws-s3/"},
	{TypeGCS, "yes", docBase + "google-cloud-storage/"},
	{TypeAzure, "yes", docBase + "azure/"},
	{TypeSumo, "yes (the token goes to the HTTP source)", docBase + "sumo-logic/"},
	{TypeR2, "no", docBase + "r2/"},
	{TypeHTTPS, "no", docBase + "http/"},
	{TypeDatadog, "no", docBase + "datadog/"},
	{TypeSplunk, "no", docBase + "splunk/"},
	{TypeBigQuery, "no", docBase + "bigquery/"},
	{TypeKinesis, "no", docBase + "kinesis/"},
	{TypeIBMCloudLog, "no", docBase + "ibm-cloud-logs/"},
	{TypeSentinelOne, "no", docBase + "sentinelone/"},
	{TypeFile, "yes (simulator only)", ""},
}

// docBase is the address of Cloudflare's destination pages.
const docBase = "https://developers.cloudflare.com/logs/logpush/logpush-job/enable-destinations/"

// typeList is the known types in the order error messages give them.
var typeList = func() string {
	names := make([]string, len(Destinations))
	for i, d := range Destinations {
		names[i] = d.Type
	}
	return strings.Join(names, ", ")
}()

// confField names destination_conf in every FieldError ParseConf returns.
const confField = "destination_conf"

// sumoPath is the path prefix of a Sumo Logic HTTP source address; the
// collector code that follows it is the credential.
const sumoPath = "/receiver/v1/http/"

// Conf is a parsed destination_conf.
//
// Raw and Query may hold secrets (keys, SAS signatures, auth headers): show
// a Conf with Redacted, never Raw. String, GoString and LogValue redact too,
// so printing or logging a Conf by mistake does not leak them.
type Conf struct {
	// Raw is the conf exactly as given: what is sent to Cloudflare,
	// byte-identical at every stage.
	Raw string
	// Type is one of the Type* constants.
	Type string
	// Bucket is the s3, gs or r2 bucket or the Azure container; "" for file
	// and the HTTP-like types.
	Bucket string
	// Prefix is the object path inside the bucket, without leading or
	// trailing slash ("" if none), percent-decoded; it may hold Cloudflare's
	// {DATE} placeholder. For file, it is the absolute directory path
	// without its leading slash.
	Prefix string
	// Region is the s3 region= parameter ("" if absent).
	Region string
	// Endpoint is the s3 endpoint= parameter of S3-compatible storage, as
	// written ("sfo2.digitaloceanspaces.com" or "https://..."); "" for AWS.
	Endpoint string
	// Account is the Azure storage account when the conf is a full SAS URL
	// (azure://<account>.blob.core.windows.net/<container>/...), or the R2
	// account-id= parameter; "" otherwise.
	Account string
	// Query holds the parsed query parameters.
	Query url.Values
}

// FieldError names the field that is wrong and says why. Msg never holds a
// secret: at most a scheme, a character or a length.
type FieldError struct {
	// Field is the input field: "destination_conf" for ParseConf.
	Field string
	// Msg says what is wrong, in lower case.
	Msg string
}

// Error returns "<field>: <msg>".
func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// confError returns a *FieldError for destination_conf.
func confError(format string, args ...any) error {
	return &FieldError{Field: confField, Msg: fmt.Sprintf(format, args...)}
}

// ParseConf parses and checks a destination_conf.
//
// It accepts the formats Cloudflare documents for each scheme and rejects,
// with a *FieldError, what Cloudflare would refuse or what this tool could
// not handle safely: an empty or over-long conf, invalid UTF-8, control or
// whitespace characters (Raw is never trimmed or re-encoded: percent-encode
// them), an unknown scheme, a missing or malformed bucket or container, an
// AWS S3 conf without region=, a file conf without an absolute path, and a
// conf whose secrets Redacted could not mask (for example a secret query
// parameter whose name is percent-encoded, or a value with a quote in it).
// Error messages never contain the conf or any part of a secret.
func ParseConf(raw string) (Conf, error) {
	if err := checkText(raw); err != nil {
		return Conf{}, err
	}
	i := strings.Index(raw, "://")
	if i <= 0 || !validScheme(raw[:i]) {
		return Conf{}, confError("missing scheme: want <scheme>://..., such as s3://bucket/path?region=us-east-1")
	}
	typ := strings.ToLower(raw[:i])
	if !knownType(typ) {
		if typ == "newrelic" {
			return Conf{}, confError("unknown scheme \"newrelic\": New Relic is https://log-api.newrelic.com/log/v1?Api-Key=...&format=cloudflare")
		}
		return Conf{}, confError("unknown scheme %q (want %s)", truncate(raw[:i], 20), typeList)
	}
	if strings.IndexByte(raw, '#') >= 0 {
		return Conf{}, confError("must not contain '#': percent-encode it as %%23")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Conf{}, confError("is not a valid URL: %s", urlReason(err))
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Conf{}, confError("has an invalid query string: %s", queryReason(err))
	}
	c := Conf{Raw: raw, Type: typ, Query: q}
	switch typ {
	case TypeS3:
		err = c.parseS3(u)
	case TypeGCS:
		err = c.parseBucket(u, 222, "gs://bucket/path")
	case TypeR2:
		err = c.parseR2(u)
	case TypeAzure:
		err = c.parseAzure(u)
	case TypeSumo:
		err = c.parseSumo(u)
	case TypeFile:
		err = c.parseFile(u)
	case TypeBigQuery:
		err = c.parseBigQuery(u)
	case TypeKinesis:
		err = c.parseKinesis(u)
	case TypeIBMCloudLog:
		err = c.parseIBMCloudLogs(u)
	case TypeSentinelOne:
		err = c.parseSentinelOne(u)
	default: // https, datadog, splunk
		err = c.parseHTTP(u)
	}
	if err != nil {
		return Conf{}, err
	}
	if err := c.checkRedaction(u); err != nil {
		return Conf{}, err
	}
	return c, nil
}

// checkText checks raw as text: length, encoding and characters.
func checkText(raw string) error {
	switch {
	case raw == "":
		return confError("is empty")
	case len(raw) > MaxConfLen:
		return confError("too long: %d bytes, limit %d", len(raw), MaxConfLen)
	case !utf8.ValidString(raw):
		return confError("is not valid UTF-8")
	}
	first, _ := utf8.DecodeRuneInString(raw)
	last, _ := utf8.DecodeLastRuneInString(raw)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return confError("has leading or trailing whitespace")
	}
	for i, r := range raw {
		switch {
		case unicode.IsControl(r):
			return confError("contains a control character (%U) at byte %d", r, i)
		case unicode.IsSpace(r):
			return confError("contains whitespace (%U) at byte %d: percent-encode it (a space is %%20)", r, i)
		case unicode.Is(unicode.Cf, r):
			return confError("contains an invisible format character (%U) at byte %d", r, i)
		}
	}
	return nil
}

// validScheme reports whether s is a URL scheme: a letter, then letters,
// digits, '+', '-' or '.'.
func validScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// knownType reports whether typ (lower case) is one of the Type* constants.
func knownType(typ string) bool {
	for _, d := range Destinations {
		if d.Type == typ {
			return true
		}
	}
	return false
}

// truncate shortens s (ASCII) to at most n bytes, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// urlReason says why url.Parse failed without quoting the input: the
// errors of net/url quote the URL and parts of it.
func urlReason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ee url.EscapeError
	var he url.InvalidHostError
	switch msg := err.Error(); {
	case errors.As(err, &ee):
		return "invalid percent-escape (want '%' and two hex digits)"
	case errors.As(err, &he):
		return "invalid character in the host"
	case strings.Contains(msg, "invalid port"):
		return "invalid port"
	case strings.Contains(msg, "userinfo"):
		return "invalid user information"
	case strings.Contains(msg, "IP-literal"):
		return "invalid IP literal in the host"
	}
	return "malformed"
}

// queryReason says why url.ParseQuery failed without quoting the input.
func queryReason(err error) string {
	var ee url.EscapeError
	switch {
	case errors.As(err, &ee):
		return "invalid percent-escape (want '%' and two hex digits)"
	case strings.Contains(err.Error(), "semicolon"):
		return "';' is not a separator: use '&' (or percent-encode it as %3B)"
	}
	return "malformed"
}

// single returns the only value of query parameter key, and whether it is
// present. A parameter given twice is an error: which one Cloudflare uses
// is not documented.
func (c *Conf) single(key string) (string, bool, error) {
	vs, ok := c.Query[key]
	if len(vs) > 1 {
		return "", false, confError("%s= is given %d times, want once", key, len(vs))
	}
	if !ok {
		return "", false, nil
	}
	return vs[0], true, nil
}

// parseBucket reads bucket and prefix from host and path: the storage
// schemes. maxLen is the longest bucket name of that storage; example shows
// the expected shape in errors.
func (c *Conf) parseBucket(u *url.URL, maxLen int, example string) error {
	if u.User != nil {
		return confError("must not contain user information (user:password@ before the bucket)")
	}
	switch {
	case u.Host == "":
		return confError("missing bucket name (want %s)", example)
	case strings.Contains(u.Host, ":"):
		return confError("bucket name must not have a port")
	}
	if msg := checkName(u.Host, 3, maxLen); msg != "" {
		return confError("invalid bucket name: %s", msg)
	}
	c.Bucket = u.Host
	c.Prefix = strings.Trim(u.Path, "/")
	return nil
}

// checkName checks a bucket or container name against rules that every
// storage's real names satisfy: min to max characters, ASCII letters,
// digits, '.', '-' and '_', starting and ending with a letter or digit.
// Real names are often stricter (lower case, no '_'); the storage enforces
// that itself. It returns "" if name is acceptable, else why not.
func checkName(name string, minLen, maxLen int) string {
	if n := len(name); n < minLen || n > maxLen {
		return fmt.Sprintf("%d characters, want %d to %d", n, minLen, maxLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case isAlnum(c):
		case c == '.' || c == '-' || c == '_':
			if i == 0 || i == len(name)-1 {
				return "must start and end with a letter or digit"
			}
		default:
			r, _ := utf8.DecodeRuneInString(name[i:])
			return fmt.Sprintf("invalid character %q (want letters, digits, '.', '-' or '_')", r)
		}
	}
	return ""
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// parseS3 handles s3://bucket/path?region=... (AWS, with or without
// access-key-id and secret-access-key) and
// s3://bucket/path?region=...&endpoint=...&access-key-id=...&secret-access-key=...
// (S3-compatible, and AWS GovCloud, which Cloudflare reaches only as
// S3-compatible storage). AWS China regions are refused: Cloudflare does not
// support them.
func (c *Conf) parseS3(u *url.URL) error {
	// 255: buckets created in us-east-1 before 2018 may be that long.
	if err := c.parseBucket(u, 255, "s3://bucket/path?region=us-east-1"); err != nil {
		return err
	}
	endpoint, hasEndpoint, err := c.single("endpoint")
	if err != nil {
		return err
	}
	if hasEndpoint {
		if err := checkEndpoint(endpoint); err != nil {
			return err
		}
		c.Endpoint = endpoint
	}
	if err := c.checkKeys(); err != nil {
		return err
	}
	region, hasRegion, err := c.single("region")
	if err != nil {
		return err
	}
	if !hasRegion {
		if !hasEndpoint {
			return confError("region= is required for AWS S3 (S3-compatible storage needs endpoint= instead)")
		}
		return nil
	}
	if err := checkRegion(region); err != nil {
		return err
	}
	if strings.HasPrefix(strings.ToLower(region), "us-gov-") && !hasEndpoint {
		return confError("region=%s is AWS GovCloud, which Cloudflare reaches only as S3-compatible storage: add endpoint=s3.%s.amazonaws.com, access-key-id= and secret-access-key=", region, strings.ToLower(region))
	}
	c.Region = region
	return nil
}

// checkKeys checks that access-key-id and secret-access-key come together
// and are not empty.
func (c *Conf) checkKeys() error {
	id, hasID, err := c.single("access-key-id")
	if err != nil {
		return err
	}
	secret, hasSecret, err := c.single("secret-access-key")
	if err != nil {
		return err
	}
	switch {
	case hasID != hasSecret:
		return confError("access-key-id= and secret-access-key= must be given together")
	case hasID && (id == "" || secret == ""):
		return confError("access-key-id= or secret-access-key= is empty")
	}
	return nil
}

// HasKeys reports whether the conf carries an access key pair
// (access-key-id and secret-access-key) for Cloudflare to write with.
func (c Conf) HasKeys() bool {
	return c.Query.Get("access-key-id") != "" && c.Query.Get("secret-access-key") != ""
}

// checkRegion checks an AWS region= value: letters, digits and '-', and not
// an AWS China region, which Cloudflare does not support.
func checkRegion(region string) error {
	if region == "" {
		return confError("region= is empty")
	}
	for i := 0; i < len(region); i++ {
		if !isAlnum(region[i]) && region[i] != '-' && region[i] != '_' {
			return confError("region= has an invalid character at position %d (want letters, digits and '-')", i+1)
		}
	}
	if strings.HasPrefix(strings.ToLower(region), "cn-") {
		return confError("region=%s is an AWS China region, which Cloudflare Logpush does not support", region)
	}
	return nil
}

// checkEndpoint checks the endpoint= of S3-compatible storage: a host
// ("sfo2.digitaloceanspaces.com", as Cloudflare documents it) or an http(s)
// URL.
func checkEndpoint(endpoint string) error {
	if endpoint == "" {
		return confError("endpoint= is empty")
	}
	if !strings.Contains(endpoint, "://") {
		return nil
	}
	e, err := url.Parse(endpoint)
	switch {
	case err != nil:
		return confError("endpoint= is not a valid URL: %s", urlReason(err))
	case e.Scheme != "https" && e.Scheme != "http":
		return confError("endpoint= must be a host or an http(s) URL")
	case e.Host == "":
		return confError("endpoint= has no host")
	}
	return nil
}

// parseR2 handles r2://bucket/path?account-id=...&access-key-id=...&secret-access-key=...
func (c *Conf) parseR2(u *url.URL) error {
	if err := c.parseBucket(u, 63, "r2://bucket/path?account-id=...&access-key-id=...&secret-access-key=..."); err != nil {
		return err
	}
	account, ok, err := c.single("account-id")
	switch {
	case err != nil:
		return err
	case !ok || account == "":
		return confError("account-id= is required for R2")
	}
	c.Account = account
	return nil
}

// parseAzure handles the two shapes Cloudflare documents: the container's
// SAS URL with https replaced by azure,
// azure://<account>.blob.core.windows.net/<container>/[dir]?<SAS>, and the
// short azure://<container>/[dir]?<SAS>. Container names never contain a
// dot, so a dotted host is an account's blob endpoint.
func (c *Conf) parseAzure(u *url.URL) error {
	const example = "azure://<account>.blob.core.windows.net/<container>/path?<SAS>"
	if u.User != nil {
		return confError("must not contain user information (user:password@ before the host)")
	}
	if u.Host == "" {
		return confError("missing container (want %s)", example)
	}
	if strings.Contains(u.Host, ":") {
		return confError("host must not have a port")
	}
	container, prefix := u.Host, u.Path
	if strings.Contains(u.Host, ".") {
		account, domain, _ := strings.Cut(u.Host, ".")
		if !strings.HasPrefix(domain, "blob.") && !strings.Contains(domain, ".blob.") {
			return confError("host is neither a container name nor a blob endpoint (want %s)", example)
		}
		if msg := checkAccount(account); msg != "" {
			return confError("invalid storage account name: %s", msg)
		}
		c.Account = account
		container, prefix, _ = strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		if container == "" {
			return confError("missing container after the account host (want %s)", example)
		}
	}
	if msg := checkName(container, 3, 63); msg != "" {
		return confError("invalid container name: %s", msg)
	}
	c.Bucket = container
	c.Prefix = strings.Trim(prefix, "/")
	if sig, _, err := c.single("sig"); err != nil {
		return err
	} else if sig == "" {
		return confError("missing the SAS signature (sig=): give the container's SAS URL with https replaced by azure")
	}
	return nil
}

// checkAccount checks an Azure storage account name: 3 to 24 lower-case
// letters and digits. It returns "" if name is valid, else why not.
func checkAccount(name string) string {
	if n := len(name); n < 3 || n > 24 {
		return fmt.Sprintf("%d characters, want 3 to 24", n)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return "want lower-case letters and digits only"
		}
	}
	return ""
}

// parseSumo handles sumo://<host>/receiver/v1/http/<collector code>. The
// path is checked because the whole address is the credential: Redacted
// masks the code only in that documented shape.
func (c *Conf) parseSumo(u *url.URL) error {
	if err := c.parseHTTP(u); err != nil {
		return err
	}
	p := u.Path
	if len(p) <= len(sumoPath) || !strings.EqualFold(p[:len(sumoPath)], sumoPath) {
		return confError("path must be %s<collector code> (the HTTP source address with https replaced by sumo)", sumoPath)
	}
	return nil
}

// parseBigQuery handles
// bq://projects/<project>/datasets/<dataset>/tables/<table>?credentials=<base64:...|url:...>.
func (c *Conf) parseBigQuery(u *url.URL) error {
	const example = "bq://projects/<project>/datasets/<dataset>/tables/<table>?credentials=base64:..."
	seg := strings.Split(strings.Trim(u.Path, "/"), "/")
	if u.Host != "projects" || len(seg) != 5 || seg[1] != "datasets" || seg[3] != "tables" || seg[0] == "" || seg[2] == "" || seg[4] == "" {
		return confError("want %s", example)
	}
	cred, ok, err := c.single("credentials")
	switch {
	case err != nil:
		return err
	case !ok || cred == "":
		return confError("credentials= is required for BigQuery: the service-account key, base64: or url: encoded")
	case !strings.HasPrefix(cred, "base64:") && !strings.HasPrefix(cred, "url:"):
		return confError("credentials= must start with base64: or url:")
	}
	return nil
}

// parseKinesis handles kinesis://<stream>?region=... with either
// sts-assume-role-arn= (Cloudflare's recommendation) or access-key-id= and
// secret-access-key=.
func (c *Conf) parseKinesis(u *url.URL) error {
	if u.User != nil {
		return confError("must not contain user information (user:password@ before the stream)")
	}
	if u.Host == "" {
		return confError("missing stream name (want kinesis://<stream>?region=...&sts-assume-role-arn=...)")
	}
	if msg := checkName(u.Host, 1, 128); msg != "" {
		return confError("invalid stream name: %s", msg)
	}
	region, ok, err := c.single("region")
	if err != nil {
		return err
	}
	if !ok {
		return confError("region= is required for Kinesis")
	}
	if err := checkRegion(region); err != nil {
		return err
	}
	c.Region = region
	if err := c.checkKeys(); err != nil {
		return err
	}
	role, hasRole, err := c.single("sts-assume-role-arn")
	if err != nil {
		return err
	}
	switch {
	case hasRole && role == "":
		return confError("sts-assume-role-arn= is empty")
	case !hasRole && !c.HasKeys():
		return confError("kinesis needs sts-assume-role-arn= (recommended) or access-key-id= and secret-access-key=")
	}
	return nil
}

// parseIBMCloudLogs handles
// ibmcl://<instance>.ingress.<region>.logs.cloud.ibm.com/logs/v1/singles?ibm_api_key=...
func (c *Conf) parseIBMCloudLogs(u *url.URL) error {
	if err := c.parseHTTP(u); err != nil {
		return err
	}
	if !strings.HasSuffix(strings.ToLower(u.Hostname()), ".logs.cloud.ibm.com") {
		return confError("host must be <instance>.ingress.<region>.logs.cloud.ibm.com")
	}
	if key, _, err := c.single("ibm_api_key"); err != nil {
		return err
	} else if key == "" {
		return confError("ibm_api_key= is required for IBM Cloud Logs")
	}
	return nil
}

// parseSentinelOne handles
// sentinelone://<host>/services/collector/raw?sourcetype=...&header_Authorization=...
func (c *Conf) parseSentinelOne(u *url.URL) error {
	if err := c.parseHTTP(u); err != nil {
		return err
	}
	if auth, _, err := c.single("header_Authorization"); err != nil {
		return err
	} else if auth == "" {
		return confError("header_Authorization= is required for SentinelOne (the HEC token, URL-encoded)")
	}
	return nil
}

// parseHTTP handles the HTTP-like schemes: only a host is required.
func (c *Conf) parseHTTP(u *url.URL) error {
	if u.Hostname() == "" {
		return confError("missing host (want %s://host/path)", c.Type)
	}
	return nil
}

// parseFile handles file:///absolute/dir.
func (c *Conf) parseFile(u *url.URL) error {
	if u.User != nil || u.Host != "" || !strings.HasPrefix(u.Path, "/") {
		return confError("file needs an absolute path and no host: file:///dir")
	}
	c.Prefix = strings.Trim(u.Path, "/")
	return nil
}

// checkRedaction makes sure that Redacted masks every secret of the conf:
// every value of a secret query parameter, the user information and the
// Sumo collector code. The redactor works on the text; a conf whose secrets
// it cannot see (a percent-encoded parameter name, a quote inside a value, an
// '@' in the user information) is refused rather than shown with a secret.
func (c Conf) checkRedaction(u *url.URL) error {
	secrets := false
	for k := range c.Query {
		if redact.SecretParam(k) {
			secrets = true
			break
		}
	}
	if !secrets && u.User == nil && c.Type != TypeSumo {
		return nil
	}
	const advice = "percent-encode quotes, '@' and '&' in it"
	r, err := url.Parse(c.Redacted())
	if err != nil {
		return confError("secrets cannot be masked when shown: %s", advice)
	}
	if u.User != nil && (r.User == nil || r.User.String() != redact.Mask) {
		return confError("the user information cannot be masked when shown: %s", advice)
	}
	if c.Type == TypeSumo && r.Path != u.Path[:len(sumoPath)]+redact.Mask {
		return confError("the collector code cannot be masked when shown: %s", advice)
	}
	rq, err := url.ParseQuery(r.RawQuery)
	if err != nil {
		return confError("secrets cannot be masked when shown: %s", advice)
	}
	for k, vs := range c.Query {
		if !redact.SecretParam(k) {
			continue
		}
		masked := len(rq[k]) == len(vs)
		for _, v := range rq[k] {
			masked = masked && v == redact.Mask
		}
		if !masked {
			return confError("the value of %s cannot be masked when shown: write the name plainly and %s",
				strconv.Quote(truncate(k, 40)), advice)
		}
	}
	return nil
}

// NeedsChallenge reports whether Cloudflare requires an ownership challenge
// for this destination (see Destinations): AWS S3 without an access key
// pair in the conf, Google Cloud Storage, Azure, Sumo Logic and file (the
// simulator's stand-in for a bucket). S3-compatible storage, AWS S3 with
// keys, R2, BigQuery, Kinesis, IBM Cloud Logs, SentinelOne and the HTTP-like
// destinations need none.
func (c Conf) NeedsChallenge() bool {
	switch c.Type {
	case TypeS3:
		return c.Endpoint == "" && !c.HasKeys()
	case TypeGCS, TypeAzure, TypeSumo, TypeFile:
		return true
	}
	return false
}

// TokenReadable reports whether the worker can read the challenge file from
// the destination's storage itself: AWS S3, GCS, Azure and file. For Sumo
// Logic the token is delivered to the HTTP source, where an operator has to
// pick it up.
func (c Conf) TokenReadable() bool {
	switch c.Type {
	case TypeS3:
		return c.NeedsChallenge()
	case TypeGCS, TypeAzure, TypeFile:
		return true
	}
	return false
}

// Redacted returns the conf with every secret masked (redact.String of Raw):
// the form for logs, events, metrics, errors and reports.
func (c Conf) Redacted() string { return redact.String(c.Raw) }

// String returns Redacted, so that printing a Conf shows no secret.
func (c Conf) String() string { return c.Redacted() }

// GoString returns the redacted conf for %#v.
func (c Conf) GoString() string { return "tasks.Conf(" + strconv.Quote(c.Redacted()) + ")" }

// LogValue logs a Conf as its redacted form.
func (c Conf) LogValue() slog.Value { return slog.StringValue(c.Redacted()) }

// Key returns the object key of the challenge file that Cloudflare names
// filename (result.filename of the challenge answer).
//
// Cloudflare documents filename as relative to the bucket
// ("logs/challenge.txt" for s3://mybucket/logs); answers that start with
// "<bucket>/" have been reported, so that prefix is removed, unless the
// conf's own path starts with the bucket's name and filename is already
// relative to the bucket. A leading "/" is removed. For file, the
// filesystem root plays the bucket: Key is the path relative to "/".
func (c Conf) Key(filename string) string {
	f := strings.TrimLeft(filename, "/")
	if c.Bucket == "" {
		return f
	}
	rest, ok := strings.CutPrefix(f, c.Bucket+"/")
	if !ok {
		return f
	}
	// With prefix p and bucket b, "p/x" is documented and "b/p/x" reported;
	// when p itself starts with "b/" (or is "b"), only a second copy of p
	// after "b/" shows that the bucket was prepended.
	if c.Prefix == "" || !underPrefix(f, c.Prefix) || underPrefix(rest, c.Prefix) {
		return rest
	}
	return f
}

// underPrefix reports whether key lies under directory prefix, where a
// {DATE} placeholder in prefix matches itself or the 8 digits (YYYYMMDD)
// that Cloudflare writes in its place.
func underPrefix(key, prefix string) bool {
	const date = "{DATE}"
	for {
		lit, after, found := strings.Cut(prefix, date)
		if !strings.HasPrefix(key, lit) {
			return false
		}
		key = key[len(lit):]
		if !found {
			return strings.HasPrefix(key, "/")
		}
		switch {
		case strings.HasPrefix(key, date):
			key = key[len(date):]
		case len(key) >= 8 && allDigits(key[:8]):
			key = key[8:]
		default:
			return false
		}
		prefix = after
	}
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ValidScopeID reports whether id is a zone or account id: 32 hexadecimal
// characters, in either case.
func ValidScopeID(id string) bool { return cloudflare.IsIdentifier(id) }
