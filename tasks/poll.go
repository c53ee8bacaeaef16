package tasks

import (
	"time"

	"github.com/hibiken/asynq"
)

// PollPayload asks the worker to look for the challenge file once.
type PollPayload struct {
	Dest
	// Filename is result.filename of the challenge answer.
	Filename string `json:"filename"`
	// RequestedAt is when the challenge request was sent: only a file written
	// after it (less the clock-skew allowance) belongs to this challenge.
	RequestedAt time.Time `json:"requested_at"`
	// Deadline ends polling: past it the destination gets one fresh
	// challenge, then fails.
	Deadline time.Time `json:"deadline"`
	// Lease is the challenge location this destination holds (a
	// location.ID), released with its outcome.
	Lease string `json:"lease,omitempty"`
	// Before is what the challenge file's location held just before the
	// challenge: the hex SHA-256 of the file, or "-" for none. A file with
	// this digest is not the new one, however recent it looks.
	Before string `json:"before,omitempty"`
	// Looks counts the looks for the file its challenge task made itself
	// (0 or 1): the poll attempts the outcome counts besides the poll
	// task's runs.
	Looks int `json:"looks,omitempty"`
	// Contended says other destinations waited for the lease when the
	// challenge was made: its poll starts out knowing the path is busy,
	// before a renewal tells it again.
	Contended bool `json:"contended,omitempty"`
}

// NewPollTask returns the logpush:poll task, first run after delay.
func NewPollTask(p PollPayload, o Options, delay time.Duration) (*asynq.Task, error) {
	return newTask(TypePoll, p, p.Dest, o, delay)
}
