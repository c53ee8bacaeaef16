package cli

import (
	"context"

	"github.com/logpush-onboard/logpush-onboard/internal/destination"
)

// storageConfig says how workers and preflight reach destinations. The zero
// value reads AWS S3 with the default credential chain and local files.
type storageConfig struct {
	s3 destination.S3Options
}

// readers returns the reader for every destination type the worker reads.
func (c storageConfig) readers(ctx context.Context) (destination.Mux, error) {
	s3r, err := destination.NewS3(ctx, c.s3)
	if err != nil {
		return nil, err
	}
	return destination.Mux{"s3": s3r, "file": &destination.File{}}, nil
}
