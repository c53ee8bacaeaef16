package tasks

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// Task type names and the queues. They are wire names: users build
// dashboards and scripts on them, so they never change.
//
// Challenges, the start of a destination, go to Queue; every later stage
// of a destination already started (its polls, its validation, its job) to
// FollowUpQueue, which workers serve first (strict priority). One FIFO for
// both made a due poll wait behind every challenge queued before it: with
// many credentials, each pacer's lead of challenges adds up to hundreds,
// waiting for their own budgets, and a tenant with five rows finished at
// 1.5 times the bound of its own limit.
const (
	TypeChallenge = "logpush:challenge"
	TypePoll      = "logpush:poll"
	TypeValidate  = "logpush:validate"
	Queue         = "logpush"
	FollowUpQueue = "logpush_followup"
)

// Types are the task types of the pipeline, one per stage, in the order
// a destination goes through them.
func Types() []string {
	return []string{TypeChallenge, TypePoll, TypeValidate, TypeCreateJob, TypeUpdateJob, TypeHealth}
}

// Queues are the workers' queues, served in this order: FollowUpQueue
// first.
func Queues() []string { return []string{FollowUpQueue, Queue} }

// QueueOf is the queue of tasks of type typ: Queue for a challenge,
// FollowUpQueue for the rest.
func QueueOf(typ string) string {
	if typ == TypeChallenge {
		return Queue
	}
	return FollowUpQueue
}

// Dest identifies one destination of one batch, as every payload carries it.
// DestinationConf is the raw conf, sent byte-identical to Cloudflare.
type Dest struct {
	BatchID         string    `json:"batch_id"`
	Scope           string    `json:"scope"`
	ScopeID         string    `json:"scope_id"`
	DestinationConf string    `json:"destination_conf"`
	EnqueuedAt      time.Time `json:"enqueued_at"`
	// Line is the input line, which orders destinations that wait for one
	// challenge location.
	Line int `json:"line,omitempty"`
	// Gen is the challenge generation: 0 for the first challenge, plus one for
	// each fresh challenge requested after a stale token or a poll deadline.
	Gen int `json:"gen"`
	// Round counts operator retries of a failed destination (retry
	// --batch): each round starts again from a fresh challenge.
	Round int `json:"round,omitempty"`
	// Expired is set once a poll deadline passed in this round: the next
	// deadline fails the destination instead of asking again.
	Expired bool `json:"expired,omitempty"`
	// ReadAs, when set, is the identity that reads the challenge file.
	ReadAs *ReadAs `json:"read_as,omitempty"`
	// Job, when set, is created after validation (enqueue --create-job).
	Job *JobSpec `json:"job,omitempty"`
	// Update, when set, is the existing job that moves to (or is copied
	// onto) DestinationConf after validation (migrate).
	Update *JobUpdate `json:"update,omitempty"`
	// Credential names the Cloudflare credential of the destination's API
	// calls, from the credentials file every worker reads; "" for the
	// default credential. It is a name, never a token. It is no part of
	// Hash: one destination named under two credentials is still one
	// destination (one challenge file, one job per dataset), so the later
	// row is a duplicate, and the batch id of a file does not change when
	// a credential column is added to it.
	Credential string `json:"credential,omitempty"`
}

// Hash identifies a destination independently of the batch: 32 hex
// characters of SHA-256 of scope, id and conf, and, with a job to create,
// its dataset: a Logpush job is (scope, id, dataset, destination_conf), and
// several jobs may push to one destination. It carries no secret.
func (d Dest) Hash() string {
	var dataset string
	if d.Job != nil {
		dataset = d.Job.Dataset
	}
	if d.Update != nil {
		// One destination per job moved: two jobs of a zone may move to
		// one conf.
		dataset = "job:" + strconv.Itoa(d.Update.ID)
		if d.Update.Copy {
			dataset += ":copy"
		}
	}
	return DestHash(d.Scope, d.ScopeID, d.DestinationConf, dataset)
}

// DestHash is Dest.Hash for callers that have the parts; dataset is "" for
// a destination without a job to create.
func DestHash(scope, scopeID, conf, dataset string) string {
	h := sha256.New()
	h.Write([]byte(scope))
	h.Write([]byte{0})
	h.Write([]byte(scopeID))
	h.Write([]byte{0})
	h.Write([]byte(conf))
	if dataset != "" {
		h.Write([]byte{0})
		h.Write([]byte(dataset))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// idPrefix is the TaskID prefix of each task type: a TaskID names its stage.
var idPrefix = map[string]string{
	TypeChallenge: "ch", TypePoll: "po", TypeValidate: "va",
	TypeCreateJob: "jo", TypeUpdateJob: "uj", TypeHealth: "he",
}

// taskID is the asynq TaskID of a task of type typ of one destination in
// one batch and generation. Deterministic IDs make enqueueing idempotent:
// re-running a file, or a retried handler enqueueing its next stage twice,
// adds nothing.
func taskID(typ string, d Dest) string {
	return taskIDOf(typ, d.BatchID, d.Hash(), d.Gen, d.Round)
}

func taskIDOf(typ, batch, hash string, gen, round int) string {
	id := idPrefix[typ] + ":" + batch + ":" + hash + ":" + strconv.Itoa(gen)
	if round > 0 {
		id += ":r" + strconv.Itoa(round)
	}
	return id
}

// QueuedID is a task's queue and TaskID: where asynq keeps it.
type QueuedID struct{ Queue, ID string }

// TaskIDsOf are the tasks, one per type, the destination hash of batch has
// at generation gen and retry round, as asynq holds them while they live.
func TaskIDsOf(batch, hash string, gen, round int) []QueuedID {
	ids := make([]QueuedID, 0, len(idPrefix))
	for _, typ := range Types() {
		ids = append(ids, QueuedID{QueueOf(typ), taskIDOf(typ, batch, hash, gen, round)})
	}
	return ids
}

// ChallengeTaskID is the TaskID of d's challenge task, to wake it.
func ChallengeTaskID(d Dest) string { return taskID(TypeChallenge, d) }

// PollTaskID is the asynq task ID of d's poll task: the worker wakes a
// scheduled poll by it.
func PollTaskID(d Dest) string { return taskID(TypePoll, d) }
