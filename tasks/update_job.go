package tasks

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
)

// TypeUpdateJob moves an existing Logpush job to its new destination_conf
// once the new conf validated (the migrate command): read the job, PUT it
// with the new conf, the token and every other setting as read; or, with
// Copy, create a second job like it on the new conf.
const TypeUpdateJob = "logpush:update_job"

// MigrateColumns are the input columns (CSV) or keys (JSONL) of the
// migrate command's rows besides zone_id, account_id and destination_conf
// (the new conf): the job's id, and optionally its dataset and the digest
// of the conf it had when selected (ConfDigest), which the job stage
// checks before changing the job.
var MigrateColumns = []string{"job_id", "dataset", "from"}

// JobUpdate is the existing job a destination is for. It holds no secret:
// From is a digest.
type JobUpdate struct {
	// ID is the job's id.
	ID int `json:"id"`
	// Dataset, when set, is the job's dataset as selected: a job found
	// with another is not touched.
	Dataset string `json:"dataset,omitempty"`
	// From, when set, is ConfDigest of the job's conf as selected: a job
	// found on another conf (changed since) is not touched.
	From string `json:"from,omitempty"`
	// Copy creates a second job on the new conf, with the job's settings,
	// instead of moving the job.
	Copy bool `json:"copy,omitempty"`
}

// ConfDigest identifies a destination_conf without holding it: the hex
// SHA-256 of the conf, first 16 bytes.
func ConfDigest(conf string) string {
	h := sha256.Sum256([]byte(conf))
	return hex.EncodeToString(h[:16])
}

// ParseJobUpdate reads a migrate row's columns. Errors are *FieldError
// naming the column.
func ParseJobUpdate(extra map[string]string) (*JobUpdate, error) {
	v := extra["job_id"]
	id, err := strconv.Atoi(v)
	if err != nil || id < 1 || strconv.Itoa(id) != v {
		return nil, &FieldError{Field: "job_id", Msg: "want the job's id, a whole number from 1"}
	}
	u := &JobUpdate{ID: id, Dataset: extra["dataset"], From: extra["from"]}
	var fe *cloudflare.FieldError
	if errors.As(cloudflare.CheckDataset(u.Dataset), &fe) {
		return nil, &FieldError{Field: fe.Field, Msg: fe.Msg}
	}
	if u.From != "" && (len(u.From) != 32 || !isHex(u.From)) {
		return nil, &FieldError{Field: "from", Msg: "want 32 hex characters (tasks.ConfDigest of the job's conf)"}
	}
	return u, nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// UpdateJobPayload asks for the update (or copy) of a job whose new conf
// validated, or needs no challenge.
type UpdateJobPayload struct {
	Dest
	Filename string `json:"filename"`
	// Token is the validated ownership challenge of the new conf; "" for a
	// conf that needs none. It is a secret.
	Token string `json:"ownership_challenge"`
}

// NewUpdateJobTask returns the logpush:update_job task.
func NewUpdateJobTask(p UpdateJobPayload, o Options) (*asynq.Task, error) {
	return newTask(TypeUpdateJob, p, p.Dest, o, 0)
}
