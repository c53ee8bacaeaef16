package destination

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/storage"
	"golang.org/x/oauth2"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	htransport "google.golang.org/api/transport/http"

	"github.com/logpush-onboard/logpush-onboard/internal/redact"
)

// GCSOptions configures NewGCS. The zero value reads Google Cloud Storage
// with Application Default Credentials.
type GCSOptions struct {
	// Endpoint is the base URL of a GCS emulator such as fake-gcs-server,
	// "http://127.0.0.1:4443" (a URL without a path gets the JSON API's
	// "/storage/v1/"). Requests to an emulator carry no credentials. Default:
	// none, which leaves STORAGE_EMULATOR_HOST (an emulator too, as the SDK
	// has it) and, failing that, GCS in charge.
	Endpoint string
	// CredentialsFile is a service account key file (JSON) to read and
	// write with; a Location's As.GCPCredentialsFile overrides it. Only
	// service account keys are accepted. Default: Application Default
	// Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's, the metadata
	// server).
	CredentialsFile string
	// MaxBodyBytes caps the size of a challenge file. Default:
	// DefaultMaxBodyBytes (64 KiB).
	MaxBodyBytes int64
	// MaxAttempts is how many times the SDK tries one read before giving the
	// error back; retrying beyond that belongs to the queue. Writes are tried
	// once. Default: 2.
	MaxAttempts int
	// HTTPClient sends the requests; its Transport carries them under the
	// authentication this reader adds. Default: a client with
	// http.DefaultTransport.
	HTTPClient *http.Client
	// Observe, when set, is called once per Read, Write, Delete and List with the
	// operation and its Outcome. One call may cover up to MaxAttempts HTTP
	// requests. Default: nil.
	Observe ObserveFunc
}

// WithDefaults returns o with every zero field set to its default.
func (o GCSOptions) WithDefaults() GCSOptions {
	o.MaxBodyBytes = cmp.Or(o.MaxBodyBytes, DefaultMaxBodyBytes)
	o.MaxAttempts = cmp.Or(o.MaxAttempts, 2)
	return o
}

func (o GCSOptions) validate() error {
	if err := checkLimits(o.MaxBodyBytes, o.MaxAttempts); err != nil {
		return err
	}
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			// The endpoint itself is not quoted: it may carry userinfo.
			return errors.New("endpoint is not an http or https URL without user information")
		}
	}
	return nil
}

// GCS reads and writes objects in Google Cloud Storage buckets, through the
// XML API (whose answers carry Last-Modified). It keeps one client per
// credentials file. It is safe for concurrent use.
type GCS struct {
	opts     GCSOptions
	emulator bool
	endpoint string // normalised Endpoint, "" for the SDK's choice

	mu      sync.Mutex
	clients map[string]*storage.Client
}

var (
	_ Reader = (*GCS)(nil)
	_ Writer = (*GCS)(nil)
	_ Lister = (*GCS)(nil)
)

// NewGCS returns a GCS reader and writer. Unless it talks to an emulator it
// finds its credentials (CredentialsFile, else Application Default
// Credentials) now and fails without them; it makes no request to storage.
func NewGCS(ctx context.Context, opts GCSOptions) (*GCS, error) {
	opts = opts.WithDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("gcs options: %w", err)
	}
	g := &GCS{
		opts:     opts,
		emulator: opts.Endpoint != "" || os.Getenv("STORAGE_EMULATOR_HOST") != "",
		clients:  make(map[string]*storage.Client),
	}
	if opts.Endpoint != "" {
		u, _ := url.Parse(opts.Endpoint)
		if u.Path == "" || u.Path == "/" {
			u.Path = "/storage/v1/"
		}
		g.endpoint = u.String()
	}
	if _, err := g.client(ctx, Identity{}); err != nil {
		return nil, fmt.Errorf("gcs: %w", err)
	}
	return g, nil
}

// Close closes the clients' idle connections.
func (g *GCS) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	var errs []error
	for k, c := range g.clients {
		errs = append(errs, c.Close())
		delete(g.clients, k)
	}
	return errors.Join(errs...)
}

// client returns the client for an identity: the reader's own credentials
// unless as names a credentials file. Its errors mean that the credentials
// cannot be had or used: permanent.
func (g *GCS) client(ctx context.Context, as Identity) (*storage.Client, error) {
	file := cmp.Or(as.GCPCredentialsFile, g.opts.CredentialsFile)
	if g.emulator {
		file = ""
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if c, ok := g.clients[file]; ok {
		return c, nil
	}
	// Credentials outlive the request that first needed them: token
	// refreshes must not be tied to its context.
	ctx = context.WithoutCancel(ctx)
	base := http.DefaultTransport
	hc := &http.Client{}
	if g.opts.HTTPClient != nil {
		*hc = *g.opts.HTTPClient
		if hc.Transport != nil {
			base = hc.Transport
		}
	}
	var rt http.RoundTripper = gcsProbeTransport{base: base}
	// WithoutAuthentication stops the SDK from looking for credentials of
	// its own: the transport carries them. Client metrics would be exported
	// to Cloud Monitoring: Observe is the metrics hook here.
	opts := []option.ClientOption{storage.WithXMLReads(), storage.WithDisabledClientMetrics(), option.WithoutAuthentication()}
	if g.emulator {
		if g.endpoint != "" {
			opts = append(opts, option.WithEndpoint(g.endpoint))
		}
	} else {
		what := "application default credentials"
		topts := []option.ClientOption{option.WithScopes(storage.ScopeReadWrite)}
		if file != "" {
			what = "gcp credentials file " + file
			key, err := readServiceAccountKey(file)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			topts = append(topts, option.WithAuthCredentialsJSON(option.ServiceAccount, key))
		}
		var err error
		rt, err = htransport.NewTransport(ctx, rt, topts...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, redactErr(err))
		}
	}
	hc.Transport = rt
	opts = append(opts, option.WithHTTPClient(hc))
	c, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("gcs client: %w", redactErr(err))
	}
	c.SetRetry(storage.WithMaxAttempts(g.opts.MaxAttempts))
	g.clients[file] = c
	return c, nil
}

// readServiceAccountKey reads a service account key file. Other kinds of
// credentials file (external accounts, impersonation) can make the
// credential library fetch from URLs they name, so they are refused. Errors
// never quote the file's content.
func readServiceAccountKey(name string) ([]byte, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var key struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(data, &key); err != nil {
		return nil, errors.New("not a JSON credentials file")
	}
	if key.Type != "service_account" {
		return nil, fmt.Errorf("credentials of type %q, want a service account key (type service_account)", truncateText(key.Type, 40))
	}
	return data, nil
}

// truncateText returns at most n bytes of s, valid UTF-8, with "..." when cut.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}

func checkGCSLocation(loc Location) error {
	switch {
	case loc.Bucket == "":
		return errors.New("invalid location: empty bucket")
	case loc.Key == "":
		return errors.New("invalid location: empty key")
	}
	return nil
}

// Read gets loc with one XML API GET request. It checks Last-Modified
// against notBefore before reading the body: a stale object is closed
// unread. The body is read up to MaxBodyBytes; a larger object is a
// Permanent error. Last-Modified has whole seconds.
//
// A 404 without GCS's error code (an emulator's) costs one more request, for
// the bucket, to tell a missing bucket from a missing object.
func (g *GCS) Read(ctx context.Context, loc Location, notBefore time.Time) (obj Object, err error) {
	defer func() { g.opts.Observe.observe(OpRead, err) }()
	if err := checkGCSLocation(loc); err != nil {
		return Object{}, &Error{Kind: Permanent, Op: OpRead, Location: loc, Err: err}
	}
	client, err := g.client(ctx, loc.As)
	if err != nil {
		return Object{}, &Error{Kind: Permanent, Op: OpRead, Location: loc, Err: err}
	}
	probe := new(gcsProbe)
	r, err := client.Bucket(loc.Bucket).Object(loc.Key).NewReader(probe.context(ctx))
	if err != nil {
		return Object{}, g.classify(ctx, client, OpRead, loc, err, probe)
	}
	defer r.Close()

	if r.Attrs.LastModified.IsZero() {
		if !notBefore.IsZero() {
			return Object{}, &Error{Kind: Permanent, Op: OpRead, Location: loc,
				Err: errors.New("response has no Last-Modified: an old challenge file cannot be told from a new one")}
		}
	} else {
		obj.ModTime = r.Attrs.LastModified
	}
	if obj.ModTime.Before(notBefore) {
		return Object{}, stale(OpRead, loc, obj.ModTime, notBefore)
	}
	limit := g.opts.MaxBodyBytes
	if r.Attrs.Size > limit {
		return Object{}, tooLarge(OpRead, loc, limit)
	}
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		// A fresh probe: error answers before the one being read are over.
		return Object{}, g.classify(ctx, client, OpRead, loc, fmt.Errorf("read body: %w", err), new(gcsProbe))
	}
	if int64(len(body)) > limit {
		return Object{}, tooLarge(OpRead, loc, limit)
	}
	obj.Body = body
	return obj, nil
}

// Delete deletes loc with one JSON API request, not retried. An object
// that is not there is deleted already.
func (g *GCS) Delete(ctx context.Context, loc Location) (err error) {
	defer func() { g.opts.Observe.observe(opDelete, err) }()
	if err := checkGCSLocation(loc); err != nil {
		return &Error{Kind: Permanent, Op: opDelete, Location: loc, Err: err}
	}
	client, err := g.client(ctx, loc.As)
	if err != nil {
		return &Error{Kind: Permanent, Op: opDelete, Location: loc, Err: err}
	}
	probe := new(gcsProbe)
	if err := client.Bucket(loc.Bucket).Object(loc.Key).Delete(probe.context(ctx)); err != nil {
		if err := g.classify(ctx, client, opDelete, loc, err, probe); !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

// Write puts body at loc with one JSON API upload request, not retried.
func (g *GCS) Write(ctx context.Context, loc Location, body []byte) (err error) {
	defer func() { g.opts.Observe.observe(opWrite, err) }()
	if err := checkGCSLocation(loc); err != nil {
		return &Error{Kind: Permanent, Op: opWrite, Location: loc, Err: err}
	}
	client, err := g.client(ctx, loc.As)
	if err != nil {
		return &Error{Kind: Permanent, Op: opWrite, Location: loc, Err: err}
	}
	probe := new(gcsProbe)
	w := client.Bucket(loc.Bucket).Object(loc.Key).NewWriter(probe.context(ctx))
	w.ChunkSize = 0 // one request, no resumable session
	w.ContentType = "text/plain"
	if _, err := w.Write(body); err != nil {
		w.Close()
		return g.classify(ctx, client, opWrite, loc, err, probe)
	}
	if err := w.Close(); err != nil {
		return g.classify(ctx, client, opWrite, loc, err, probe)
	}
	return nil
}

// gcsListMax is the most objects one List asks for: the JSON API's most
// per page.
const gcsListMax = 1000

// List lists the objects under the prefix loc.Key (which may be empty: the
// whole bucket) with one JSON API objects.list request (plus the SDK's
// retries): its first page of up to 1000 objects, in key order, with only
// their names and dates. It needs storage.objects.list on the bucket.
//
// An object's date is its updated time, which the SDK also gives as
// Last-Modified when it reads over JSON or gRPC. It has milliseconds where
// Read's Last-Modified has whole seconds, so it is never earlier than
// Read's: a listing never takes a fresh file for an old one that a read
// would not.
func (g *GCS) List(ctx context.Context, loc Location) (l Listing, err error) {
	defer func() { g.opts.Observe.observe(OpList, err) }()
	check := loc
	check.Key = loc.Key + "-" // checkGCSLocation wants a key; a prefix may be ""
	if err := checkGCSLocation(check); err != nil {
		return Listing{}, &Error{Kind: Permanent, Op: OpList, Location: loc, Err: err}
	}
	client, err := g.client(ctx, loc.As)
	if err != nil {
		return Listing{}, &Error{Kind: Permanent, Op: OpList, Location: loc, Err: err}
	}
	q := &storage.Query{Prefix: loc.Key}
	// A page of full object resources is several hundred KiB; the names
	// and dates are all a listing keeps.
	if err := q.SetAttrSelection([]string{"Name", "Updated"}); err != nil {
		return Listing{}, &Error{Kind: Permanent, Op: OpList, Location: loc, Err: err}
	}
	probe := new(gcsProbe)
	it := client.Bucket(loc.Bucket).Objects(probe.context(ctx), q)
	it.PageInfo().MaxSize = gcsListMax
	l = Listing{Prefix: loc.Key, ModTimes: make(map[string]time.Time)}
	// Next fetches a page when the one before is used up: stopping when the
	// first page is (Remaining 0) keeps to its one request. (Only a first
	// page that is empty yet says more follow makes the SDK ask for the
	// next: GCS may answer so.) Pager.NextPage would not do: it asks again
	// whenever a page holds fewer than the page size and more follow.
	for {
		o, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return Listing{}, g.classify(ctx, client, OpList, loc, err, probe)
		}
		if o.Name != "" {
			if o.Updated.IsZero() {
				return Listing{}, &Error{Kind: Permanent, Op: OpList, Location: loc,
					Err: fmt.Errorf("object %q listed without its updated time: an old challenge file cannot be told from a new one", truncateText(o.Name, 200))}
			}
			l.ModTimes[o.Name] = o.Updated
			l.Through = max(l.Through, o.Name)
		}
		if it.PageInfo().Remaining() == 0 {
			break
		}
	}
	// The token of the next page, when there is one.
	l.Complete = it.PageInfo().Token == ""
	return l, nil
}

// gcsFailure is what an error answer of GCS says, in either API's format.
type gcsFailure struct {
	status  int
	code    string // XML <Code>, or the JSON API's first errors[].reason
	message string
}

// gcsFailureOf finds the HTTP status and error code of err, from the SDK's
// error or from the last error answer the probe saw.
func gcsFailureOf(err error, probe *gcsProbe) gcsFailure {
	var f gcsFailure
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		f.status = gerr.Code
		f.message = gerr.Message
		if len(gerr.Errors) > 0 {
			f.code = gerr.Errors[0].Reason
		}
	}
	if status, body := probe.last(); status != 0 && (f.status == 0 || f.status == status) {
		f.status = status
		if code, msg := parseGCSError(body); code != "" || msg != "" {
			f.code, f.message = cmp.Or(code, f.code), cmp.Or(msg, f.message)
		}
	}
	return f
}

// String returns "HTTP 403 AccessDenied: Access denied." and the like.
func (f gcsFailure) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d", f.status)
	if f.code != "" {
		b.WriteString(" " + f.code)
	}
	if f.message != "" {
		b.WriteString(": " + f.message)
	}
	return b.String()
}

// parseGCSError reads an XML API error (<Error><Code>NoSuchKey</Code>
// <Message>...</Message><Details>...</Details></Error>) or a JSON API one
// ({"error":{"code":404,"message":"...","errors":[{"reason":"notFound"}]}}).
func parseGCSError(body []byte) (code, message string) {
	body = bytes.TrimSpace(body)
	switch {
	case bytes.HasPrefix(body, []byte("<")):
		var x struct {
			Code    string `xml:"Code"`
			Message string `xml:"Message"`
			Details string `xml:"Details"`
		}
		if xml.Unmarshal(body, &x) != nil {
			return "", ""
		}
		message = oneLine(x.Message)
		if d := oneLine(x.Details); d != "" {
			message = strings.TrimSpace(message + " " + d)
		}
		return oneLine(x.Code), message
	case bytes.HasPrefix(body, []byte("{")):
		var j struct {
			Error struct {
				Message string `json:"message"`
				Errors  []struct {
					Reason string `json:"reason"`
				} `json:"errors"`
			} `json:"error"`
		}
		if json.Unmarshal(body, &j) != nil {
			return "", ""
		}
		if len(j.Error.Errors) > 0 {
			code = oneLine(j.Error.Errors[0].Reason)
		}
		return code, oneLine(j.Error.Message)
	}
	return "", ""
}

// oneLine returns the first line of s, trimmed and at most 300 bytes long.
func oneLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// gcsBucketMissing reports whether a 404 answer says that the bucket (not
// the object) does not exist; known is false when the answer says neither.
func gcsBucketMissing(f gcsFailure) (missing, known bool) {
	switch {
	case f.code == "NoSuchBucket", strings.Contains(f.message, "bucket does not exist"):
		return true, true
	case f.code == "NoSuchKey", strings.HasPrefix(f.message, "No such object"):
		return false, true
	}
	return false, false
}

// GCS error code classes, of the XML <Code> or the JSON reason.
func gcsThrottled(code string) bool {
	switch code {
	case "SlowDown", "rateLimitExceeded", "userRateLimitExceeded", "TooManyRequests":
		return true
	}
	return false
}

// classify turns an SDK error into ErrNotFound or an *Error.
func (g *GCS) classify(ctx context.Context, client *storage.Client, op string, loc Location, err error, probe *gcsProbe) error {
	f := gcsFailureOf(err, probe)
	notExist := errors.Is(err, storage.ErrObjectNotExist) || errors.Is(err, storage.ErrBucketNotExist) || f.status == http.StatusNotFound
	if notExist && f.status == 0 {
		f.status = http.StatusNotFound
	}
	cause := err
	if f.status != 0 {
		cause = &scrubbedError{msg: f.String(), err: err}
	}
	cause = redactErr(cause)

	e := &Error{Kind: Permanent, Op: op, Location: loc, Err: cause, HTTPStatus: f.status}
	tokenStatus, tokenFailed := gcsTokenFailure(err)
	switch {
	case ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		e.Kind = Transient
	case tokenFailed:
		// The token endpoint refused: the credentials are wrong, unless it
		// failed itself.
		e.Err = redactErr(&scrubbedError{msg: "token endpoint answered " + tokenStatus, err: err})
		if strings.HasPrefix(tokenStatus, "HTTP 5") || tokenStatus == "HTTP 429" {
			e.Kind = Transient
		} else {
			e.Err = fmt.Errorf("cannot get an access token with the credentials of this process: %w", e.Err)
		}
	case notExist:
		missing, known := gcsBucketMissing(f)
		if !known && g.emulator {
			missing = g.bucketMissing(ctx, client, loc.Bucket)
		}
		switch {
		case missing:
			e.Err = fmt.Errorf("bucket does not exist: %w", cause)
		case op != opWrite:
			return notFound(op, loc)
		}
	case f.status == http.StatusTooManyRequests || gcsThrottled(f.code):
		e.Kind = Transient
		e.Err = fmt.Errorf("throttled by storage: %w", cause)
	case f.status == http.StatusUnauthorized:
		e.Err = fmt.Errorf("storage rejected the credentials of this process: %w", cause)
	case f.status == http.StatusForbidden:
		e.Principal = gcsPrincipal(cause.Error())
		switch op {
		case OpRead:
			e.Permission = "storage.objects.get"
		case opDelete:
			e.Permission = "storage.objects.delete"
		case OpList:
			e.Permission = "storage.objects.list"
		default:
			e.Permission = "storage.objects.create (and storage.objects.delete to replace a file)"
		}
	case f.status >= 500 || f.status == http.StatusRequestTimeout:
		e.Kind = Transient
		e.Err = fmt.Errorf("storage unavailable: %w", cause)
	case f.status >= 400:
		// Anything else the server refused stays refused.
	default:
		// No HTTP answer: connection refused or reset, DNS, TLS, timeouts,
		// a truncated body. Retry.
		e.Kind = Transient
	}
	return e
}

// gcsTokenFailure reports whether err is a token endpoint's refusal, and
// its answer: "HTTP 400 invalid_grant: Invalid JWT Signature.".
func gcsTokenFailure(err error) (answer string, ok bool) {
	var (
		status int
		body   []byte
	)
	var aerr *auth.Error
	var rerr *oauth2.RetrieveError
	switch {
	case errors.As(err, &aerr) && aerr.Response != nil:
		status, body = aerr.Response.StatusCode, aerr.Body
	case errors.As(err, &rerr) && rerr.Response != nil:
		status, body = rerr.Response.StatusCode, rerr.Body
	default:
		return "", false
	}
	answer = fmt.Sprintf("HTTP %d", status)
	var j struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &j) == nil && j.Error != "" {
		answer += " " + oneLine(j.Error)
		if d := oneLine(j.Description); d != "" {
			answer += ": " + d
		}
	}
	return answer, true
}

// bucketMissing asks whether bucket exists, for an emulator's 404 that did
// not say which was missing. Any answer but "no such bucket" counts as
// "exists": the object is what is missing.
func (g *GCS) bucketMissing(ctx context.Context, client *storage.Client, bucket string) bool {
	_, err := client.Bucket(bucket).Attrs(ctx)
	return errors.Is(err, storage.ErrBucketNotExist)
}

// redactErr returns err with a text free of the given secrets and of
// anything that looks like a secret query parameter or URL credentials. The
// original stays reachable with errors.As.
func redactErr(err error, secrets ...string) error {
	msg := err.Error()
	clean := redact.Values(redact.String(msg), secrets...)
	if clean == msg {
		return err
	}
	return &scrubbedError{msg: clean, err: err}
}

// gcsProbe records the status and the start of the body of the last error
// answer to the requests of one operation. The SDK drops the body of a 404
// to a read, where GCS says whether the bucket or the object is missing.
type gcsProbe struct {
	mu     sync.Mutex
	status int
	body   []byte
}

type gcsProbeKey struct{}

func (p *gcsProbe) context(ctx context.Context) context.Context {
	return context.WithValue(ctx, gcsProbeKey{}, p)
}

func (p *gcsProbe) record(status int, body []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status, p.body = status, body
}

func (p *gcsProbe) last() (int, []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status, p.body
}

// gcsProbeTransport reads the body of every error answer, up to 8 KiB, for
// the request's gcsProbe, and hands the SDK an equal body.
type gcsProbeTransport struct {
	base http.RoundTripper
}

const maxErrorBody = 8 << 10

func (t gcsProbeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.StatusCode < 300 {
		return resp, err
	}
	p, ok := req.Context().Value(gcsProbeKey{}).(*gcsProbe)
	if !ok {
		return resp, nil
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	rest := resp.Body
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), rest), rest}
	if rerr == nil || len(body) > 0 {
		p.record(resp.StatusCode, body)
	}
	return resp, nil
}

// gcsDenied finds the denied principal in GCS's 403 message: "x@p.iam.gserviceaccount.com does not have
// storage.objects.get access to ...".
var gcsDenied = regexp.MustCompile(`([\w.+-]+@[\w.-]+) does not have storage\.`)

// gcsPrincipal returns the principal a GCS access-denied message names, or "".
func gcsPrincipal(msg string) string {
	if m := gcsDenied.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	return ""
}
