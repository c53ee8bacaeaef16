package destination

import (
	"bytes"
	"cmp"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
)

// AzureOptions configures NewAzure. The zero value reads with the SAS of
// each Location only, at https://<account>.blob.core.windows.net.
//
// A Location is read (or written, or listed) with the first credential that
// applies: its SAS when the SAS grants the operation (sp= has r to read, c
// or w to write, l to list, or names no permissions: a stored access
// policy) and has not expired; else the shared key (AccountName and
// AccountKey, or ConnectionString) when the location is in that account;
// else the token credential (Credential or DefaultCredential). When
// storage refuses the SAS (403: an IP restriction, a revoked or mistyped
// signature), a configured credential that applies is tried once more.
type AzureOptions struct {
	// Endpoint is the blob service URL of the one storage account that every
	// location is read in, whatever account it names, such as
	// "http://127.0.0.1:10000/devstoreaccount1" for Azurite. Credentials go
	// over plain http to an http endpoint. Default: none:
	// https://<account>.blob.core.windows.net for the location's Account
	// (or, for a location that names none, for AccountName or the
	// ConnectionString's account).
	Endpoint string
	// AccountName and AccountKey are a shared key of storage account
	// AccountName. Default: none.
	AccountName string
	// AccountKey is the base64 key of AccountName. It is a secret: errors
	// never carry it. Default: none.
	AccountKey string
	// ConnectionString is a storage account's connection string, instead
	// of AccountName, AccountKey and Endpoint. It is a secret. Default:
	// none.
	ConnectionString string
	// DefaultCredential signs requests to any account with
	// azidentity.NewDefaultAzureCredential (environment, workload identity,
	// managed identity, Azure CLI). The identity needs the Storage Blob Data
	// Reader role to read (Contributor to write). Default: false.
	DefaultCredential bool
	// Credential is a Microsoft Entra ID credential used like
	// DefaultCredential, instead of it. Default: nil.
	Credential azcore.TokenCredential
	// MaxBodyBytes caps the size of a challenge file. Default:
	// DefaultMaxBodyBytes (64 KiB).
	MaxBodyBytes int64
	// MaxAttempts is how many times the SDK tries one request before giving
	// the error back; retrying beyond that belongs to the queue. Default: 2.
	MaxAttempts int
	// HTTPClient sends the requests. Default: the SDK's.
	HTTPClient *http.Client
	// Observe, when set, is called once per Read, Write, Delete and List with the
	// operation and its Outcome. One call may cover several HTTP requests:
	// the SDK's retries, and a configured credential tried after a refused
	// SAS. Default: nil.
	Observe ObserveFunc
}

// WithDefaults returns o with every zero field set to its default.
func (o AzureOptions) WithDefaults() AzureOptions {
	o.MaxBodyBytes = cmp.Or(o.MaxBodyBytes, DefaultMaxBodyBytes)
	o.MaxAttempts = cmp.Or(o.MaxAttempts, 2)
	return o
}

func (o AzureOptions) validate() error {
	if err := checkLimits(o.MaxBodyBytes, o.MaxAttempts); err != nil {
		return err
	}
	switch {
	case (o.AccountName == "") != (o.AccountKey == ""):
		return errors.New("account name and account key go together")
	case o.AccountName != "" && o.ConnectionString != "":
		return errors.New("give either a connection string or an account name and key, not both")
	case o.DefaultCredential && o.Credential != nil:
		return errors.New("give either a credential or default credential, not both")
	}
	if o.AccountName != "" && !azureAccountPattern.MatchString(o.AccountName) {
		return errors.New("account name is not a storage account name (3 to 24 lower-case letters and digits)")
	}
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" {
			// The endpoint itself is not quoted: it may carry a secret.
			return errors.New("endpoint is not an http or https URL without user information and query")
		}
	}
	return nil
}

// azureAccountPattern matches storage account names, which become host
// names.
var azureAccountPattern = regexp.MustCompile(`^[a-z0-9]{3,24}$`)

// Azure reads and writes blobs in Azure Blob Storage. It is safe for
// concurrent use.
type Azure struct {
	opts    AzureOptions
	copts   service.ClientOptions
	secrets []string

	// shared is the shared-key client of account sharedAccount; nil
	// without a shared key.
	shared        *service.Client
	sharedAccount string
	token         azcore.TokenCredential

	mu     sync.Mutex
	tokens map[string]*service.Client // token credential clients by account
}

var (
	_ Reader = (*Azure)(nil)
	_ Writer = (*Azure)(nil)
	_ Lister = (*Azure)(nil)
)

// NewAzure returns an Azure reader and writer. With DefaultCredential it
// sets the credential chain up, which fails when none of its sources is
// configured; it makes no request.
func NewAzure(ctx context.Context, opts AzureOptions) (*Azure, error) {
	opts = opts.WithDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("azure options: %w", err)
	}
	a := &Azure{opts: opts, tokens: make(map[string]*service.Client)}
	a.secrets = append(a.secrets, opts.AccountKey)
	for _, kv := range strings.Split(opts.ConnectionString, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok && (strings.EqualFold(k, "AccountKey") || strings.EqualFold(k, "SharedAccessSignature")) {
			a.secrets = append(a.secrets, v)
		}
	}
	a.copts.Retry = policy.RetryOptions{
		MaxRetries:    int32(opts.MaxAttempts - 1),
		RetryDelay:    500 * time.Millisecond,
		MaxRetryDelay: 2 * time.Second,
	}
	if opts.MaxAttempts == 1 {
		a.copts.Retry.MaxRetries = -1 // 0 would be the SDK's default, 3
	}
	if opts.HTTPClient != nil {
		a.copts.Transport = opts.HTTPClient
	}
	a.copts.PerRetryPolicies = append(a.copts.PerRetryPolicies, clockPolicy{})
	if strings.HasPrefix(opts.Endpoint, "http://") {
		a.copts.InsecureAllowCredentialWithHTTP = true
	}

	var err error
	switch {
	case opts.ConnectionString != "":
		a.shared, err = service.NewClientFromConnectionString(opts.ConnectionString, &a.copts)
		if err != nil {
			return nil, fmt.Errorf("azure connection string: %w", a.scrub(err))
		}
		a.sharedAccount = accountOfURL(a.shared.URL())
	case opts.AccountName != "":
		cred, err := service.NewSharedKeyCredential(opts.AccountName, opts.AccountKey)
		if err != nil {
			return nil, fmt.Errorf("azure account key: %w", a.scrub(err))
		}
		a.shared, err = service.NewClientWithSharedKeyCredential(a.serviceURL(opts.AccountName), cred, &a.copts)
		if err != nil {
			return nil, fmt.Errorf("azure client: %w", a.scrub(err))
		}
		a.sharedAccount = opts.AccountName
	}
	switch {
	case opts.Credential != nil:
		a.token = markedCredential{opts.Credential}
	case opts.DefaultCredential:
		var copts azidentity.DefaultAzureCredentialOptions
		if opts.HTTPClient != nil {
			copts.Transport = opts.HTTPClient
		}
		cred, err := azidentity.NewDefaultAzureCredential(&copts)
		if err != nil {
			return nil, fmt.Errorf("azure default credential: %w", a.scrub(err))
		}
		a.token = markedCredential{cred}
	}
	_ = ctx // kept for symmetry with NewS3 and NewGCS: setting up makes no request
	return a, nil
}

// serviceURL returns the blob service URL of account.
func (a *Azure) serviceURL(account string) string {
	if a.opts.Endpoint != "" {
		return strings.TrimSuffix(a.opts.Endpoint, "/") + "/"
	}
	return "https://" + account + ".blob.core.windows.net/"
}

// accountOfURL returns the storage account of a blob service URL: the first
// label of the host, or the first path segment for an IP address or
// localhost (Azurite's http://127.0.0.1:10000/devstoreaccount1).
func accountOfURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	host := u.Hostname()
	if net.ParseIP(host) != nil || host == "localhost" {
		first, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
		return first
	}
	first, _, _ := strings.Cut(host, ".")
	return first
}

// account returns the storage account that loc is in.
func (a *Azure) account(loc Location) (string, error) {
	account := cmp.Or(loc.Account, a.sharedAccount)
	switch {
	case a.opts.Endpoint != "":
		return cmp.Or(account, accountOfURL(a.opts.Endpoint)), nil
	case account == "":
		return "", errors.New("the destination names no storage account: give the container's SAS URL " +
			"(azure://<account>.blob.core.windows.net/<container>/...) or configure the account")
	case !azureAccountPattern.MatchString(account):
		return "", errors.New("invalid location: the storage account name is not 3 to 24 lower-case letters and digits")
	}
	return account, nil
}

// sasPlan is what the SAS of a location can do for an operation.
type sasPlan struct {
	client *service.Client // nil: the SAS does not apply
	why    string          // why it does not apply, when there is one
}

// sasClient returns a client signed with loc.SAS if the SAS grants op.
func (a *Azure) sasClient(loc Location, account, op string) (sasPlan, error) {
	if loc.SAS == "" {
		return sasPlan{why: "the destination has no SAS"}, nil
	}
	raw := strings.TrimPrefix(loc.SAS, "?")
	q, err := url.ParseQuery(raw)
	if err != nil || q.Get("sig") == "" {
		return sasPlan{why: "the SAS is not a query string with a signature (sig=)"}, nil
	}
	need, letters := "read (r)", "r"
	switch op {
	case opWrite:
		need, letters = "create or write (c, w)", "cw"
	case opDelete:
		need, letters = "delete (d)", "d"
	case OpList:
		need, letters = "list (l)", "l"
	}
	if sp, ok := q["sp"]; ok && !strings.ContainsAny(strings.Join(sp, ""), letters) {
		return sasPlan{why: fmt.Sprintf("the SAS grants sp=%s, without %s", sanitizeSP(strings.Join(sp, "")), need)}, nil
	}
	if se := q.Get("se"); se != "" {
		if exp, ok := parseSASTime(se); ok && time.Now().After(exp) {
			return sasPlan{why: "the SAS expired at " + exp.UTC().Format(time.RFC3339)}, nil
		}
	}
	// The SAS is kept encoded as given: its signature covers the decoded
	// values, and re-encoding it could only break it.
	c, err := service.NewClientWithNoCredential(a.serviceURL(account)+"?"+raw, &a.copts)
	if err != nil {
		return sasPlan{}, &Error{Kind: Permanent, Op: op, Location: loc, Err: fmt.Errorf("azure client: %w", a.scrub(err, loc.SAS))}
	}
	return sasPlan{client: c}, nil
}

// sanitizeSP keeps the permission letters of an sp= value.
func sanitizeSP(sp string) string {
	var b strings.Builder
	for _, r := range sp {
		if 'a' <= r && r <= 'z' && b.Len() < 20 {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// parseSASTime parses an se= or st= value: ISO 8601 UTC, to the day, the
// minute or the second.
func parseSASTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04Z", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// configured returns a client signed with a configured credential that
// applies to account, or nil.
func (a *Azure) configured(account string) (*service.Client, error) {
	if a.shared != nil && (a.opts.Endpoint != "" || account == a.sharedAccount) {
		return a.shared, nil
	}
	if a.token == nil {
		return nil, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.tokens[account]; ok {
		return c, nil
	}
	c, err := service.NewClient(a.serviceURL(account), a.token, &a.copts)
	if err != nil {
		return nil, fmt.Errorf("azure client: %w", a.scrub(err))
	}
	a.tokens[account] = c
	return c, nil
}

// do runs call with the first credential that applies to loc (see
// AzureOptions), and once more with a configured credential when storage
// refused the SAS.
func (a *Azure) do(ctx context.Context, op string, loc Location, call func(*service.Client) error) error {
	check := loc
	if op == OpList {
		check.Key += "-" // checkAzureLocation wants a blob name; a prefix may be ""
	}
	if err := checkAzureLocation(check); err != nil {
		return &Error{Kind: Permanent, Op: op, Location: loc, Err: err}
	}
	account, err := a.account(loc)
	if err != nil {
		return &Error{Kind: Permanent, Op: op, Location: loc, Err: err}
	}
	plan, err := a.sasClient(loc, account, op)
	if err != nil {
		return err
	}
	fallback, err := a.configured(account)
	if err != nil {
		return &Error{Kind: Permanent, Op: op, Location: loc, Err: err}
	}
	if plan.client != nil {
		err = call(plan.client)
		if err == nil || fallback == nil || !azureDenied(err) || ctx.Err() != nil {
			return a.classify(ctx, op, loc, err)
		}
	}
	if fallback == nil {
		return &Error{Kind: Permanent, Op: op, Location: loc, Permission: azurePermission(op),
			Err: fmt.Errorf("%s, and no account key or Entra ID credential is configured for storage account %s", plan.why, account)}
	}
	return a.classify(ctx, op, loc, call(fallback))
}

func checkAzureLocation(loc Location) error {
	switch {
	case loc.Bucket == "":
		return errors.New("invalid location: empty container")
	case loc.Key == "":
		return errors.New("invalid location: empty blob name")
	}
	return nil
}

func azurePermission(op string) string {
	switch op {
	case opWrite:
		return "Blob write (sp=cw in the SAS, or Storage Blob Data Contributor)"
	case opDelete:
		return "Blob delete (sp=d in the SAS, or Storage Blob Data Contributor)"
	case OpList:
		// A container SAS: a blob's SAS cannot list.
		return "Blob list (sp=l in the SAS, or Storage Blob Data Reader)"
	}
	return "Blob read (sp=r in the SAS, or Storage Blob Data Reader)"
}

// Read gets loc with one Get Blob request. It checks Last-Modified against
// notBefore before reading the body: a stale blob is closed unread. The
// body is read up to MaxBodyBytes; a larger blob is a Permanent error.
// Last-Modified has whole seconds.
func (a *Azure) Read(ctx context.Context, loc Location, notBefore time.Time) (obj Object, err error) {
	defer func() { a.opts.Observe.observe(OpRead, err) }()
	err = a.do(ctx, OpRead, loc, func(c *service.Client) error {
		obj = Object{}
		resp, err := c.NewContainerClient(loc.Bucket).NewBlobClient(loc.Key).DownloadStream(ctx, nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.LastModified == nil {
			if !notBefore.IsZero() {
				return &Error{Kind: Permanent, Op: OpRead, Location: loc,
					Err: errors.New("response has no Last-Modified: an old challenge file cannot be told from a new one")}
			}
		} else {
			obj.ModTime = *resp.LastModified
		}
		if obj.ModTime.Before(notBefore) {
			return stale(OpRead, loc, obj.ModTime, notBefore)
		}
		limit := a.opts.MaxBodyBytes
		if resp.ContentLength != nil && *resp.ContentLength > limit {
			return tooLarge(OpRead, loc, limit)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			return fmt.Errorf("read body: %w", err)
		}
		if int64(len(body)) > limit {
			return tooLarge(OpRead, loc, limit)
		}
		obj.Body = body
		return nil
	})
	if err != nil {
		return Object{}, err
	}
	return obj, nil
}

// Write puts body at loc with one Put Blob request (plus the SDK's
// retries), as a block blob.
func (a *Azure) Write(ctx context.Context, loc Location, body []byte) (err error) {
	defer func() { a.opts.Observe.observe(opWrite, err) }()
	return a.do(ctx, opWrite, loc, func(c *service.Client) error {
		_, err := c.NewContainerClient(loc.Bucket).NewBlockBlobClient(loc.Key).Upload(ctx,
			streaming.NopCloser(bytes.NewReader(body)), &blockblob.UploadOptions{
				HTTPHeaders: &blob.HTTPHeaders{BlobContentType: new("text/plain")},
			})
		return err
	})
}

// Delete deletes loc with one Delete Blob request (plus the SDK's
// retries). A blob that is not there is deleted already.
func (a *Azure) Delete(ctx context.Context, loc Location) (err error) {
	defer func() { a.opts.Observe.observe(opDelete, err) }()
	err = a.do(ctx, opDelete, loc, func(c *service.Client) error {
		_, err := c.NewContainerClient(loc.Bucket).NewBlobClient(loc.Key).Delete(ctx, nil)
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// azureListMax is the most blobs one List asks for: S3's and GCS's page.
const azureListMax = 1000

// List lists the blobs under the prefix loc.Key (which may be empty: the
// whole container) with one List Blobs request (plus the SDK's retries):
// its first page of up to 1000 blobs, in name order. Storage may end a
// page early, and says so with a NextMarker: the listing is then not
// Complete. Its credentials are Read's (see AzureOptions): a SAS that
// grants list (sp=l, a container SAS), else the configured credential,
// which is tried too when storage refuses the SAS.
func (a *Azure) List(ctx context.Context, loc Location) (l Listing, err error) {
	defer func() { a.opts.Observe.observe(OpList, err) }()
	err = a.do(ctx, OpList, loc, func(c *service.Client) error {
		opts := &container.ListBlobsFlatOptions{MaxResults: new(int32(azureListMax))}
		if loc.Key != "" {
			opts.Prefix = &loc.Key
		}
		resp, err := c.NewContainerClient(loc.Bucket).NewListBlobsFlatPager(opts).NextPage(ctx)
		if err != nil {
			return err
		}
		l = Listing{Prefix: loc.Key, ModTimes: make(map[string]time.Time),
			Complete: resp.NextMarker == nil || *resp.NextMarker == ""}
		if resp.Segment == nil {
			return nil
		}
		for _, b := range resp.Segment.BlobItems {
			if b == nil || b.Name == nil {
				continue
			}
			if b.Properties == nil || b.Properties.LastModified == nil {
				return &Error{Kind: Permanent, Op: OpList, Location: loc,
					Err: fmt.Errorf("blob %q listed without Last-Modified: an old challenge file cannot be told from a new one", truncateText(*b.Name, 200))}
			}
			l.ModTimes[*b.Name] = *b.Properties.LastModified
			l.Through = max(l.Through, *b.Name)
		}
		return nil
	})
	if err != nil {
		return Listing{}, err
	}
	return l, nil
}

// Azure error codes (x-ms-error-code) by class.
func azureDeniedCode(code string) bool {
	switch code {
	case "AuthorizationPermissionMismatch", "AuthorizationFailure", "AuthenticationFailed",
		"InsufficientAccountPermissions", "AuthorizationSourceIPMismatch", "AuthorizationProtocolMismatch",
		"AuthorizationResourceTypeMismatch", "AuthorizationServiceMismatch", "KeyBasedAuthenticationNotPermitted":
		return true
	}
	return false
}

// azureDenied reports whether storage refused the credential of a request.
func azureDenied(err error) bool {
	var rerr *azcore.ResponseError
	return errors.As(err, &rerr) && (rerr.StatusCode == http.StatusForbidden || azureDeniedCode(rerr.ErrorCode))
}

// tokenError marks an error of the token credential: no access token could
// be had.
type tokenError struct{ err error }

func (e *tokenError) Error() string { return e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// markedCredential wraps the errors of a token credential in tokenError.
type markedCredential struct{ azcore.TokenCredential }

func (c markedCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	t, err := c.TokenCredential.GetToken(ctx, o)
	if err != nil {
		return t, &tokenError{err}
	}
	return t, nil
}

// classify turns an SDK error into ErrNotFound, ErrStale or an *Error. It
// passes this package's own errors through.
func (a *Azure) classify(ctx context.Context, op string, loc Location, err error) error {
	var own *Error
	if err == nil || errors.Is(err, ErrStale) || errors.Is(err, ErrNotFound) || (errors.As(err, &own) && own.Location == loc) {
		return err
	}
	var (
		rerr   *azcore.ResponseError
		status int
		code   string
		cause  = err
	)
	if errors.As(err, &rerr) {
		status, code = rerr.StatusCode, rerr.ErrorCode
		cause = &scrubbedError{msg: azureMessage(rerr), err: err}
	}
	cause = a.scrub(cause, loc.SAS)

	if op != opWrite && (code == "BlobNotFound" || (status == http.StatusNotFound && code != "ContainerNotFound")) {
		return notFound(op, loc)
	}
	e := &Error{Kind: Permanent, Op: op, Location: loc, Err: cause, HTTPStatus: status}
	var terr *tokenError
	var authErr *azidentity.AuthenticationFailedError
	switch {
	case ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		e.Kind = Transient
	case errors.As(err, &terr):
		if errors.As(err, &authErr) && authErr.RawResponse != nil && authErr.RawResponse.StatusCode >= 500 {
			e.Kind = Transient
		} else {
			e.Err = fmt.Errorf("cannot get an access token with the credentials of this process: %w", cause)
		}
	case code == "ContainerNotFound":
		e.Err = fmt.Errorf("container does not exist: %w", cause)
	case code == "ServerBusy" || status == http.StatusTooManyRequests:
		e.Kind = Transient
		e.Err = fmt.Errorf("throttled by storage: %w", cause)
	case status == http.StatusForbidden || azureDeniedCode(code):
		e.Permission = azurePermission(op)
		if code == "AuthenticationFailed" {
			e.Err = fmt.Errorf("storage rejected the signature (a SAS that is wrong, expired or revoked, or a wrong account key): %w", cause)
		}
	case code == "OperationTimedOut" || code == "InternalError" || status >= 500 || status == http.StatusRequestTimeout:
		e.Kind = Transient
		e.Err = fmt.Errorf("storage unavailable: %w", cause)
	case status >= 400:
		// Anything else the server refused stays refused.
	default:
		// No HTTP answer: connection refused or reset, DNS, TLS, timeouts,
		// a truncated body. Retry.
		e.Kind = Transient
	}
	return e
}

// azureMessage returns "HTTP 404 BlobNotFound: The specified blob does not
// exist." for an error answer: the SDK's own text spans many lines and
// holds the whole body.
func azureMessage(rerr *azcore.ResponseError) string {
	msg := fmt.Sprintf("HTTP %d", rerr.StatusCode)
	if rerr.ErrorCode != "" {
		msg += " " + rerr.ErrorCode
	}
	if rerr.RawResponse != nil {
		if body, err := runtime.Payload(rerr.RawResponse); err == nil {
			var x struct {
				Message string `xml:"Message"`
				Detail  string `xml:"AuthenticationErrorDetail"`
			}
			if xml.Unmarshal(bytes.TrimSpace(body), &x) == nil {
				if m := oneLine(x.Message); m != "" {
					msg += ": " + m
				}
				// The detail of a refused signature is the string it signed,
				// over several lines: its first says enough.
				if d := oneLine(x.Detail); d != "" {
					msg += " (" + d + ")"
				}
			}
		}
	}
	return msg
}

// scrub returns err with a text free of the account keys of this reader, of
// the given SAS and its signature, and of anything that looks like a secret
// query parameter.
func (a *Azure) scrub(err error, sas ...string) error {
	secrets := append([]string(nil), a.secrets...)
	for _, s := range sas {
		if s == "" {
			continue
		}
		secrets = append(secrets, s)
		if q, perr := url.ParseQuery(strings.TrimPrefix(s, "?")); perr == nil {
			for _, sig := range q["sig"] {
				secrets = append(secrets, sig, url.QueryEscape(sig), url.PathEscape(sig))
			}
		}
	}
	return redactErr(err, secrets...)
}

// clockPolicy times each request, retries included, as near the wire as the
// SDK lets, and reports the response's Date to the context's WithClock
// function.
type clockPolicy struct{}

func (clockPolicy) Do(req *policy.Request) (*http.Response, error) {
	ctx := req.Raw().Context()
	if ctx.Value(clockKey{}) == nil {
		return req.Next()
	}
	sent := time.Now()
	resp, err := req.Next()
	if resp != nil {
		reportClock(ctx, sent, time.Now(), resp.Header)
	}
	return resp, err
}
