package tasks

import (
	"time"

	"github.com/hibiken/asynq"
)

// TypeHealth reads the health of a destination's job until it pushes, fails
// or the health deadline passes (enqueue --create-job, with the worker's
// --health-deadline above 0).
const TypeHealth = "logpush:health"

// HealthPayload asks the worker to read the health of the destination's
// job once: GET .../logpush/jobs/{job_id}.
type HealthPayload struct {
	Dest
	// JobID is the destination's Logpush job.
	JobID int `json:"job_id"`
	// JobExisted says the job was there before this batch (for the event).
	JobExisted bool `json:"job_existed,omitempty"`
	// Filename is the challenge file's name, for the event ("" without a
	// challenge).
	Filename string `json:"filename,omitempty"`
	// Deadline ends the watch: a job that pushed nothing by then ends
	// no_data_yet.
	Deadline time.Time `json:"deadline"`
}

// NewHealthTask returns the logpush:health task, first run after delay.
func NewHealthTask(p HealthPayload, o Options, delay time.Duration) (*asynq.Task, error) {
	return newTask(TypeHealth, p, p.Dest, o, delay)
}
