package tasks

// CredentialNames are the Cloudflare credentials that input rows may name
// in their credential column (producer.ClientConfig.Credentials). Names are not
// secrets: line errors list them; the secrets stay in the credentials file
// every worker reads.
type CredentialNames struct {
	// Names are the named credentials, as a credentials file names them.
	Names []string
	// Default says there is a default credential for the rows that name
	// none (CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY).
	Default bool
}
