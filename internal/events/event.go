package events

import "time"

// Event names. validated, failed and not_required are terminal;
// awaiting_token waits for an operator to submit the token.
const (
	Validated     = "validated"
	Failed        = "failed"
	NotRequired   = "not_required"
	AwaitingToken = "awaiting_token"
)

// Fleet events concern the queue, not one destination: they carry no
// destination fields, and Error.Message says why.
const (
	QueuePaused  = "queue_paused"
	QueueResumed = "queue_resumed"
)

// Stages a destination passes through before its outcome. They are states
// of the destination hash and count keys of the batch, never events.
const (
	Queued = "queued"
	// WaitingPath: the destination waits for its challenge file's path,
	// where another destination's challenge is in flight (one file per
	// path, so one challenge at a time).
	WaitingPath = "waiting_path"
	Challenging = "challenging"
	Polling     = "polling"
	Validating  = "validating"
	CreatingJob = "creating_job"
)

// States lists every state in flow order, for status output.
var States = []string{Queued, WaitingPath, Challenging, Polling, Validating, CreatingJob, AwaitingToken, Validated, Failed, NotRequired}

// Terminal reports whether state ends a destination's onboarding.
func Terminal(state string) bool {
	return state == Validated || state == Failed || state == NotRequired
}

// Event is one JSON entry of the logpush:events stream: the outcome of one
// destination. Destination is always the redacted conf.
type Event struct {
	Event           string    `json:"event"`
	BatchID         string    `json:"batch_id,omitempty"`
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
}
