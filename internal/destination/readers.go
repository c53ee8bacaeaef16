package destination

import (
	"context"
	"time"

	awscreds "github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/logpush-onboard/logpush-onboard/credentials"
)

// Options are the options of each reader that NewMux builds.
type Options struct {
	S3    S3Options
	GCS   GCSOptions
	Azure AzureOptions
}

// OptionsFor maps the public storage settings to the readers' options.
func OptionsFor(s credentials.Storage) Options {
	o := Options{
		S3:  S3Options{Endpoint: s.S3Endpoint, UsePathStyle: s.S3UsePathStyle},
		GCS: GCSOptions{Endpoint: s.GCSEndpoint, CredentialsFile: s.GCSCredentialsFile},
		Azure: AzureOptions{Endpoint: s.AzureEndpoint, AccountName: s.AzureAccountName, AccountKey: s.AzureAccountKey,
			ConnectionString: s.AzureConnectionString, DefaultCredential: s.AzureDefaultCredential},
	}
	if s.S3AccessKeyID != "" {
		o.S3.Credentials = awscreds.NewStaticCredentialsProvider(s.S3AccessKeyID, s.S3SecretAccessKey, "")
	}
	return o
}

// NewMux returns the reader for every destination type a worker reads: S3,
// GCS, Azure and local files. A cloud whose credentials cannot be set up
// does not stop the worker: its destinations fail with the reason (and
// preflight reports it up front). Only an S3 setup error is returned.
func NewMux(ctx context.Context, o Options) (Mux, error) {
	s3r, err := NewS3(ctx, o.S3)
	if err != nil {
		return nil, err
	}
	m := Mux{"s3": s3r, "file": &File{}}
	if g, err := NewGCS(ctx, o.GCS); err != nil {
		m["gs"] = unavailable{err}
	} else {
		m["gs"] = g
	}
	if a, err := NewAzure(ctx, o.Azure); err != nil {
		m["azure"] = unavailable{err}
	} else {
		m["azure"] = a
	}
	return m, nil
}

// unavailable is the reader of a cloud whose credentials could not be set
// up: every read fails permanently, saying why.
type unavailable struct{ err error }

func (u unavailable) Read(_ context.Context, loc Location, _ time.Time) (Object, error) {
	return Object{}, &Error{Kind: Permanent, Op: "read", Location: loc, Err: u.err}
}
