package worker

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
)

func TestOnWarmStacksPassesResultsAndPanicsOn(t *testing.T) {
	var logged bytes.Buffer
	stacks := newStacks(2, slog.New(slog.NewTextHandler(&logged, nil)))
	defer stacks.Close()
	errWant := errors.New("handler error")
	h := onWarmStacks(stacks)(asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		if t.Type() == "panics" {
			handlerThatPanics()
		}
		return errWant
	}))
	if err := h.ProcessTask(context.Background(), asynq.NewTask("returns", nil)); err != errWant {
		t.Fatalf("ProcessTask returned %v, want the handler's error", err)
	}
	got := func() (r any) {
		defer func() { r = recover() }()
		_ = h.ProcessTask(context.Background(), asynq.NewTask("panics", nil))
		return nil
	}()
	if got != "handler panic" {
		t.Fatalf("asynq's recover would see %v, want the handler's panic value", got)
	}
	if !strings.Contains(logged.String(), "task handler panicked") || !strings.Contains(logged.String(), "handlerThatPanics") {
		t.Fatalf("the log does not show where the handler panicked:\n%s", logged.String())
	}
}

func handlerThatPanics() { panic("handler panic") }
