package worker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/logpush-onboard/logpush-onboard/internal/keys"
	"github.com/redis/go-redis/v9"
)

// CredentialPause is one paused credential.
type CredentialPause struct {
	Name, Reason string
	// Since is when the pause began; zero: unknown.
	Since time.Time
}

// PauseState is what holds the fleet's rows for an operator.
type PauseState struct {
	// Queue says a logpush queue is paused; QueueSince (zero: unknown)
	// and QueueReason say when and why.
	Queue       bool
	QueueSince  time.Time
	QueueReason string
	// Credentials are the paused credentials, by name.
	Credentials []CredentialPause
}

// Paused reports whether anything holds rows.
func (p PauseState) Paused() bool { return p.Queue || len(p.Credentials) > 0 }

// String says what is paused, since when, and what to do: one line, ""
// when nothing is.
func (p PauseState) String() string {
	since := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return " since " + t.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	var parts []string
	if p.Queue {
		s := "paused (queue)" + since(p.QueueSince)
		if p.QueueReason != "" {
			s += ": " + p.QueueReason
		}
		parts = append(parts, s)
	}
	for _, c := range p.Credentials {
		parts = append(parts, "paused (credential "+c.Name+")"+since(c.Since)+": "+c.Reason)
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, "; ") + " -- run 'logpush-onboard resume' after fixing the cause"
}

// Pauses reads what is paused on rdb.
func Pauses(ctx context.Context, rdb redis.UniversalClient) (PauseState, error) {
	var p PauseState
	paused, err := QueuePaused(asynq.NewInspectorFromRedisClient(rdb))
	if err != nil {
		return p, fmt.Errorf("read queue pause: %w", err)
	}
	if paused {
		p.Queue = true
		m, err := rdb.HGetAll(ctx, keys.QueuePause).Result()
		if err != nil {
			return p, fmt.Errorf("read queue pause: %w", err)
		}
		p.QueueSince, _ = time.Parse(time.RFC3339, m["since"])
		p.QueueReason = m["reason"]
	}
	creds, err := PausedCredentials(ctx, rdb)
	if err != nil {
		return p, err
	}
	since, err := rdb.HGetAll(ctx, keys.PausedCredentialsSince).Result()
	if err != nil {
		return p, fmt.Errorf("read credential pauses: %w", err)
	}
	for name, reason := range creds {
		t, _ := time.Parse(time.RFC3339, since[name])
		p.Credentials = append(p.Credentials, CredentialPause{Name: name, Reason: reason, Since: t})
	}
	slices.SortFunc(p.Credentials, func(a, b CredentialPause) int { return strings.Compare(a.Name, b.Name) })
	return p, nil
}

// notePause records when and why the queue paused (the first pause of an
// incident keeps its time).
func notePause(ctx context.Context, rdb redis.UniversalClient, reason string, now time.Time) error {
	pipe := rdb.TxPipeline()
	pipe.HSetNX(ctx, keys.QueuePause, "since", now.UTC().Format(time.RFC3339))
	pipe.HSet(ctx, keys.QueuePause, "reason", reason)
	_, err := pipe.Exec(ctx)
	return err
}

// ForgetQueuePause removes the record of the queue's pause, as resume does.
func ForgetQueuePause(ctx context.Context, rdb redis.UniversalClient) error {
	return rdb.Del(ctx, keys.QueuePause).Err()
}
