package destination

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/redact"
)

// DefaultMaxBodyBytes is the largest challenge file a reader accepts unless
// configured otherwise: 64 KiB. Real challenge tokens are well under 1 KiB.
const DefaultMaxBodyBytes int64 = 64 << 10

// checkLimits checks the body cap and attempts every storage reader takes.
func checkLimits(maxBodyBytes int64, maxAttempts int) error {
	if maxBodyBytes < 0 {
		return fmt.Errorf("max body bytes %d is negative", maxBodyBytes)
	}
	if maxAttempts < 0 {
		return fmt.Errorf("max attempts %d is negative", maxAttempts)
	}
	return nil
}

// Location is one object in one destination.
//
// It holds one credential only: the SAS of an azure destination, which the
// user granted Cloudflare in the destination_conf and which the Azure reader
// tries first. String, GoString and LogValue never show it, JSON leaves it
// out, and no error of this package carries it, so a Location can be logged
// and shown as is. Whatever else a reader needs to authenticate (AWS
// credentials, keys) is configured on the reader.
type Location struct {
	// Scheme selects the storage: "s3", "gs", "azure" or "file".
	Scheme string
	// Bucket is the bucket (s3, gs) or container (azure); "" for file.
	Bucket string
	// Key is the object key inside the bucket, without a leading "/"; for
	// file, the path relative to "/" (or to File.Root).
	Key string
	// Region is the AWS region of an s3 bucket; "" means us-east-1.
	Region string
	// Account is the Azure storage account; "" when the destination_conf
	// does not name it (azure://<container>/...): the reader's configured
	// account then.
	Account string
	// SAS is the shared access signature of an azure destination: the query
	// string of its destination_conf (sv=...&sp=...&sig=...), without the
	// "?", percent-encoded as written. It is a secret (see Location).
	SAS string `json:"-"`
	// As is the identity to read with, when not the reader's default: the
	// per-row columns of a multi-account batch. It names credentials but
	// holds none.
	As Identity
}

// Identity names the credentials to read a destination with. The zero
// value means the reader's own (the default credential chain).
type Identity struct {
	// AWSProfile is a profile of the shared AWS config and credentials files.
	AWSProfile string
	// AWSRoleARN is a role to assume (STS AssumeRole) from the profile's or
	// the default credentials.
	AWSRoleARN string
	// GCPCredentialsFile is a service account key file for GCS.
	GCPCredentialsFile string
}

// String describes the identity for error messages, e.g. "profile prod,
// role arn:aws:iam::123456789012:role/logpush-reader".
func (i Identity) String() string {
	var parts []string
	if i.AWSProfile != "" {
		parts = append(parts, "aws profile "+i.AWSProfile)
	}
	if i.AWSRoleARN != "" {
		parts = append(parts, "role "+i.AWSRoleARN)
	}
	if i.GCPCredentialsFile != "" {
		parts = append(parts, "gcp credentials file "+i.GCPCredentialsFile)
	}
	if len(parts) == 0 {
		return "the default credentials"
	}
	return strings.Join(parts, ", ")
}

// String returns the location as a URL such as "s3://bucket/logs/file.txt"
// or "file:///tmp/logs/file.txt". It never contains a secret.
func (l Location) String() string {
	return l.Scheme + "://" + l.Bucket + "/" + l.Key
}

// GoString returns the location as a Go literal for %#v, with the SAS
// masked.
func (l Location) GoString() string {
	type plain Location // no methods: %#v prints the fields
	if l.SAS != "" {
		l.SAS = redact.Mask
	}
	return strings.Replace(fmt.Sprintf("%#v", plain(l)), "plain{", "Location{", 1)
}

// LogValue logs a location as its String.
func (l Location) LogValue() slog.Value { return slog.StringValue(l.String()) }

// resource names the location the way an access policy names it: an S3 ARN
// for s3, the container and account for azure, "" where the location string
// already says it.
func (l Location) resource() string {
	switch {
	case l.Scheme == "s3":
		return l.bucketARN() + "/" + l.Key
	case l.Scheme == "azure" && l.Account != "":
		return "container " + l.Bucket + " of storage account " + l.Account
	}
	return ""
}

// bucketARN returns the ARN of an s3 bucket, in the partition of its region.
func (l Location) bucketARN() string {
	partition := "aws"
	switch {
	case strings.HasPrefix(l.Region, "cn-"):
		partition = "aws-cn"
	case strings.HasPrefix(l.Region, "us-gov-"):
		partition = "aws-us-gov"
	}
	return "arn:" + partition + ":s3:::" + l.Bucket
}

// Object is an object read from a destination.
type Object struct {
	// Body is the whole content of the object.
	Body []byte
	// ModTime is when the object was last written, as the storage reports it
	// (whole seconds for S3).
	ModTime time.Time
}

// Reader reads the challenge file.
//
// Read returns an error wrapping ErrNotFound while the object does not exist,
// and one wrapping ErrStale while it exists but was last modified before
// notBefore (ModTime.Before(notBefore)); both mean "not yet": the worker polls
// again later. The caller allows for clock skew and for the storage's
// timestamp resolution (one second for S3) by passing a notBefore somewhat
// earlier than its request time. A zero notBefore accepts any object. Every
// other error is an *Error.
type Reader interface {
	Read(ctx context.Context, loc Location, notBefore time.Time) (Object, error)
}

// Deleter deletes an object: the challenge file once its destination's job
// exists (Cloudflare advises it; the token in it validates for 7 days). An
// object that is not there is deleted already: nil. A delete the storage
// refuses is an *Error whose Permission names what to grant.
type Deleter interface {
	Delete(ctx context.Context, loc Location) error
}

// Writer writes an object, replacing any object at the same location. The
// Cloudflare simulator uses it to play Cloudflare's side; so do the tests.
// Errors are *Error.
type Writer interface {
	Write(ctx context.Context, loc Location, body []byte) error
}

var (
	// ErrNotFound means that the object does not exist (yet).
	ErrNotFound = errors.New("object not found")
	// ErrStale means that the object exists but was last modified before the
	// time the caller asked for: it is left over from an earlier challenge.
	ErrStale = errors.New("object last modified before the challenge request")
)

// Kind says whether an operation that failed may succeed when tried again.
type Kind int

const (
	// Transient errors may go away by themselves: throttling, server errors,
	// timeouts, network errors, cancellation. Retry with backoff.
	Transient Kind = iota + 1
	// Permanent errors need someone to change something (a bucket, a policy,
	// a file, the input): retrying does not help.
	Permanent
)

// String returns "transient" or "permanent".
func (k Kind) String() string {
	switch k {
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	default:
		return fmt.Sprintf("Kind(%d)", int(k))
	}
}

// Error is a failed read or write. Its text names the operation, the
// location and, when access was denied, the permission that is missing; it
// never contains a credential.
type Error struct {
	// Kind says whether to retry.
	Kind Kind
	// Op is the operation: "read" or "write".
	Op string
	// Location is the object the operation was on.
	Location Location
	// Permission is set when access was denied and names what the identity
	// of this process lacks, such as "s3:GetObject". An access-denied error
	// is always Permanent.
	Permission string
	// Principal is the identity that was denied as the storage named it
	// (an IAM ARN, a service account), when it did; else "".
	Principal string
	// MaybeAbsent is set on an S3 read denied with AccessDenied: S3 answers
	// so for a key that does not exist when the reader lacks s3:ListBucket,
	// so the file may only be not written yet. The worker polls on until
	// its deadline rather than fail at once.
	MaybeAbsent bool
	// HTTPStatus is the storage's HTTP status, 0 when no answer arrived.
	HTTPStatus int
	// Err is the cause.
	Err error
}

// Error returns, for example, "read s3://b/k: access denied: the reading
// identity arn:aws:iam::123456789012:role/r needs s3:GetObject on
// arn:aws:s3:::b/k: <cause>".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteByte(' ')
	b.WriteString(e.Location.String())
	if e.Location.As != (Identity{}) {
		b.WriteString(" as ")
		b.WriteString(e.Location.As.String())
	}
	if e.Permission != "" {
		b.WriteString(": access denied: the ")
		b.WriteString(actor(e.Op))
		b.WriteString(" identity ")
		switch {
		case e.Principal != "":
			b.WriteString(e.Principal)
			b.WriteByte(' ')
		case e.Location.As == (Identity{}) && (e.Location.Scheme == "s3" || e.Location.Scheme == "gs"):
			b.WriteString("(the default credentials of this process) ")
		}
		b.WriteString("needs ")
		b.WriteString(e.Permission)
		if r := e.Location.resource(); r != "" {
			b.WriteString(" on ")
			b.WriteString(r)
		}
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

func actor(op string) string {
	switch op {
	case OpRead:
		return "reading"
	case opWrite:
		return "writing"
	case opDelete:
		return "deleting"
	case OpList:
		return "listing"
	default:
		return "calling"
	}
}

// The operations of an Error; OpRead and OpList also label the worker's
// logpush_onboard_storage_requests_total.
const (
	OpRead   = "read"
	opWrite  = "write"
	opDelete = "delete"
	OpList   = "list"
)

// IsTransient reports whether err is, or wraps, an *Error of Kind Transient.
// ErrNotFound and ErrStale are not transient (they are "not yet"); neither is
// any error this package did not classify.
func IsTransient(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == Transient
}

// Outcome labels of Outcome, for the storage request metric.
const (
	OutcomeOK        = "ok"
	OutcomeNotFound  = "not_found"
	OutcomeStale     = "stale"
	OutcomeTransient = "transient_error"
	OutcomeDenied    = "denied"
	OutcomePermanent = "permanent_error"
)

// Outcome returns a bounded label for the result of a Read or Write: one of
// OutcomeOK (err is nil), OutcomeNotFound, OutcomeStale, OutcomeTransient,
// OutcomeDenied (access denied: an S3 read denied so is retried, since S3
// denies a missing file so to a reader without s3:ListBucket) or
// OutcomePermanent (any other error).
func Outcome(err error) string {
	var e *Error
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, ErrNotFound):
		return OutcomeNotFound
	case errors.Is(err, ErrStale):
		return OutcomeStale
	case IsTransient(err):
		return OutcomeTransient
	case errors.As(err, &e) && e.Permission != "":
		return OutcomeDenied
	default:
		return OutcomePermanent
	}
}

// ObserveFunc is told about every storage request a reader or writer makes:
// op is "read" or "write", outcome is Outcome(err). It is called from many
// goroutines at once.
type ObserveFunc func(op, outcome string)

func (f ObserveFunc) observe(op string, err error) {
	if f != nil {
		f(op, Outcome(err))
	}
}

// Mux is a Reader that dispatches on Location.Scheme. A scheme with no
// reader is a Permanent error.
type Mux map[string]Reader

// Read reads loc with the reader registered for loc.Scheme.
func (m Mux) Read(ctx context.Context, loc Location, notBefore time.Time) (Object, error) {
	r := m[loc.Scheme]
	if r == nil {
		return Object{}, unknownScheme(OpRead, loc)
	}
	return r.Read(ctx, loc, notBefore)
}

// Delete deletes loc with the reader registered for loc.Scheme, which must
// be a Deleter.
func (m Mux) Delete(ctx context.Context, loc Location) error {
	d, ok := m[loc.Scheme].(Deleter)
	if !ok {
		return unknownScheme(opDelete, loc)
	}
	return d.Delete(ctx, loc)
}

// WriterMux is a Writer that dispatches on Location.Scheme. A scheme with no
// writer is a Permanent error.
type WriterMux map[string]Writer

// Write writes loc with the writer registered for loc.Scheme.
func (m WriterMux) Write(ctx context.Context, loc Location, body []byte) error {
	w := m[loc.Scheme]
	if w == nil {
		return unknownScheme(opWrite, loc)
	}
	return w.Write(ctx, loc, body)
}

func unknownScheme(op string, loc Location) error {
	role := "reader"
	switch op {
	case opWrite:
		role = "writer"
	case opDelete:
		role = "deleter"
	}
	return &Error{Kind: Permanent, Op: op, Location: loc, Err: fmt.Errorf("no %s for destination scheme %q", role, loc.Scheme)}
}

// notFound and stale wrap the sentinels with the location, for log lines.
func notFound(op string, loc Location) error {
	return fmt.Errorf("%s %s: %w", op, loc, ErrNotFound)
}

func stale(op string, loc Location, mod, notBefore time.Time) error {
	return fmt.Errorf("%s %s: last modified %s, before %s: %w", op, loc,
		mod.UTC().Format(time.RFC3339Nano), notBefore.UTC().Format(time.RFC3339Nano), ErrStale)
}

func tooLarge(op string, loc Location, limit int64) error {
	return &Error{Kind: Permanent, Op: op, Location: loc, Err: fmt.Errorf("challenge file larger than %d bytes", limit)}
}
