package tasks

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// Defaults of Options.
const (
	DefaultMaxRetry = 12
	DefaultTimeout  = 2 * time.Minute
)

// TimeoutGrace is added to a task's Timeout for asynq's own deadline. The
// worker ends the handler's run at the Timeout and, on the task's last
// attempt, records the destination's failure within the grace and returns:
// asynq v0.26 archives a task whose deadline passes on its last attempt,
// payload (the conf's secrets) included, whatever its handler returns
// after; a handler's nil before it deletes the task (or, with a Retention,
// keeps it that long as completed).
const TimeoutGrace = 10 * time.Second

// Options are the per-task settings shared by every task type (challenge,
// poll, validate, create_job).
type Options struct {
	// MaxRetry is how many times a transient failure is retried (snoozes of a
	// poll do not count). Default DefaultMaxRetry.
	MaxRetry int
	// Timeout bounds one run of a handler. Default DefaultTimeout. asynq's
	// deadline for the run is TimeoutGrace later.
	Timeout time.Duration
	// Retention keeps a finished task (and so its TaskID) this long. Default
	// 0: asynq deletes a task when it finishes. Duplicates are kept out by
	// the destination state, not by task ids (a stage that runs again finds
	// its destination finished or moved on). Keeping tasks costs Redis
	// memory, and keeps their payloads there for that long: the
	// destination_conf with its secrets (SAS, keys), the challenge token of
	// a validate task and the job spec of a create_job task.
	Retention time.Duration
}

// WithDefaults fills unset fields.
func (o Options) WithDefaults() Options {
	if o.MaxRetry <= 0 {
		o.MaxRetry = DefaultMaxRetry
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return o
}

func newTask(typ string, payload any, d Dest, o Options, delay time.Duration) (*asynq.Task, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode %s payload: %w", typ, err)
	}
	o = o.WithDefaults()
	opts := []asynq.Option{
		asynq.Queue(QueueOf(typ)),
		asynq.TaskID(taskID(typ, d)),
		asynq.MaxRetry(o.MaxRetry),
		asynq.Timeout(o.Timeout + TimeoutGrace),
		asynq.Retention(max(o.Retention, 0)),
	}
	if delay > 0 {
		opts = append(opts, asynq.ProcessIn(delay))
	}
	return asynq.NewTask(typ, b, opts...), nil
}

// Decode unmarshals a task payload into v, strictly: an undecodable payload
// can never succeed, so callers treat the error as permanent. The error
// quotes no byte of the payload, which holds the conf and its secrets:
// encoding/json's own texts quote a syntax error's character and a number
// that does not fit its field, time.Time's a string that does not parse.
func Decode(t *asynq.Task, v any) error {
	if err := json.Unmarshal(t.Payload(), v); err != nil {
		return fmt.Errorf("decode %s payload of %d bytes: %s", t.Type(), len(t.Payload()), undecodable(err))
	}
	return nil
}

// undecodable describes a json.Unmarshal error by what the payload's
// author can act on (where, and which of our fields and types), never by
// the payload's own bytes.
func undecodable(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("not JSON (syntax error at byte %d)", se.Offset)
	case errors.As(err, &te):
		// Value is a JSON kind ("string", "number"), and for a number
		// that does not fit, the number; Struct and Field are our types'
		// names.
		kind, _, _ := strings.Cut(te.Value, " ")
		where := te.Field
		if te.Struct != "" {
			where = te.Struct + "." + te.Field
		}
		return fmt.Sprintf("a JSON %s for %s of type %s at byte %d", kind, cmp.Or(where, "the payload"), te.Type, te.Offset)
	default:
		// A field's own UnmarshalJSON (time.Time's quotes its input).
		return fmt.Sprintf("a field's value is refused (%T)", err)
	}
}
