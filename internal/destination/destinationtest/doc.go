// Package destinationtest is the conformance suite of the destination
// readers: what every [destination.Reader] must answer the same way, so
// that the worker can map it onto the queue without knowing the storage.
//
// In the flow, logpush:poll reads the challenge file with one of the
// readers (S3, GCS, Azure, file) and treats their answers alike: not found
// and stale are "not yet" (a snooze), throttling and server errors are
// transient (a retry), the rest is permanent (the destination fails, with
// an error text that tells the operator what to fix and shows no secret).
// [Exercise] checks these answers for one reader against a fresh bucket of
// its storage's fake (gofakes3, fake-gcs-server, Azurite, a temp
// directory) and, for HTTP storages, against servers of the suite's own
// that stream without Content-Length or answer with the storage's error
// documents. Each reader's test file calls Exercise with a [Backend]; what
// only one reader does (SAS, identities, region clients, emulator
// environment) stays in that reader's own tests.
package destinationtest
