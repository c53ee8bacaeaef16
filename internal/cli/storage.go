package cli

import (
	"errors"
	"strconv"
	"strings"

	"github.com/logpush-onboard/logpush-onboard/credentials"
)

// storageFromEnv is the storage configuration of a worker or preflight:
// the zero credentials.Storage plus the Azure read identity of the environment, which
// reads the challenge file when the SAS of a destination_conf grants only
// write (as Cloudflare advises): AZURE_STORAGE_CONNECTION_STRING, or
// AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY, or, with
// AZURE_DEFAULT_CREDENTIAL=true, the default Azure credential (managed or
// workload identity, environment, Azure CLI) holding Storage Blob Data
// Reader. Values are trimmed; none is ever shown.
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
	return c, nil
}
