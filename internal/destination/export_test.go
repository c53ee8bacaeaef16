package destination

// What the conformance tests (conformance_test.go, package
// destination_test, which cannot reach this package's test helpers
// otherwise) share with the tests of each reader.

var (
	// RequireAzurite returns the Azurite endpoint, starting Azurite if
	// needed (requireAzurite).
	RequireAzurite = requireAzurite
	// WriteS3Error answers a request with an S3 XML error.
	WriteS3Error = writeS3Error
	// WriteAzureError answers a request with an Azure Storage error.
	WriteAzureError = writeAzureError
)

const (
	// AzuriteAccount and AzuriteKey are Azurite's development account.
	AzuriteAccount = azuriteAccount
	AzuriteKey     = azuriteKey
	// TestKeyID and TestSecret are the static AWS credentials of the S3
	// tests.
	TestKeyID  = testKeyID
	TestSecret = testSecret
)
