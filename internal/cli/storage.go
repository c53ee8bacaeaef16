package cli

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/destination"
)

// storageConfig says how workers and preflight reach destinations. The zero
// value reads AWS S3 with the default credential chain, GCS with
// Application Default Credentials, Azure with the SAS of each
// destination_conf, and local files.
type storageConfig struct {
	s3    destination.S3Options
	gcs   destination.GCSOptions
	azure destination.AzureOptions
}

// storageFromEnv is the storage configuration of a worker or preflight:
// the zero value plus the Azure read identity of the environment, which
// reads the challenge file when the SAS of a destination_conf grants only
// write (as Cloudflare advises): AZURE_STORAGE_CONNECTION_STRING, or
// AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY, or, with
// AZURE_DEFAULT_CREDENTIAL=true, the default Azure credential (managed or
// workload identity, environment, Azure CLI) holding Storage Blob Data
// Reader. Values are trimmed; none is ever shown.
func storageFromEnv(env Env) (storageConfig, error) {
	get := func(k string) string { return strings.TrimSpace(env.Getenv(k)) }
	var c storageConfig
	c.azure.ConnectionString = get("AZURE_STORAGE_CONNECTION_STRING")
	c.azure.AccountName, c.azure.AccountKey = get("AZURE_STORAGE_ACCOUNT"), get("AZURE_STORAGE_KEY")
	if (c.azure.AccountName == "") != (c.azure.AccountKey == "") {
		return c, errors.New("AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY must be set together")
	}
	if v := get("AZURE_DEFAULT_CREDENTIAL"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, errors.New("AZURE_DEFAULT_CREDENTIAL: want true or false")
		}
		c.azure.DefaultCredential = b
	}
	return c, nil
}

// readers returns the reader for every destination type the worker reads.
// A cloud whose credentials cannot be set up does not stop the worker: its
// destinations fail with the reason, and preflight reports it up front.
func (c storageConfig) readers(ctx context.Context) (destination.Mux, error) {
	s3r, err := destination.NewS3(ctx, c.s3)
	if err != nil {
		return nil, err
	}
	m := destination.Mux{"s3": s3r, "file": &destination.File{}}
	if g, err := destination.NewGCS(ctx, c.gcs); err != nil {
		m["gs"] = unavailable{err}
	} else {
		m["gs"] = g
	}
	if a, err := destination.NewAzure(ctx, c.azure); err != nil {
		m["azure"] = unavailable{err}
	} else {
		m["azure"] = a
	}
	return m, nil
}

// unavailable is the reader of a cloud whose credentials could not be set
// up: every read fails permanently, saying why.
type unavailable struct{ err error }

func (u unavailable) Read(_ context.Context, loc destination.Location, _ time.Time) (destination.Object, error) {
	return destination.Object{}, &destination.Error{Kind: destination.Permanent, Op: "read", Location: loc, Err: u.err}
}
