package credentials

import "fmt"

// Storage says how a worker reads challenge files: endpoints for
// S3-compatible services and emulators, and the identities to read with
// where the default ones do not fit. The zero value reads S3 with the AWS
// default credential chain, GCS with Application Default Credentials,
// Azure with each destination's SAS, and local files. String, GoString and
// Format never show its secrets.
type Storage struct {
	// S3Endpoint replaces AWS's endpoint (MinIO, a test server); requests
	// then use path-style addressing, as they do with S3UsePathStyle.
	S3Endpoint     string
	S3UsePathStyle bool
	// S3AccessKeyID and S3SecretAccessKey sign S3 requests instead of the
	// AWS default credential chain; set both or neither.
	S3AccessKeyID     string
	S3SecretAccessKey string
	// GCSEndpoint replaces Google's (fake-gcs-server).
	GCSEndpoint string
	// GCSCredentialsFile is a service account key file instead of
	// Application Default Credentials.
	GCSCredentialsFile string
	// The Azure read identity, for destinations whose SAS grants only
	// write, as Cloudflare advises: a connection string, or an account
	// name and key, or, with AzureDefaultCredential, the default Azure
	// credential (managed or workload identity, environment, Azure CLI)
	// holding Storage Blob Data Reader.
	AzureConnectionString  string
	AzureAccountName       string
	AzureAccountKey        string
	AzureDefaultCredential bool
	// AzureEndpoint replaces https://<account>.blob.core.windows.net
	// (Azurite).
	AzureEndpoint string
}

// Validate reports settings that cannot work together.
func (s Storage) Validate() error {
	switch {
	case (s.S3AccessKeyID == "") != (s.S3SecretAccessKey == ""):
		return fmt.Errorf("%w: S3AccessKeyID and S3SecretAccessKey must be set together", ErrInvalid)
	case (s.AzureAccountName == "") != (s.AzureAccountKey == ""):
		return fmt.Errorf("%w: AzureAccountName and AzureAccountKey must be set together", ErrInvalid)
	}
	return nil
}

// String names the endpoints and the Azure account, never a secret.
func (s Storage) String() string {
	return fmt.Sprintf("credentials.Storage{S3Endpoint: %q, GCSEndpoint: %q, AzureAccountName: %q, AzureEndpoint: %q}",
		s.S3Endpoint, s.GCSEndpoint, s.AzureAccountName, s.AzureEndpoint)
}

// GoString is String, so that %#v does not print the secrets.
func (s Storage) GoString() string { return s.String() }

// Format prints String for every verb.
func (s Storage) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, s.String()) }
