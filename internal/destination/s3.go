package destination

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/logpush-onboard/logpush-onboard/internal/redact"
)

// DefaultS3Region is the region of a Location whose Region is empty.
const DefaultS3Region = "us-east-1"

// DefaultS3MaxIdleConnsPerHost is S3Options.MaxIdleConnsPerHost's default:
// a worker's concurrency and then some.
const DefaultS3MaxIdleConnsPerHost = 100

// S3Options configures NewS3. The zero value reads AWS S3 with the default
// credential chain.
type S3Options struct {
	// Endpoint is the base URL of an S3-compatible service, such as a test
	// server. Default: none, which leaves the SDK's own configuration in
	// charge (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the shared config file)
	// and, failing that, AWS. Whenever an endpoint is configured, here or
	// there, requests use path-style addressing.
	Endpoint string
	// UsePathStyle forces path-style addressing (https://host/bucket/key)
	// even without an endpoint. Default: false (virtual-hosted style).
	UsePathStyle bool
	// Credentials signs the requests. Default: the SDK's default credential
	// chain (environment, shared files, web identity, ECS, EC2 IMDS).
	Credentials aws.CredentialsProvider
	// MaxBodyBytes caps the size of a challenge file. Default:
	// DefaultMaxBodyBytes (64 KiB).
	MaxBodyBytes int64
	// MaxAttempts is how many times the SDK tries one request before giving
	// the error back; retrying beyond that belongs to the queue. Default: 2.
	MaxAttempts int
	// HTTPClient sends the requests. Default: the SDK's, which trusts
	// AWS_CA_BUNDLE when set, keeping MaxIdleConnsPerHost idle connections;
	// a client given here must do both itself.
	HTTPClient aws.HTTPClient
	// MaxIdleConnsPerHost is how many idle connections to one S3 endpoint
	// the default HTTPClient keeps for the next reads. Default:
	// DefaultS3MaxIdleConnsPerHost. The SDK's own 10 is below a worker's
	// concurrency (20 by default): every burst of reads closed the
	// connections beyond 10 and the next opened new ones, each a TCP and
	// TLS handshake with AWS.
	MaxIdleConnsPerHost int
	// Observe, when set, is called once per Read, Write, Delete and List with the
	// operation and its Outcome. One call may cover up to MaxAttempts HTTP
	// requests (the SDK's own retries). Default: nil.
	Observe ObserveFunc
}

// WithDefaults returns o with every zero field set to its default.
func (o S3Options) WithDefaults() S3Options {
	o.MaxBodyBytes = cmp.Or(o.MaxBodyBytes, DefaultMaxBodyBytes)
	o.MaxAttempts = cmp.Or(o.MaxAttempts, 2)
	o.MaxIdleConnsPerHost = cmp.Or(o.MaxIdleConnsPerHost, DefaultS3MaxIdleConnsPerHost)
	return o
}

func (o S3Options) validate() error {
	if err := checkLimits(o.MaxBodyBytes, o.MaxAttempts); err != nil {
		return err
	}
	if o.MaxIdleConnsPerHost < 0 {
		return fmt.Errorf("max idle connections per host %d is negative", o.MaxIdleConnsPerHost)
	}
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// The endpoint itself is not quoted: it may carry userinfo.
			return errors.New("endpoint is not an http or https URL")
		}
	}
	return nil
}

// S3 reads and writes objects in S3 buckets. It keeps one client per
// region. It is safe for concurrent use.
type S3 struct {
	cfg  aws.Config
	opts S3Options
	// endpoints resolves the endpoints of every client: they depend on the
	// parameters it keys on, not on the client.
	endpoints *s3Endpoints

	mu      sync.Mutex
	clients map[s3ClientKey]*s3.Client
	configs map[Identity]aws.Config
}

var (
	_ Reader = (*S3)(nil)
	_ Writer = (*S3)(nil)
	_ Lister = (*S3)(nil)
)

// NewS3 loads the AWS configuration (config.LoadDefaultConfig: environment,
// shared files) and returns an S3 reader and writer. It makes no request.
func NewS3(ctx context.Context, opts S3Options) (*S3, error) {
	opts = opts.WithDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("s3 options: %w", err)
	}
	// The SDK's own log lines would go to the user's terminal: its
	// failures reach the caller as errors.
	load := []func(*config.LoadOptions) error{config.WithLogger(logging.Nop{})}
	if opts.HTTPClient == nil {
		// A BuildableClient, which LoadDefaultConfig still gives the
		// AWS_CA_BUNDLE to.
		load = append(load, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			t.MaxIdleConnsPerHost = opts.MaxIdleConnsPerHost
		})))
	}
	if opts.Credentials != nil {
		load = append(load, config.WithCredentialsProvider(opts.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("load aws config: %w", err)
	}
	if opts.Credentials == nil && cfg.Credentials != nil {
		cfg.Credentials = chainCredentials{cfg.Credentials}
	}
	return &S3{
		cfg:       cfg,
		opts:      opts,
		endpoints: newS3Endpoints(s3.NewDefaultEndpointResolverV2(), s3EndpointCacheSize),
		clients:   make(map[s3ClientKey]*s3.Client),
		configs:   make(map[Identity]aws.Config),
	}, nil
}

// ErrNoAWSCredentials: the default credential chain found none.
var ErrNoAWSCredentials = errors.New("no AWS credentials found: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, " +
	"or run with a web identity (IRSA) or an instance role")

// chainCredentials is the default chain, whose failure to find any
// credentials is ErrNoAWSCredentials rather than a read error among others.
type chainCredentials struct{ aws.CredentialsProvider }

func (c chainCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	creds, err := c.CredentialsProvider.Retrieve(ctx)
	if err != nil && ctx.Err() == nil {
		return creds, &noCredentialsError{err}
	}
	return creds, err
}

type noCredentialsError struct{ err error }

func (e *noCredentialsError) Error() string {
	return ErrNoAWSCredentials.Error() + " (" + e.err.Error() + ")"
}
func (e *noCredentialsError) Unwrap() []error { return []error{ErrNoAWSCredentials, e.err} }

// withLocation sets the location of a location-less *Error.
func withLocation(err error, loc Location) error {
	var e *Error
	if errors.As(err, &e) && e.Location == (Location{}) {
		e.Location = loc
	}
	return err
}

// s3ClientKey identifies a client: one per region and identity.
type s3ClientKey struct {
	region string
	as     Identity
}

// config returns the AWS configuration for an identity: the reader's own,
// a shared-config profile, and/or a role assumed from either.
func (s *S3) config(ctx context.Context, as Identity) (aws.Config, error) {
	if as == (Identity{}) {
		return s.cfg, nil
	}
	s.mu.Lock()
	cfg, ok := s.configs[as]
	s.mu.Unlock()
	if ok {
		return cfg, nil
	}
	cfg = s.cfg
	if as.AWSProfile != "" {
		var err error
		cfg, err = config.LoadDefaultConfig(ctx, config.WithSharedConfigProfile(as.AWSProfile), config.WithLogger(logging.Nop{}))
		if err != nil {
			return aws.Config{}, &Error{Kind: Permanent, Op: OpRead, Err: fmt.Errorf("aws profile %q: %w", as.AWSProfile, s.scrub(ctx, err))}
		}
	}
	if as.AWSRoleARN != "" {
		prov := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), as.AWSRoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = "logpush-onboard"
		})
		cfg = cfg.Copy()
		cfg.Credentials = aws.NewCredentialsCache(prov)
	}
	s.mu.Lock()
	s.configs[as] = cfg
	s.mu.Unlock()
	return cfg, nil
}

// regionPattern bounds what may become a client (and a host name label).
var regionPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

func (s *S3) client(ctx context.Context, region string, as Identity) (*s3.Client, error) {
	cfg, err := s.config(ctx, as)
	if err != nil {
		return nil, err
	}
	key := s3ClientKey{region, as}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[key]; ok {
		return c, nil
	}
	c := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.Region = region
		if s.opts.HTTPClient != nil {
			// Set here rather than in LoadDefaultConfig, which refuses a
			// client it cannot add AWS_CA_BUNDLE to.
			o.HTTPClient = s.opts.HTTPClient
		}
		if s.opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(s.opts.Endpoint)
		}
		// o.BaseEndpoint is also set when the SDK's configuration names one
		// (AWS_ENDPOINT_URL_S3...): S3-compatible servers and test servers
		// want path-style requests.
		o.UsePathStyle = s.opts.UsePathStyle || o.BaseEndpoint != nil
		o.RetryMaxAttempts = s.opts.MaxAttempts
		// o.Retryer is the SDK's, standard or adaptive (both RetryerV2),
		// which RetryMaxAttempts wraps once this function returns.
		if r, ok := o.Retryer.(aws.RetryerV2); ok {
			o.Retryer = missingIsFinal{r}
		}
		// The SDK's endpoint rules, memoized (s3Endpoints).
		o.EndpointResolverV2 = s.endpoints
		// GetObject validates no response checksum: otherwise the SDK
		// asks for one (x-amz-checksum-mode) and runs the body through a
		// CRC reader, about 20 allocations a read. A challenge file is a
		// short token read over TLS: a corrupted one is refused as a wrong
		// token anyway. (Not asking, the SDK no longer logs responses
		// without a checksum either.)
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.APIOptions = append(o.APIOptions, addClockMiddleware)
	})
	s.clients[key] = c
	return c, nil
}

// missingIsFinal is an SDK retryer that answers at once that a missing key
// (NoSuchKey) is not worth another attempt. The SDK asks on every failed
// attempt, before it counts the attempts left, and works the same answer
// out from its list of retryable errors, an errors.As each: about 20
// allocations and 5% of the CPU of a read that finds no file, as a poll
// before the file is written does. TestS3MissingIsFinal checks the SDK's
// retryers answer the same.
type missingIsFinal struct{ aws.RetryerV2 }

func (r missingIsFinal) IsErrorRetryable(err error) bool {
	var missing *types.NoSuchKey
	return !errors.As(err, &missing) && r.RetryerV2.IsErrorRetryable(err)
}

func checkS3Location(loc Location) (region string, err error) {
	switch {
	case loc.Bucket == "":
		return "", errors.New("invalid location: empty bucket")
	case loc.Key == "":
		return "", errors.New("invalid location: empty key")
	}
	region = cmp.Or(loc.Region, DefaultS3Region)
	if len(region) > 32 || !regionPattern.MatchString(region) {
		return "", fmt.Errorf("invalid location: region %q is not an AWS region name", region)
	}
	return region, nil
}

// Read gets loc with one GetObject request. It checks Last-Modified against
// notBefore before reading the body: a stale object is closed unread. The
// body is read up to MaxBodyBytes; a larger object is a Permanent error.
func (s *S3) Read(ctx context.Context, loc Location, notBefore time.Time) (obj Object, err error) {
	defer func() { s.opts.Observe.observe(OpRead, err) }()
	region, err := checkS3Location(loc)
	if err != nil {
		return Object{}, &Error{Kind: Permanent, Op: OpRead, Location: loc, Err: err}
	}
	client, err := s.client(ctx, region, loc.As)
	if err != nil {
		return Object{}, withLocation(err, loc)
	}
	out, err := client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(loc.Bucket),
		Key:    aws.String(loc.Key),
	})
	if err != nil {
		return Object{}, s.classify(ctx, OpRead, loc, err)
	}
	defer out.Body.Close()

	if out.LastModified == nil {
		if !notBefore.IsZero() {
			return Object{}, &Error{Kind: Permanent, Op: OpRead, Location: loc,
				Err: errors.New("response has no Last-Modified: an old challenge file cannot be told from a new one")}
		}
	} else {
		obj.ModTime = *out.LastModified
	}
	if obj.ModTime.Before(notBefore) {
		return Object{}, stale(OpRead, loc, obj.ModTime, notBefore)
	}
	limit := s.opts.MaxBodyBytes
	if out.ContentLength != nil && *out.ContentLength > limit {
		return Object{}, tooLarge(OpRead, loc, limit)
	}
	body, err := io.ReadAll(io.LimitReader(out.Body, limit+1))
	if err != nil {
		return Object{}, s.classify(ctx, OpRead, loc, fmt.Errorf("read body: %w", err))
	}
	if int64(len(body)) > limit {
		return Object{}, tooLarge(OpRead, loc, limit)
	}
	obj.Body = body
	return obj, nil
}

// Write puts body at loc with one PutObject request (plus the SDK's retries).
func (s *S3) Write(ctx context.Context, loc Location, body []byte) (err error) {
	defer func() { s.opts.Observe.observe(opWrite, err) }()
	region, err := checkS3Location(loc)
	if err != nil {
		return &Error{Kind: Permanent, Op: opWrite, Location: loc, Err: err}
	}
	client, err := s.client(ctx, region, loc.As)
	if err != nil {
		return withLocation(err, loc)
	}
	_, err = client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(loc.Bucket),
		Key:           aws.String(loc.Key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
	})
	if err != nil {
		return s.classify(ctx, opWrite, loc, err)
	}
	return nil
}

// Delete deletes loc with one DeleteObject request (plus the SDK's
// retries). S3 answers a missing key like a deleted one.
func (s *S3) Delete(ctx context.Context, loc Location) (err error) {
	defer func() { s.opts.Observe.observe(opDelete, err) }()
	region, err := checkS3Location(loc)
	if err != nil {
		return &Error{Kind: Permanent, Op: opDelete, Location: loc, Err: err}
	}
	client, err := s.client(ctx, region, loc.As)
	if err != nil {
		return withLocation(err, loc)
	}
	_, err = client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(loc.Bucket), Key: aws.String(loc.Key)})
	if err != nil {
		if err := s.classify(ctx, opDelete, loc, err); !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

// s3ListMax is the most keys one ListObjectsV2 page holds: S3's own limit.
const s3ListMax = 1000

// List lists the objects under the prefix loc.Key (which may be empty: the
// whole bucket) with one ListObjectsV2 request: its first page of up to
// 1000 keys. It needs s3:ListBucket on the bucket.
func (s *S3) List(ctx context.Context, loc Location) (l Listing, err error) {
	defer func() { s.opts.Observe.observe(OpList, err) }()
	probe := loc
	probe.Key = loc.Key + "-" // checkS3Location wants a key; a prefix may be ""
	region, err := checkS3Location(probe)
	if err != nil {
		return Listing{}, &Error{Kind: Permanent, Op: OpList, Location: loc, Err: err}
	}
	client, err := s.client(ctx, region, loc.As)
	if err != nil {
		return Listing{}, withLocation(err, loc)
	}
	out, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket:  aws.String(loc.Bucket),
		Prefix:  aws.String(loc.Key),
		MaxKeys: aws.Int32(s3ListMax),
	})
	if err != nil {
		return Listing{}, s.classify(ctx, OpList, loc, err)
	}
	l = Listing{Prefix: loc.Key, ModTimes: make(map[string]time.Time, len(out.Contents)),
		Complete: !aws.ToBool(out.IsTruncated)}
	for _, o := range out.Contents {
		k := aws.ToString(o.Key)
		l.ModTimes[k] = aws.ToTime(o.LastModified)
		l.Through = max(l.Through, k)
	}
	return l, nil
}

// S3 error code classes, of the <Code> element of an error response.
const (
	codeThrottled     = "throttled"
	codeUnavailable   = "unavailable"
	codeRetryableAuth = "retryable_auth"
	codeBadCreds      = "bad_credentials"
	codeWrongRegion   = "wrong_region"
)

func codeClass(code string) string {
	switch code {
	case "SlowDown", "Throttling", "ThrottlingException", "ThrottledException",
		"RequestThrottled", "RequestThrottledException", "TooManyRequestsException",
		"RequestLimitExceeded", "BandwidthLimitExceeded", "ProvisionedThroughputExceededException",
		"EC2ThrottledException", "TransactionInProgressException", "PriorRequestNotComplete":
		return codeThrottled
	case "InternalError", "ServiceUnavailable", "RequestTimeout", "RequestTimeoutException":
		return codeUnavailable
	case "ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired",
		"RequestTimeTooSkewed", "RequestExpired":
		// The SDK refreshes expiring credentials and corrects clock skew
		// on the next attempt.
		return codeRetryableAuth
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken",
		"InvalidClientTokenId", "UnrecognizedClientException":
		return codeBadCreds
	case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
		return codeWrongRegion
	default:
		return ""
	}
}

// classify turns an SDK error into ErrNotFound or an *Error.
func (s *S3) classify(ctx context.Context, op string, loc Location, err error) error {
	var (
		code   string
		status int
		header http.Header
	)
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) && respErr.Response != nil {
		status = respErr.HTTPStatusCode()
		header = respErr.Response.Header
	}

	if op != opWrite && (code == "NoSuchKey" || (status == http.StatusNotFound && code != "NoSuchBucket")) {
		return notFound(op, loc)
	}

	cause := s.scrub(ctx, err)
	class := codeClass(code)
	e := &Error{Kind: Permanent, Op: op, Location: loc, Err: cause, HTTPStatus: status}
	var nce *noCredentialsError
	switch {
	case errors.As(err, &nce):
		e.Err = s.scrub(ctx, nce)
	case ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		e.Kind = Transient
	case code == "NoSuchBucket":
		e.Err = fmt.Errorf("bucket does not exist: %w", cause)
	case class == codeWrongRegion || status == http.StatusMovedPermanently:
		where := "another region"
		if r := header.Get("X-Amz-Bucket-Region"); r != "" && regionPattern.MatchString(r) {
			where = "region " + r
		}
		e.Err = fmt.Errorf("bucket is in %s, not %s: fix the region of the destination: %w",
			where, cmp.Or(loc.Region, DefaultS3Region), cause)
	case class == codeThrottled || status == http.StatusTooManyRequests:
		e.Kind = Transient
		e.Err = fmt.Errorf("throttled by storage: %w", cause)
	case class == codeRetryableAuth:
		e.Kind = Transient
	case class == codeBadCreds:
		e.Err = fmt.Errorf("storage rejected the credentials of this process: %w", cause)
	case code == "AccessDenied" || status == http.StatusForbidden:
		e.Principal = deniedPrincipal(cause.Error())
		switch op {
		case OpRead:
			e.Permission, e.MaybeAbsent = "s3:GetObject", true
			e.Err = fmt.Errorf("unless the file is not written yet: without s3:ListBucket on %s, S3 answers access denied for a missing file too: %w", loc.bucketARN(), cause)
		case opDelete:
			e.Permission = "s3:DeleteObject"
		case OpList:
			e.Permission = "s3:ListBucket"
		default:
			e.Permission = "s3:PutObject"
		}
	case class == codeUnavailable || status >= 500 || status == http.StatusRequestTimeout:
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

// principalARN finds the denied principal in AWS's access-denied message:
// "User: arn:aws:sts::123456789012:assumed-role/r/s is not authorized ...".
var principalARN = regexp.MustCompile(`User: (arn:aws[a-z-]*:(?:iam|sts)::[0-9]{12}:[\w+=,.@/-]{1,512}) is not authorized`)

// deniedPrincipal returns the principal an access-denied message names, or "".
func deniedPrincipal(msg string) string {
	if m := principalARN.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	return ""
}

// accessKeyID matches AWS access key IDs (long-term AKIA, temporary ASIA).
var accessKeyID = regexp.MustCompile(`\b(?:AKIA|ASIA)[A-Z0-9]{16}\b`)

// scrub returns err with a text free of the credentials of this process and
// of anything that looks like an access key ID or a signature, in case a
// server echoed them back. The original stays reachable with errors.As.
func (s *S3) scrub(ctx context.Context, err error) error {
	msg := err.Error()
	clean := accessKeyID.ReplaceAllString(redact.String(msg), redact.Mask)
	if s.cfg.Credentials != nil {
		// The credentials are cached after signing; the timeout bounds a
		// refresh when there were none.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 100*time.Millisecond)
		creds, cerr := s.cfg.Credentials.Retrieve(cctx)
		cancel()
		if cerr == nil {
			clean = redact.Values(clean, creds.AccessKeyID, creds.SecretAccessKey, creds.SessionToken)
		}
	}
	if clean == msg {
		return err
	}
	return &scrubbedError{msg: clean, err: err}
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// addClockMiddleware times each request as near the wire as the SDK lets
// (last in its deserialize step) and reports the response's Date to the
// context's WithClock function.
func addClockMiddleware(st *middleware.Stack) error {
	return st.Deserialize.Add(middleware.DeserializeMiddlewareFunc("LogpushClockSample",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			if ctx.Value(clockKey{}) == nil {
				return next.HandleDeserialize(ctx, in)
			}
			sent := time.Now()
			out, md, err := next.HandleDeserialize(ctx, in)
			if resp, ok := out.RawResponse.(*smithyhttp.Response); ok && resp != nil {
				reportClock(ctx, sent, time.Now(), resp.Header)
			}
			return out, md, err
		}), middleware.After)
}
