package keys

import "time"

// The workers' keys: the pauses that hold rows for an operator after
// repeated 401/403 answers, and each worker's view of the credentials it
// holds. Credential names in these keys are the names of the credentials
// file, DefaultCredential for the credential of the environment.

// DefaultCredential names the default credential (the rows that name
// none) in these keys, in credential events and for resume --credential:
// a file's names cannot hold parentheses, so it is no file's name.
const DefaultCredential = "(default)"

const (
	// AuthFailures is a string, the count of consecutive 401/403 answers
	// fleet-wide of the default credential (the queue-wide pause of a
	// fleet without named credentials). Workers INCR it on an
	// authentication failure, delete it on a success and read it while a
	// failure waits for the fleet's verdict; resume deletes it. No TTL.
	AuthFailures = "logpush:auth_failures"

	// AuthFailuresPrefix + name is the same count for the named credential
	// name (see AuthFailuresOf). No TTL.
	AuthFailuresPrefix = AuthFailures + ":"

	// QueuePause is a hash of the queue's pause: "since" (RFC3339, the
	// first pause of an incident) and "reason". A worker whose guard
	// pauses the queue writes it; status and the web UI read it; resume
	// deletes it. No TTL.
	QueuePause = "logpush:queue_pause"

	// PausedCredentials is a hash of the paused credentials' names to the
	// reason. A worker's credential pause writes it; workers read it
	// (at most once a second per credential) before each row of the
	// credential; status reads it; resume deletes a credential's field.
	// No TTL.
	PausedCredentials = "logpush:paused_credentials"

	// PausedCredentialsSince is a hash of the paused credentials' names to
	// when their pause began (RFC3339). Written with PausedCredentials (the
	// first pause keeps its time), read by status, cleared by resume. No
	// TTL.
	PausedCredentialsSince = "logpush:paused_credentials_since"

	// ParkedPrefix + name is a hash of the task ids of the paused
	// credential name's parked rows to their queue. A worker parks a row
	// there when it finds its credential paused; resume wakes each and
	// deletes the key. No TTL.
	ParkedPrefix = "logpush:parked:"

	// CredentialsInUse is a sorted set of the credentials that made calls
	// lately, scored by unix seconds. Workers add their credential at most
	// every 30 seconds while it is not paused; the credential pause reads
	// the last 10 minutes of it to pause the queue once every credential in
	// use is paused. No TTL (old members only stop counting).
	CredentialsInUse = "logpush:credentials_in_use"

	// CredentialWorkersPrefix + name is a hash of the workers holding the
	// credential name (host:pid#suffix) to "ok <unix>" (verified),
	// "held <unix>" (not yet) or "refused <unix>". Each worker writes its
	// field at Start, on each change and every 10 seconds, and removes it
	// at Shutdown; a worker whose copy is refused reads it to find a
	// worker whose copy works. TTL 24 hours, renewed on each write
	// (CredentialWorkersTTL).
	CredentialWorkersPrefix = "logpush:credential_workers:"
)

// CredentialWorkersTTL is the TTL of a CredentialWorkersPrefix key.
const CredentialWorkersTTL = 24 * time.Hour

// AuthFailuresOf is the key of the count of the credential called name
// ("" the default credential: AuthFailures).
func AuthFailuresOf(name string) string {
	if name == "" {
		return AuthFailures
	}
	return AuthFailuresPrefix + name
}
