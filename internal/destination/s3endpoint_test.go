package destination

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyauth "github.com/aws/smithy-go/auth"
	smithyendpoints "github.com/aws/smithy-go/endpoints"
)

// s3EndpointCases are endpoint parameters across the branches of the S3
// rules: AWS virtual-hosted and path-style, a custom endpoint, FIPS,
// dual-stack, Transfer Acceleration, the global endpoint, other
// partitions, S3 Express directory buckets, access point, Object Lambda,
// Multi-Region and Outposts ARNs. As bindEndpointParams binds a client's
// options, the booleans it always sets are set. The SDK resolves them all.
func s3EndpointCases() map[string]s3.EndpointParameters {
	base := func(bucket, region string) s3.EndpointParameters {
		return s3.EndpointParameters{
			Bucket: aws.String(bucket), Region: aws.String(region),
			UseFIPS: aws.Bool(false), UseDualStack: aws.Bool(false), ForcePathStyle: aws.Bool(false),
			Accelerate: aws.Bool(false), DisableMultiRegionAccessPoints: aws.Bool(false), UseArnRegion: aws.Bool(false),
		}
	}
	with := func(p s3.EndpointParameters, f func(*s3.EndpointParameters)) s3.EndpointParameters {
		f(&p)
		return p
	}
	return map[string]s3.EndpointParameters{
		"virtual-hosted": base("bucket", "us-east-1"),
		"path-style":     with(base("bucket", "eu-west-1"), func(p *s3.EndpointParameters) { p.ForcePathStyle = aws.Bool(true) }),
		"dotted bucket":  base("my.bucket", "eu-west-1"),
		"custom endpoint": with(base("bucket", "us-east-1"), func(p *s3.EndpointParameters) {
			p.Endpoint, p.ForcePathStyle = aws.String("http://127.0.0.1:9000"), aws.Bool(true)
		}),
		"fips dual-stack": with(base("bucket", "us-west-2"), func(p *s3.EndpointParameters) {
			p.UseFIPS, p.UseDualStack = aws.Bool(true), aws.Bool(true)
		}),
		"accelerate":      with(base("bucket", "us-west-2"), func(p *s3.EndpointParameters) { p.Accelerate = aws.Bool(true) }),
		"global endpoint": with(base("bucket", "us-east-1"), func(p *s3.EndpointParameters) { p.UseGlobalEndpoint = aws.Bool(true) }),
		"china":           base("bucket", "cn-north-1"),
		"govcloud":        base("bucket", "us-gov-west-1"),
		"no bucket":       with(base("", "us-east-1"), func(p *s3.EndpointParameters) { p.Bucket = nil }),
		"s3 express":      base("mybucket--usw2-az1--x-s3", "us-west-2"),
		"access point":    base("arn:aws:s3:us-west-2:123456789012:accesspoint/myendpoint", "us-west-2"),
		"object lambda":   base("arn:aws:s3-object-lambda:us-west-2:123456789012:accesspoint/mybanner", "us-west-2"),
		"multi-region":    base("arn:aws:s3::123456789012:accesspoint/mfzwi23gnjvgw.mrap", "us-west-2"),
		"outposts": base("arn:aws:s3-outposts:us-west-2:123456789012:outpost/op-01234567890123456/accesspoint/reports",
			"us-west-2"),
	}
}

// TestS3EndpointIgnoresKey: the SDK's rules resolve the same endpoint (URL,
// headers, properties: signing scheme, name and region) whatever the Key,
// Prefix and CopySource, which s3EndpointKey leaves out. It fails when a
// new SDK version makes the endpoint depend on one of them: then key on it.
func TestS3EndpointIgnoresKey(t *testing.T) {
	t.Parallel()
	resolver := s3.NewDefaultEndpointResolverV2()
	for name, params := range s3EndpointCases() {
		want, wantErr := resolver.ResolveEndpoint(t.Context(), params)
		if wantErr != nil {
			t.Errorf("%s: %v", name, wantErr)
		}
		for _, value := range []*string{aws.String("challenge.txt"), aws.String("logs/a b/ownership-challenge-1.txt"), aws.String("")} {
			for field, set := range map[string]func(*s3.EndpointParameters){
				"Key":        func(p *s3.EndpointParameters) { p.Key = value },
				"Prefix":     func(p *s3.EndpointParameters) { p.Prefix = value },
				"CopySource": func(p *s3.EndpointParameters) { p.CopySource = value },
			} {
				p := params
				set(&p)
				got, err := resolver.ResolveEndpoint(t.Context(), p)
				if fmt.Sprint(err) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
					t.Errorf("%s: %s %q: endpoint %+v (%v), without it %+v (%v)", name, field, *value, got, err, want, wantErr)
				}
			}
		}
	}
}

// TestS3EndpointKeyCoversParameters: every field of s3.EndpointParameters
// but Key, Prefix and CopySource changes the cache key, unset apart from
// zero. It fails when a new SDK version adds a parameter: key on it (or,
// if the rules do not read it, leave it out like Key).
func TestS3EndpointKeyCoversParameters(t *testing.T) {
	t.Parallel()
	ignored := map[string]bool{"Key": true, "Prefix": true, "CopySource": true}
	unset := s3EndpointKeyOf(s3.EndpointParameters{})
	typ := reflect.TypeFor[s3.EndpointParameters]()
	for i := range typ.NumField() {
		field := typ.Field(i)
		var values []reflect.Value
		switch field.Type {
		case reflect.TypeFor[*string]():
			values = []reflect.Value{reflect.ValueOf(aws.String("")), reflect.ValueOf(aws.String("x"))}
		case reflect.TypeFor[*bool]():
			values = []reflect.Value{reflect.ValueOf(aws.Bool(false)), reflect.ValueOf(aws.Bool(true))}
		default:
			t.Errorf("EndpointParameters.%s has type %s, which s3EndpointKey does not handle", field.Name, field.Type)
			continue
		}
		keys := map[s3EndpointKey]bool{unset: true}
		for _, v := range values {
			var p s3.EndpointParameters
			reflect.ValueOf(&p).Elem().Field(i).Set(v)
			keys[s3EndpointKeyOf(p)] = true
		}
		switch {
		case ignored[field.Name] && len(keys) != 1:
			t.Errorf("EndpointParameters.%s changes the key; it is meant to be left out", field.Name)
		case !ignored[field.Name] && len(keys) != 1+len(values):
			t.Errorf("EndpointParameters.%s: %d keys for unset and %d values, want %d: s3EndpointKey does not cover it",
				field.Name, len(keys), len(values), 1+len(values))
		}
	}
}

// countingResolver counts the resolutions that reach the SDK's resolver,
// and fails those of a bucket named fail.
type countingResolver struct {
	mu    sync.Mutex
	calls int
}

func (r *countingResolver) ResolveEndpoint(ctx context.Context, p s3.EndpointParameters) (smithyendpoints.Endpoint, error) {
	r.mu.Lock()
	r.calls++
	r.mu.Unlock()
	if aws.ToString(p.Bucket) == "fail" {
		return smithyendpoints.Endpoint{}, errors.New("refused")
	}
	return s3.NewDefaultEndpointResolverV2().ResolveEndpoint(ctx, p)
}

func (r *countingResolver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// TestS3EndpointsMemoize: one resolution per bucket whatever the key, the
// same endpoint as the SDK's, errors not kept, and at most max entries.
func TestS3EndpointsMemoize(t *testing.T) {
	t.Parallel()
	inner := &countingResolver{}
	r := newS3Endpoints(inner, 2)
	sdk := s3.NewDefaultEndpointResolverV2()
	params := s3EndpointCases()["virtual-hosted"]
	want, err := sdk.ResolveEndpoint(t.Context(), params)
	if err != nil {
		t.Fatal(err)
	}
	for i, key := range []string{"a", "b", "a"} {
		params.Key = aws.String(key)
		got, err := r.ResolveEndpoint(t.Context(), params)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("key %s: endpoint %+v (%v), want %+v", key, got, err, want)
		}
		if inner.count() != 1 {
			t.Fatalf("after %d resolutions of one bucket: %d by the SDK, want 1", i+1, inner.count())
		}
	}

	fail := s3EndpointCases()["virtual-hosted"]
	fail.Bucket = aws.String("fail")
	for range 2 {
		if _, err := r.ResolveEndpoint(t.Context(), fail); err == nil {
			t.Fatal("the failing resolution succeeded")
		}
	}
	if inner.count() != 3 {
		t.Errorf("%d resolutions by the SDK, want 3: errors are not cached", inner.count())
	}

	for _, bucket := range []string{"bucket-1", "bucket-2", "bucket-3"} {
		p := params
		p.Bucket = aws.String(bucket)
		got, err := r.ResolveEndpoint(t.Context(), p)
		if err != nil || got.URI.Host != bucket+".s3.us-east-1.amazonaws.com" {
			t.Fatalf("bucket %s: %v (%v)", bucket, got.URI.String(), err)
		}
		r.mu.Lock()
		n := len(r.cache)
		r.mu.Unlock()
		if n > 2 {
			t.Fatalf("%d entries, want at most 2", n)
		}
	}
}

// TestS3EndpointsUnchangedByCallers: what callers do to the endpoints they
// get, as the SDK's middleware does (new auth scheme IDs and properties,
// headers), does not reach the endpoint the next caller gets.
func TestS3EndpointsUnchangedByCallers(t *testing.T) {
	t.Parallel()
	r := newS3Endpoints(s3.NewDefaultEndpointResolverV2(), s3EndpointCacheSize)
	params := s3EndpointCases()["virtual-hosted"]
	want, err := s3.NewDefaultEndpointResolverV2().ResolveEndpoint(t.Context(), params)
	if err != nil {
		t.Fatal(err)
	}
	if opts, ok := smithyauth.GetAuthOptions(&want.Properties); !ok || len(opts) == 0 {
		t.Fatalf("the endpoint has no auth options to change: %+v", want)
	}
	for i := range 3 { // a miss, then hits
		got, err := r.ResolveEndpoint(t.Context(), params)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("resolution %d: %+v (%v), want %+v", i, got, err, want)
		}
		opts, _ := smithyauth.GetAuthOptions(&got.Properties)
		for _, o := range opts {
			o.SchemeID = "changed"
			o.SignerProperties.Set("changed", true)
			o.IdentityProperties.Set("changed", true)
		}
		opts[0] = &smithyauth.Option{SchemeID: "replaced"}
		got.Properties.Set("changed", true)
		got.Headers = nil
		got.URI.Path = "/changed"
	}
}

// TestS3ReadsShareEndpoints: concurrent reads through the SDK's middleware
// share the cached endpoints (run with -race: the middleware changes the
// endpoint it gets), one per bucket and region.
func TestS3ReadsShareEndpoints(t *testing.T) {
	t.Parallel()
	b := setupS3(t, s3Config{})
	for _, key := range []string{"a", "b"} {
		if err := b.s3.Write(t.Context(), s3Loc(key), []byte(key)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			loc := s3Loc([]string{"a", "b"}[i%2])
			obj, err := b.s3.Read(t.Context(), loc, time.Time{})
			if err != nil || string(obj.Body) != loc.Key {
				t.Errorf("read %s: %q, %v", loc, obj.Body, err)
			}
		})
	}
	wg.Wait()
	b.s3.endpoints.mu.Lock()
	defer b.s3.endpoints.mu.Unlock()
	if n := len(b.s3.endpoints.cache); n != 1 {
		t.Errorf("%d cached endpoints for one bucket and region, want 1", n)
	}
}
