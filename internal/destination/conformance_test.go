package destination_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/destination/destinationtest"
)

// The conformance suite for each reader: its fake storage, how to make it
// deny a read, and its error answers. What only one reader does stays in
// that reader's own tests.

const bucket = "bucket"

// denials is the set of object paths a fake storage refuses to read.
type denials struct{ m sync.Map }

func (d *denials) add(path string) { d.m.Store(path, true) }

// denied reports whether r reads or deletes a denied object: by its path
// (S3's path style, GCS's XML API), or by GCS's JSON API object path.
func (d *denials) denied(r *http.Request) bool {
	path := r.URL.Path
	if rest, ok := strings.CutPrefix(path, "/storage/v1/b/"); ok {
		if b, k, ok := strings.Cut(rest, "/o/"); ok {
			path = "/" + b + "/" + k
		}
	}
	_, ok := d.m.Load(path)
	return ok && (r.Method == http.MethodGet || r.Method == http.MethodDelete)
}

// client is an HTTP client on tr that hands redirects to the SDK, as its
// own client does.
func client(tr http.RoundTripper) *http.Client {
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func TestS3Conformance(t *testing.T) {
	t.Parallel()
	destinationtest.Exercise(t, destinationtest.Backend{
		New:                    newS3,
		HTTP:                   true,
		Resolution:             time.Second,
		DeniedPermission:       "s3:GetObject",
		DeleteDeniedPermission: "s3:DeleteObject",
		ErrorCases:             s3ErrorCases,
		ErrorResponse: func(w http.ResponseWriter, r *http.Request, c destinationtest.ErrorCase) bool {
			destination.WriteS3Error(w, r, c.Status, c.Code, c.Header)
			return true
		},
	})
}

// newS3 is an S3 reader of a fresh gofakes3, in process.
func newS3(t *testing.T, cfg destinationtest.Config) *destinationtest.Storage {
	t.Helper()
	endpoint := cfg.Endpoint
	deny := new(denials)
	if endpoint == "" {
		backend := s3mem.New()
		if err := backend.CreateBucket(bucket); err != nil {
			t.Fatal(err)
		}
		fake := gofakes3.New(backend).Server()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if deny.denied(r) {
				destination.WriteS3Error(w, r, http.StatusForbidden, "AccessDenied", nil)
				return
			}
			fake.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		endpoint = srv.URL
	}
	s, err := destination.NewS3(context.Background(), destination.S3Options{
		Endpoint:     endpoint,
		Credentials:  credentials.NewStaticCredentialsProvider(destination.TestKeyID, destination.TestSecret, ""),
		HTTPClient:   client(cfg.Transport),
		Observe:      cfg.Observe,
		MaxBodyBytes: cfg.MaxBodyBytes,
	})
	if err != nil {
		t.Fatal(err)
	}
	loc := func(key string) destination.Location {
		return destination.Location{Scheme: "s3", Bucket: bucket, Key: key, Region: "us-east-1"}
	}
	return &destinationtest.Storage{Reader: s, Writer: s, Loc: loc,
		Deny: func(t *testing.T, key string) destination.Location {
			deny.add("/" + bucket + "/" + key)
			return loc(key)
		},
		Secrets: []string{destination.TestKeyID, destination.TestSecret}}
}

var s3ErrorCases = []destinationtest.ErrorCase{
	{Name: "no such key", Status: 404, Code: "NoSuchKey", Op: "read", NotFound: true, Requests: 1},
	{Name: "bare 404", Status: 404, Code: "NotFound", Op: "read", NotFound: true, Requests: 1},
	{Name: "no such bucket", Status: 404, Code: "NoSuchBucket", Op: "read", Requests: 1,
		Prefix: "read s3://bucket/k: bucket does not exist: "},
	{Name: "access denied read", Status: 403, Code: "AccessDenied", Op: "read", Permission: "s3:GetObject", Requests: 1,
		Prefix: "read s3://bucket/k: access denied: the reading identity (the default credentials of this process) needs s3:GetObject on arn:aws:s3:::bucket/k: " +
			"unless the file is not written yet: without s3:ListBucket on arn:aws:s3:::bucket, S3 answers access denied for a missing file too: "},
	{Name: "access denied write", Status: 403, Code: "AccessDenied", Op: "write", Permission: "s3:PutObject", Requests: 1,
		Prefix: "write s3://bucket/k: access denied: the writing identity (the default credentials of this process) needs s3:PutObject on arn:aws:s3:::bucket/k: "},
	{Name: "bad key id", Status: 403, Code: "InvalidAccessKeyId", Op: "read", Requests: 1,
		Prefix: "read s3://bucket/k: storage rejected the credentials of this process: "},
	{Name: "wrong region", Status: 301, Code: "PermanentRedirect", Op: "read", Requests: 1,
		Header: http.Header{"X-Amz-Bucket-Region": {"eu-west-1"}},
		Prefix: "read s3://bucket/k: bucket is in region eu-west-1, not us-east-1: fix the region of the destination: "},
	{Name: "other 400", Status: 400, Code: "InvalidRequest", Op: "read", Requests: 1},
	{Name: "slow down", Status: 503, Code: "SlowDown", Op: "read", Requests: 2,
		Prefix: "read s3://bucket/k: throttled by storage: "},
	// The SDK retries neither of these by itself; the queue does.
	{Name: "429", Status: 429, Code: "TooManyRequests", Op: "read", Requests: 1},
	{Name: "internal error", Status: 500, Code: "InternalError", Op: "read", Requests: 2,
		Prefix: "read s3://bucket/k: storage unavailable: "},
	{Name: "bad gateway", Status: 502, Code: "BadGateway", Op: "write", Requests: 2},
	// A 400 that new credentials cure: the SDK's refresh, or the retry's.
	{Name: "expired token", Status: 400, Code: "ExpiredToken", Op: "read", Kind: destination.Transient, Requests: 1},
}

func TestGCSConformance(t *testing.T) {
	t.Parallel()
	destinationtest.Exercise(t, destinationtest.Backend{
		New:                    newGCS,
		HTTP:                   true,
		NotFoundRequests:       2,
		Resolution:             time.Second,
		DeniedPermission:       "storage.objects.get",
		DeleteDeniedPermission: "storage.objects.delete",
		ErrorCases:             gcsErrorCases,
		ErrorResponse:          writeGCSError,
	})
}

// newGCS is a GCS reader of a fresh fake-gcs-server, in process, which
// the reader talks to as an emulator (no credentials).
func newGCS(t *testing.T, cfg destinationtest.Config) *destinationtest.Storage {
	t.Helper()
	endpoint := cfg.Endpoint
	deny := new(denials)
	if endpoint == "" {
		fake, err := fakestorage.NewServerWithOptions(fakestorage.Options{
			NoListener: true,
			Scheme:     "http",
			Host:       "127.0.0.1",
			// The XML API answers on the public host; without a port in it,
			// any port matches.
			PublicHost: "127.0.0.1",
			Writer:     io.Discard,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(fake.Stop)
		fake.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
		h := fake.HTTPHandler()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if deny.denied(r) {
				writeGCSError(w, r, destinationtest.ErrorCase{Status: http.StatusForbidden, Code: "AccessDenied", Message: "Access denied."})
				return
			}
			h.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		endpoint = srv.URL
	}
	g, err := destination.NewGCS(t.Context(), destination.GCSOptions{
		Endpoint:     endpoint,
		HTTPClient:   client(cfg.Transport),
		Observe:      cfg.Observe,
		MaxBodyBytes: cfg.MaxBodyBytes,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	loc := func(key string) destination.Location {
		return destination.Location{Scheme: "gs", Bucket: bucket, Key: key}
	}
	return &destinationtest.Storage{Reader: g, Writer: g, Loc: loc,
		Deny: func(t *testing.T, key string) destination.Location {
			deny.add("/" + bucket + "/" + key)
			return loc(key)
		}}
}

// writeGCSError answers object requests with a GCS error, XML for the XML
// API (reads) and JSON for the JSON API (uploads), and bucket metadata
// requests with the bucket, uncounted.
func writeGCSError(w http.ResponseWriter, r *http.Request, c destinationtest.ErrorCase) bool {
	if r.URL.Path == "/storage/v1/b/"+bucket {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"kind":"storage#bucket","name":%q}`, bucket)
		return false
	}
	if strings.HasPrefix(r.URL.Path, "/upload/") || strings.HasPrefix(r.URL.Path, "/storage/v1/b/") {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.WriteHeader(c.Status)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
			"code": c.Status, "message": c.Message,
			"errors": []map[string]string{{"message": c.Message, "domain": "global", "reason": c.Code}},
		}})
		return true
	}
	w.Header().Set("Content-Type", "application/xml; charset=UTF-8")
	w.WriteHeader(c.Status)
	if c.Code != "" {
		fmt.Fprintf(w, `<?xml version='1.0' encoding='UTF-8'?><Error><Code>%s</Code><Message>%s</Message></Error>`, c.Code, c.Message)
	}
	return true
}

const gcsDenied = "sa@p.iam.gserviceaccount.com does not have storage.objects.get access to the Google Cloud Storage object."

var gcsErrorCases = []destinationtest.ErrorCase{
	{Name: "no such key", Status: 404, Code: "NoSuchKey", Message: "The specified key does not exist.", Op: "read", NotFound: true, Requests: 1},
	{Name: "bare 404", Status: 404, Op: "read", NotFound: true, Requests: 1},
	{Name: "no such bucket", Status: 404, Code: "NoSuchBucket", Message: "The specified bucket does not exist.", Op: "read", Requests: 1,
		Prefix: "read gs://bucket/k: bucket does not exist: HTTP 404 NoSuchBucket: The specified bucket does not exist."},
	{Name: "no bucket write", Status: 404, Code: "notFound", Message: "The specified bucket does not exist.", Op: "write", Requests: 1,
		Prefix: "write gs://bucket/k: bucket does not exist: HTTP 404 notFound: "},
	{Name: "access denied read", Status: 403, Code: "AccessDenied", Message: "Access denied.", Op: "read", Permission: "storage.objects.get", Requests: 1,
		Prefix: "read gs://bucket/k: access denied: the reading identity (the default credentials of this process) needs storage.objects.get: HTTP 403 AccessDenied: Access denied."},
	{Name: "access denied write", Status: 403, Code: "forbidden", Message: gcsDenied, Op: "write", Requests: 1,
		Permission: "storage.objects.create (and storage.objects.delete to replace a file)",
		Prefix:     "write gs://bucket/k: access denied: the writing identity sa@p.iam.gserviceaccount.com needs storage.objects.create (and storage.objects.delete to replace a file): HTTP 403 forbidden: " + gcsDenied},
	{Name: "unauthorized", Status: 401, Code: "AuthenticationRequired", Message: "Invalid Credentials", Op: "read", Requests: 1,
		Prefix: "read gs://bucket/k: storage rejected the credentials of this process: HTTP 401"},
	{Name: "other 400", Status: 400, Code: "InvalidArgument", Message: "Invalid argument.", Op: "read", Requests: 1},
	{Name: "429", Status: 429, Code: "SlowDown", Message: "Please reduce your request rate.", Op: "read", Requests: 2,
		Prefix: "read gs://bucket/k: throttled by storage: HTTP 429 SlowDown: Please reduce your request rate."},
	{Name: "rate limit write", Status: 429, Code: "rateLimitExceeded", Message: "The object exceeded the rate limit.", Op: "write", Requests: 1,
		Prefix: "write gs://bucket/k: throttled by storage: "},
	{Name: "service unavailable", Status: 503, Code: "ServiceUnavailable", Message: "Service unavailable.", Op: "read", Requests: 2,
		Prefix: "read gs://bucket/k: storage unavailable: HTTP 503 ServiceUnavailable"},
	{Name: "internal error", Status: 500, Code: "InternalError", Message: "We encountered an internal error.", Op: "read", Requests: 2},
	{Name: "bad gateway write", Status: 502, Code: "backendError", Message: "Backend Error", Op: "write", Requests: 1},
}

func TestAzureConformance(t *testing.T) {
	t.Parallel()
	destinationtest.Exercise(t, destinationtest.Backend{
		New:                    newAzure,
		HTTP:                   true,
		Resolution:             time.Second,
		DeniedPermission:       "Blob read (sp=r in the SAS, or Storage Blob Data Reader)",
		DeleteDeniedPermission: "Blob delete (sp=d in the SAS, or Storage Blob Data Contributor)",
		ErrorCases:             azureErrorCases,
		ErrorResponse: func(w http.ResponseWriter, _ *http.Request, c destinationtest.ErrorCase) bool {
			destination.WriteAzureError(w, c.Status, c.Code)
			return true
		},
	})
}

// azureFakeSAS is the SAS of the locations on a server of the suite.
const azureFakeSAS = "sv=2024-08-04&sr=c&sp=rcw&se=2099-01-01T00:00:00Z&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"

// newAzure is an Azure reader of a fresh container in Azurite, reading
// with a container SAS (no credential of its own), and a shared-key
// writer. On a server of the suite, the reader reads and writes container
// c of account1 with azureFakeSAS.
func newAzure(t *testing.T, cfg destinationtest.Config) *destinationtest.Storage {
	t.Helper()
	opts := destination.AzureOptions{HTTPClient: client(cfg.Transport), Observe: cfg.Observe, MaxBodyBytes: cfg.MaxBodyBytes}
	if cfg.Endpoint != "" {
		opts.Endpoint = cfg.Endpoint + "/account1"
		r, err := destination.NewAzure(t.Context(), opts)
		if err != nil {
			t.Fatal(err)
		}
		return &destinationtest.Storage{Reader: r, Writer: r,
			Loc: func(key string) destination.Location {
				return destination.Location{Scheme: "azure", Bucket: "c", Key: key, Account: "account1", SAS: azureFakeSAS}
			},
			Secrets: append(sasSecrets(t, azureFakeSAS), destination.AzuriteKey)}
	}

	endpoint := destination.RequireAzurite(t)
	cred, err := service.NewSharedKeyCredential(destination.AzuriteAccount, destination.AzuriteKey)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.NewClientWithSharedKeyCredential(endpoint+"/", cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	suffix := make([]byte, 8)
	rand.Read(suffix)
	container := "t" + hex.EncodeToString(suffix)
	if _, err := svc.CreateContainer(t.Context(), container, nil); err != nil {
		t.Fatalf("create container: %v", err)
	}
	t.Cleanup(func() { svc.DeleteContainer(context.Background(), container, nil) })
	q, err := sas.BlobSignatureValues{
		Protocol:   sas.ProtocolHTTPSandHTTP,
		ExpiryTime: time.Now().Add(time.Hour),
		// Read, and delete for the challenge file once the job exists.
		Permissions:   (&sas.ContainerPermissions{Read: true, Delete: true}).String(),
		ContainerName: container,
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	readSAS := q.Encode()
	forged := forgeSig(t, readSAS)

	writer, err := destination.NewAzure(t.Context(), destination.AzureOptions{Endpoint: endpoint,
		AccountName: destination.AzuriteAccount, AccountKey: destination.AzuriteKey})
	if err != nil {
		t.Fatal(err)
	}
	opts.Endpoint = endpoint
	reader, err := destination.NewAzure(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	locWith := func(key, sas string) destination.Location {
		return destination.Location{Scheme: "azure", Bucket: container, Key: key, Account: destination.AzuriteAccount, SAS: sas}
	}
	return &destinationtest.Storage{Reader: reader, Writer: writer,
		Loc: func(key string) destination.Location { return locWith(key, readSAS) },
		// A SAS that says it reads, signed with another key: Azurite
		// refuses it.
		Deny:    func(t *testing.T, key string) destination.Location { return locWith(key, forged) },
		Secrets: append(sasSecrets(t, readSAS, forged), destination.AzuriteKey)}
}

// forgeSig replaces the signature of a SAS with another valid-looking one.
func forgeSig(t *testing.T, s string) string {
	t.Helper()
	q, err := url.ParseQuery(s)
	if err != nil {
		t.Fatal(err)
	}
	q.Set("sig", "Zm9yZ2VkLXNpZ25hdHVyZS1mb3ItdGVzdHMtb25seQ+/=")
	return q.Encode()
}

// sasSecrets returns each SAS and its signature, in the encodings an
// error could show it in.
func sasSecrets(t *testing.T, sases ...string) []string {
	t.Helper()
	var secrets []string
	for _, s := range sases {
		q, err := url.ParseQuery(s)
		if err != nil {
			t.Fatal(err)
		}
		sig := q.Get("sig")
		secrets = append(secrets, s, sig, url.QueryEscape(sig), url.PathEscape(sig))
	}
	return secrets
}

var azureErrorCases = []destinationtest.ErrorCase{
	{Name: "blob not found", Status: 404, Code: "BlobNotFound", Op: "read", NotFound: true, Requests: 1},
	{Name: "container not found", Status: 404, Code: "ContainerNotFound", Op: "read", Requests: 1,
		Prefix: "read azure://c/k: container does not exist: HTTP 404 ContainerNotFound: message for ContainerNotFound"},
	{Name: "permission mismatch", Status: 403, Code: "AuthorizationPermissionMismatch", Op: "read", Requests: 1,
		Permission: "Blob read (sp=r in the SAS, or Storage Blob Data Reader)",
		Prefix:     "read azure://c/k: access denied: the reading identity needs Blob read (sp=r in the SAS, or Storage Blob Data Reader) on container c of storage account account1: HTTP 403 AuthorizationPermissionMismatch"},
	{Name: "authorization failure write", Status: 403, Code: "AuthorizationFailure", Op: "write", Requests: 1,
		Permission: "Blob write (sp=cw in the SAS, or Storage Blob Data Contributor)"},
	{Name: "authentication failed", Status: 403, Code: "AuthenticationFailed", Op: "read", Requests: 1,
		Permission: "Blob read (sp=r in the SAS, or Storage Blob Data Reader)"},
	{Name: "server busy", Status: 503, Code: "ServerBusy", Op: "read", Requests: 2,
		Prefix: "read azure://c/k: throttled by storage: HTTP 503 ServerBusy: message for ServerBusy"},
	{Name: "429", Status: 429, Code: "TooManyRequests", Op: "read", Requests: 2},
	{Name: "internal error", Status: 500, Code: "InternalError", Op: "read", Requests: 2,
		Prefix: "read azure://c/k: storage unavailable: HTTP 500 InternalError"},
	{Name: "operation timed out write", Status: 500, Code: "OperationTimedOut", Op: "write", Requests: 2},
	{Name: "account disabled", Status: 403, Code: "AccountIsDisabled", Op: "read", Requests: 1,
		Permission: "Blob read (sp=r in the SAS, or Storage Blob Data Reader)"},
	{Name: "bad request", Status: 400, Code: "InvalidQueryParameterValue", Op: "read", Requests: 1},
}

func TestFileConformance(t *testing.T) {
	t.Parallel()
	destinationtest.Exercise(t, destinationtest.Backend{
		New:              newFile,
		DeniedPermission: "read permission on the file",
	})
}

// newFile is a File rooted at "/", on a fresh temp directory.
func newFile(t *testing.T, cfg destinationtest.Config) *destinationtest.Storage {
	t.Helper()
	dir := t.TempDir()
	f := &destination.File{Observe: cfg.Observe, MaxBodyBytes: cfg.MaxBodyBytes}
	loc := func(key string) destination.Location {
		return destination.Location{Scheme: "file", Key: strings.TrimPrefix(filepath.ToSlash(filepath.Join(dir, key)), "/")}
	}
	return &destinationtest.Storage{Reader: f, Writer: f, Loc: loc,
		Deny: func(t *testing.T, key string) destination.Location {
			if os.Geteuid() == 0 {
				t.Skip("root reads any file")
			}
			if err := os.Chmod(filepath.Join(dir, key), 0o000); err != nil {
				t.Fatal(err)
			}
			return loc(key)
		}}
}
