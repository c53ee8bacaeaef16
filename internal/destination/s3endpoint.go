package destination

import (
	"context"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyauth "github.com/aws/smithy-go/auth"
	smithyendpoints "github.com/aws/smithy-go/endpoints"
)

// s3EndpointCacheSize bounds an s3Endpoints: a worker reading more buckets
// than this starts again from an empty cache rather than growing without
// end. An entry takes about 1.3 KB (the URL and the signing properties), so
// a full cache about 5 MB.
const s3EndpointCacheSize = 4096

// s3Endpoints is an s3.EndpointResolverV2 that memoizes another (the SDK's
// default). The SDK evaluates the S3 endpoint rules twice per request, once
// to choose the signing scheme and once to set the URL; the evaluation
// itself takes a few microseconds, but its resolveResult has a 9 KiB frame:
// beneath a worker task's own frames, it made the task goroutine's stack
// grow once more, copying it, on every read (BenchmarkS3Read: a fifth of a
// read's CPU). The rules are a pure function of the parameters, so the
// result is reused for the same parameters (the request's Key aside, see
// s3EndpointKey). Errors are not cached. It is safe for concurrent use.
type s3Endpoints struct {
	resolver s3.EndpointResolverV2
	max      int

	mu    sync.Mutex
	cache map[s3EndpointKey]smithyendpoints.Endpoint
}

var _ s3.EndpointResolverV2 = (*s3Endpoints)(nil)

// newS3Endpoints memoizes resolver, keeping up to max endpoints.
func newS3Endpoints(resolver s3.EndpointResolverV2, max int) *s3Endpoints {
	return &s3Endpoints{resolver: resolver, max: max, cache: make(map[s3EndpointKey]smithyendpoints.Endpoint)}
}

func (r *s3Endpoints) ResolveEndpoint(ctx context.Context, params s3.EndpointParameters) (smithyendpoints.Endpoint, error) {
	key := s3EndpointKeyOf(params)
	r.mu.Lock()
	cached, ok := r.cache[key]
	r.mu.Unlock()
	if ok {
		return cloneEndpoint(cached), nil
	}
	endpoint, err := r.resolver.ResolveEndpoint(ctx, params)
	if err != nil {
		return endpoint, err
	}
	// The caller gets the original, which it may change; the cache keeps a
	// copy no caller holds.
	cached = cloneEndpoint(endpoint)
	r.mu.Lock()
	if len(r.cache) >= r.max {
		clear(r.cache)
	}
	r.cache[key] = cached
	r.mu.Unlock()
	return endpoint, nil
}

// cloneEndpoint copies e as far as the SDK changes it in place. The
// middleware gets the Endpoint by value, but its Headers and Properties are
// maps, and the auth options in the Properties are pointers: the S3 auth
// scheme resolver rewrites their SchemeID and replaces their signer and
// identity properties (endpointAuthResolver, rebaseProps), and the signing
// middleware adds to the signer properties of the option it chose. Each
// caller gets its own maps and options; the values in them (strings, bools,
// the SigV4a region list) are only read.
func cloneEndpoint(e smithyendpoints.Endpoint) smithyendpoints.Endpoint {
	c := smithyendpoints.Endpoint{URI: e.URI, Headers: e.Headers.Clone()}
	c.Properties.SetAll(&e.Properties)
	if opts, ok := smithyauth.GetAuthOptions(&e.Properties); ok {
		copies := make([]*smithyauth.Option, len(opts))
		for i, o := range opts {
			copies[i] = &smithyauth.Option{SchemeID: o.SchemeID}
			copies[i].IdentityProperties.SetAll(&o.IdentityProperties)
			copies[i].SignerProperties.SetAll(&o.SignerProperties)
		}
		smithyauth.SetAuthOptions(&c.Properties, copies)
	}
	return c
}

// s3EndpointKey is the value of every s3.EndpointParameters field the S3
// endpoint rules read, unset told apart from zero (the rules test isSet).
// Key, Prefix and CopySource are left out: service/s3 v1.114.8 binds them
// from the request but its rules never read them, and keying on Key would
// make an entry per object instead of per bucket.
// TestS3EndpointKeyCoversParameters fails when the SDK adds a parameter;
// TestS3EndpointIgnoresKey fails when the rules start reading Key, Prefix
// or CopySource.
type s3EndpointKey struct {
	bucket, region, endpoint optional[string]

	useFIPS, useDualStack, forcePathStyle, accelerate, useGlobalEndpoint,
	useObjectLambdaEndpoint, disableAccessPoints, disableMultiRegionAccessPoints,
	useARNRegion, useS3ExpressControlEndpoint, disableS3ExpressSessionAuth optional[bool]
}

func s3EndpointKeyOf(p s3.EndpointParameters) s3EndpointKey {
	return s3EndpointKey{
		bucket:                         optionalOf(p.Bucket),
		region:                         optionalOf(p.Region),
		endpoint:                       optionalOf(p.Endpoint),
		useFIPS:                        optionalOf(p.UseFIPS),
		useDualStack:                   optionalOf(p.UseDualStack),
		forcePathStyle:                 optionalOf(p.ForcePathStyle),
		accelerate:                     optionalOf(p.Accelerate),
		useGlobalEndpoint:              optionalOf(p.UseGlobalEndpoint),
		useObjectLambdaEndpoint:        optionalOf(p.UseObjectLambdaEndpoint),
		disableAccessPoints:            optionalOf(p.DisableAccessPoints),
		disableMultiRegionAccessPoints: optionalOf(p.DisableMultiRegionAccessPoints),
		useARNRegion:                   optionalOf(p.UseArnRegion),
		useS3ExpressControlEndpoint:    optionalOf(p.UseS3ExpressControlEndpoint),
		disableS3ExpressSessionAuth:    optionalOf(p.DisableS3ExpressSessionAuth),
	}
}

// optional is a comparable *T: nil, or set to a value.
type optional[T comparable] struct {
	set bool
	v   T
}

func optionalOf[T comparable](p *T) optional[T] {
	if p == nil {
		return optional[T]{}
	}
	return optional[T]{set: true, v: *p}
}
