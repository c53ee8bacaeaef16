package cli

import (
	"errors"
	"net/url"
	"strconv"
	"strings"

	"github.com/logpush-onboard/logpush-onboard/credentials"
)

// storageFromEnv is the storage configuration of a worker, run, migrate or
// preflight: the zero credentials.Storage (S3 and GCS read with their
// SDKs' own environment: the AWS default chain and AWS_ENDPOINT_URL_S3,
// Application Default Credentials and STORAGE_EMULATOR_HOST) plus the Azure
// settings of the environment. The Azure read identity reads the challenge
// file when the SAS of a destination_conf grants only write (as Cloudflare
// advises): AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT with
// AZURE_STORAGE_KEY, or, with AZURE_DEFAULT_CREDENTIAL=true, the default
// Azure credential (managed or workload identity, environment, Azure CLI)
// holding Storage Blob Data Reader. AZURE_STORAGE_BLOB_ENDPOINT is the blob
// service every azure:// destination is read in, whatever account it names
// (Azurite's http://127.0.0.1:10000/devstoreaccount1), as
// AWS_ENDPOINT_URL_S3 is S3's; the Azure SDK has no variable of its own
// for it. Values are trimmed; none is ever shown.
func storageFromEnv(env Env) (credentials.Storage, error) {
	get := func(k string) string { return strings.TrimSpace(env.Getenv(k)) }
	var c credentials.Storage
	c.AzureConnectionString = get("AZURE_STORAGE_CONNECTION_STRING")
	c.AzureAccountName, c.AzureAccountKey = get("AZURE_STORAGE_ACCOUNT"), get("AZURE_STORAGE_KEY")
	if (c.AzureAccountName == "") != (c.AzureAccountKey == "") {
		return c, notStarted(errors.New("AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY must be set together"))
	}
	if v := get("AZURE_DEFAULT_CREDENTIAL"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, notStarted(errors.New("AZURE_DEFAULT_CREDENTIAL: want true or false"))
		}
		c.AzureDefaultCredential = b
	}
	if v := get("AZURE_STORAGE_BLOB_ENDPOINT"); v != "" {
		// The value is not quoted: a mistyped one may hold a SAS.
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" {
			return c, notStarted(errors.New("AZURE_STORAGE_BLOB_ENDPOINT: want an http or https URL without user information or query, such as http://127.0.0.1:10000/devstoreaccount1"))
		}
		c.AzureEndpoint = v
	}
	return c, nil
}
