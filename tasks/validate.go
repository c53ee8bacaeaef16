package tasks

import (
	"github.com/hibiken/asynq"
)

// ValidatePayload submits the token read from the challenge file.
type ValidatePayload struct {
	Dest
	Filename string `json:"filename"`
	// Token is the ownership challenge token. It is a secret: never logged.
	Token string `json:"ownership_challenge"`
}

// NewValidateTask returns the logpush:validate task.
func NewValidateTask(p ValidatePayload, o Options) (*asynq.Task, error) {
	return newTask(TypeValidate, p, p.Dest, o, 0)
}
