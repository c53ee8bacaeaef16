package events

import "time"

// State is where a destination is in its onboarding: a stage it passes
// through (Queued ... CreatingJob), AwaitingToken, or an outcome
// (Validated, Failed, NotRequired). States are the values of the state
// field of a destination in Redis, the keys of BatchStatus.Counts, and,
// for the outcomes and AwaitingToken, the event field of an Event. The
// values are wire names: users build on them.
type State string

// Outcomes and AwaitingToken: the states that emit an event. Validated,
// Failed and NotRequired are terminal; AwaitingToken waits for an operator
// to submit the token.
const (
	Validated     State = "validated"
	Failed        State = "failed"
	NotRequired   State = "not_required"
	AwaitingToken State = "awaiting_token"
	// Migrated, Copied and Unchanged are the outcomes of a job of the
	// migrate command: moved to its new destination_conf (PUT), copied to
	// a second job on it (--copy), or already on its target, left alone.
	Migrated  State = "migrated"
	Copied    State = "copied"
	Unchanged State = "unchanged"
)

// Job health outcomes: the end of a destination whose enabled job the worker
// watched (enqueue --create-job with health watching on). Its validated or
// not_required event comes when the job exists, while the destination
// moves on to Watching; one of these ends it, with its own event.
const (
	// Flowing: the job pushed (Cloudflare's last_complete is set).
	Flowing State = "flowing"
	// JobFailing: the job fails to push (last_error set); Error.Message is
	// Cloudflare's error_message, redacted. A failure: Cloudflare disables
	// a job that fails for 24 hours, and the logs of a failing period are
	// lost.
	JobFailing State = "job_failing"
	// NoDataYet: the job pushed nothing within the health deadline, which
	// is no failure (a zone without traffic pushes nothing).
	NoDataYet State = "no_data_yet"
)

// Fleet events concern the queue, not one destination: they carry no
// destination fields, and Error.Message says why. They are Event names,
// never a destination's state, and not in States.
const (
	QueuePaused  State = "queue_paused"
	QueueResumed State = "queue_resumed"
	// CredentialPaused: repeated 401/403 answers for one named credential
	// hold its rows (the others go on) until resume; Credential names it.
	CredentialPaused State = "credential_paused"
	// CredentialResumed: resume released a paused credential's rows.
	CredentialResumed State = "credential_resumed"
)

// States a destination passes through before its outcome. They are states
// of the destination hash and count keys of the batch, never events.
const (
	Queued State = "queued"
	// WaitingPath: the destination waits for its challenge file's path,
	// where another destination's challenge is in flight (one file per
	// path, so one challenge at a time).
	WaitingPath State = "waiting_path"
	Challenging State = "challenging"
	Polling     State = "polling"
	Validating  State = "validating"
	CreatingJob State = "creating_job"
	// UpdatingJob: the job of a migration is read and updated (or copied)
	// once its new destination validated.
	UpdatingJob State = "updating_job"
	// Watching: the destination's job exists and is enabled; the worker
	// reads its health until it pushes, fails or the deadline passes.
	Watching State = "watching"
)

// States lists every state of a destination in flow order, for status
// output and counters.
func States() []State {
	return []State{Queued, WaitingPath, Challenging, Polling, Validating, CreatingJob, UpdatingJob, Watching, AwaitingToken, Validated, Failed, NotRequired,
		Migrated, Copied, Unchanged, Flowing, JobFailing, NoDataYet}
}

// TerminalStates lists the states that end a destination's onboarding.
func TerminalStates() []State {
	return []State{Validated, Failed, NotRequired, Migrated, Copied, Unchanged, Flowing, JobFailing, NoDataYet}
}

// TokenStates are the states of the stages that get a destination's token
// accepted: waiting for its path, challenge, poll and validation.
func TokenStates() []State { return []State{WaitingPath, Challenging, Polling, Validating} }

// JobStates are the states a destination reaches once Cloudflare accepted
// its token: its job is created, updated or watched. A task of a token
// stage of the same challenge generation that runs then (a poll scheduled
// to take over from inline polls that found the file) is superseded.
func JobStates() []State { return []State{CreatingJob, UpdatingJob, Watching} }

// Terminal reports whether s ends a destination's onboarding.
func (s State) Terminal() bool {
	switch s {
	case Validated, Failed, NotRequired, Migrated, Copied, Unchanged, Flowing, JobFailing, NoDataYet:
		return true
	}
	return false
}

// Failing reports whether s is a failure: Failed, or a job that fails to
// push.
func (s State) Failing() bool { return s == Failed || s == JobFailing }

// Stage is a step that calls out and is counted in Attempts: each run of
// it adds one to its counter. The values are the JSON names of the
// Attempts fields.
type Stage string

// The stages, in flow order.
const (
	StageChallenge Stage = "challenge"
	StagePoll      Stage = "poll"
	StageValidate  Stage = "validate"
	StageJob       Stage = "job"
)

// Stages lists every stage in flow order.
func Stages() []Stage { return []Stage{StageChallenge, StagePoll, StageValidate, StageJob} }

// Event is one JSON entry of the logpush:events stream: the outcome of one
// destination. Destination is always the redacted conf; DestinationID is
// what identifies the destination.
type Event struct {
	Event   State  `json:"event"`
	BatchID string `json:"batch_id,omitempty"`
	// DestinationID identifies the destination across batches and runs:
	// 32 hex characters of a SHA-256 of its scope, id, full
	// destination_conf and, with a job to create, the job's dataset
	// (tasks.Dest.Hash; its key in the ledger). Two rows that differ only
	// in a secret of the conf, or only in the dataset, are two
	// destinations; the hash carries no secret. Join results on it, not on
	// Destination, which redaction can make equal for two destinations.
	// Empty on fleet events.
	DestinationID   string    `json:"destination_id,omitempty"`
	Scope           string    `json:"scope,omitempty"`
	ScopeID         string    `json:"scope_id,omitempty"`
	Destination     string    `json:"destination,omitempty"`
	DestinationType string    `json:"destination_type,omitempty"`
	Filename        string    `json:"filename,omitempty"`
	Attempts        Attempts  `json:"attempts"`
	DurationSeconds float64   `json:"duration_seconds"`
	Error           *Error    `json:"error,omitempty"`
	Time            time.Time `json:"time"`
	// Line is the line of the input file the destination came from, so a
	// result can be joined back to the input.
	Line int `json:"line,omitempty"`
	// JobID is the Logpush job of the destination (enqueue --create-job);
	// JobExisted says it was there already and was not created again.
	JobID      int  `json:"job_id,omitempty"`
	JobExisted bool `json:"job_existed,omitempty"`
	// NewJobID is the second job a copied job got (migrate --copy).
	NewJobID int `json:"new_job_id,omitempty"`
	// Credential names the credential of a credential_paused or
	// credential_resumed event ("(default)": the environment's); a name,
	// never a secret.
	Credential string `json:"credential,omitempty"`
}

// Attempts counts the runs of each stage for one destination.
type Attempts struct {
	Challenge int `json:"challenge"`
	Poll      int `json:"poll"`
	Validate  int `json:"validate"`
	Job       int `json:"job,omitempty"`
}

// Error says why a destination failed. Message is redacted.
type Error struct {
	// HTTPStatus is Cloudflare's HTTP status, 0 when the failure was not an API call.
	HTTPStatus int `json:"http_status,omitempty"`
	// StorageStatus is the HTTP status of the destination's storage when
	// reading the challenge file failed (403 for a denied read).
	StorageStatus int    `json:"storage_status,omitempty"`
	Codes         []int  `json:"codes,omitempty"`
	Message       string `json:"message"`
	// Worker names the worker process whose call failed, as host:pid.
	Worker string `json:"worker,omitempty"`
}
