package ledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/luascript"
)

// TestReopen: retry reopens a failed destination into queued for its new
// round, forgetting what the failed round recorded, and moves the batch's
// counters with it; anything else is left alone.
func TestReopen(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, b testBundle) {
		ctx := context.Background()
		k := ledger.Key{Batch: "b1", Hash: "h1"}
		if _, err := register(ctx, b.store, k, ledger.Meta{Line: 4, Type: "s3", EnqueuedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		fields := append(ledger.ErrorFields(&events.Error{HTTPStatus: 400, Codes: []int{1004}, Message: "nope"}),
			"filename", "f.txt", "requested_at", time.Now().UnixNano())
		if _, err := b.store.Transition(ctx, k, events.Failed, &events.Event{Event: events.Failed}, "", fields...); err != nil {
			t.Fatal(err)
		}
		counts(t, b, "b1", 1, map[events.State]int64{events.Failed: 1})

		ok, err := b.store.Reopen(ctx, k, 1)
		if err != nil || !ok {
			t.Fatalf("Reopen failed = %v, %v; want true", ok, err)
		}
		st, err := b.store.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != events.Queued || st.Round != 1 || st.Gen != 0 || st.Error != nil || st.Filename != "" ||
			!st.RequestedAt.IsZero() || st.Line != 4 || st.Type != "s3" {
			t.Fatalf("reopened = %+v; want queued in round 1, no error or challenge file, line and type kept", st)
		}
		counts(t, b, "b1", 1, map[events.State]int64{events.Queued: 1})
		if ttl, _ := b.rdb.TTL(ctx, "logpush:dest:{b1}:h1").Result(); ttl >= 0 {
			t.Fatalf("reopened destination TTL = %v; want none (it is in flight again)", ttl)
		}

		// Reopened already (it is in the new round, queued): a second
		// Reopen, say a retry run twice, changes nothing.
		if ok, err := b.store.Reopen(ctx, k, 1); err != nil || ok {
			t.Fatalf("Reopen again = %v, %v; want false", ok, err)
		}
		counts(t, b, "b1", 1, map[events.State]int64{events.Queued: 1})

		// Not failed: in flight or another outcome.
		for i, state := range []events.State{events.Polling, events.Validated, events.NotRequired} {
			k := ledger.Key{Batch: "b2", Hash: fmt.Sprint(i)}
			if _, err := b.store.Transition(ctx, k, state, nil, ""); err != nil {
				t.Fatal(err)
			}
			if ok, err := b.store.Reopen(ctx, k, 1); err != nil || ok {
				t.Fatalf("Reopen %s = %v, %v; want false", state, ok, err)
			}
			if st, err := b.store.Get(ctx, k); err != nil || st.State != state || st.Round != 0 {
				t.Fatalf("%s after Reopen = %+v, %v; want unchanged", state, st, err)
			}
		}
		counts(t, b, "b2", 3, map[events.State]int64{events.Polling: 1, events.Validated: 1, events.NotRequired: 1})

		// Unknown: false, and nothing is created.
		unknown := ledger.Key{Batch: "b1", Hash: "nope"}
		if ok, err := b.store.Reopen(ctx, unknown, 1); err != nil || ok {
			t.Fatalf("Reopen unknown = %v, %v; want false", ok, err)
		}
		if _, err := b.store.Get(ctx, unknown); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("Get unknown after Reopen = %v; want ErrNotFound", err)
		}
		counts(t, b, "b1", 1, map[events.State]int64{events.Queued: 1})
	})
}

// TestScriptNamesFollowEvents fails when a state or stage name the Lua
// scripts use drifts from package events: every stage's counter is the
// hash field att_<stage> and reads back into Attempts under the stage's
// name, every state counts in the batch under its own name, and exactly
// events.TerminalStates() end a destination in every script.
func TestScriptNamesFollowEvents(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, b testBundle) {
		ctx := context.Background()

		// Attempts: one Enter per stage (the first registers on the way).
		k := ledger.Key{Batch: "att", Hash: "h"}
		var st ledger.DestState
		for _, stage := range events.Stages() {
			var err error
			if st, err = b.store.Enter(ctx, k, 0, events.Challenging, 0, 0, stage); err != nil {
				t.Fatalf("Enter %s: %v", stage, err)
			}
		}
		raw, err := b.rdb.HGetAll(ctx, "logpush:dest:{att}:h").Result()
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{}
		for _, stage := range events.Stages() {
			want[string(stage)] = 1
			if raw["att_"+string(stage)] != "1" {
				t.Errorf("hash field att_%s = %q; want 1 (hash %v)", stage, raw["att_"+string(stage)], raw)
			}
		}
		for f := range raw {
			if s, ok := strings.CutPrefix(f, "att_"); ok && want[s] == 0 {
				t.Errorf("hash field %s names no stage of events.Stages()", f)
			}
		}
		for name, a := range map[string]events.Attempts{"Enter": st.Attempts, "Get": get(t, b, k).Attempts} {
			if got := attemptsByName(t, a); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: Attempts by stage = %v; want %v", name, got, want)
			}
		}

		// States: one destination in each, registered on the way by
		// Transition, then checked against every script that tells a
		// terminal destination from one in flight.
		terminal := map[events.State]bool{}
		for _, s := range events.TerminalStates() {
			terminal[s] = true
		}
		wantCounts := map[events.State]int64{}
		for i, state := range events.States() {
			if state.Terminal() != terminal[state] {
				t.Errorf("%s: Terminal() = %v, in TerminalStates() = %v", state, state.Terminal(), terminal[state])
			}
			k := ledger.Key{Batch: "states", Hash: fmt.Sprint(i)}
			if _, err := b.store.Transition(ctx, k, state, nil, ""); err != nil {
				t.Fatal(err)
			}
			wantCounts[state] = 1
			if err := b.store.NoteError(ctx, k, ledger.LastError{State: state, Message: "m"}); err != nil {
				t.Fatal(err)
			}
			ttl, _ := b.rdb.TTL(ctx, "logpush:dest:{states}:"+k.Hash).Result()
			if got := ttl > 0; got != terminal[state] {
				t.Errorf("%s: TTL %v; want one only for a terminal state", state, ttl)
			}
			_, err := b.store.Enter(ctx, k, 0, state, 0, 0, "")
			if got := errors.Is(err, ledger.ErrSuperseded); got != terminal[state] {
				t.Errorf("%s: Enter err = %v; want ErrSuperseded only for a terminal state", state, err)
			}
		}
		counts(t, b, "states", int64(len(events.States())), wantCounts)
		fields, err := b.rdb.HKeys(ctx, "logpush:batch:{states}").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fields {
			if s, ok := strings.CutPrefix(f, "state:"); ok && wantCounts[events.State(s)] == 0 {
				t.Errorf("batch counter %s names no state of events.States()", f)
			}
		}
		noted, err := b.store.LastErrors(ctx, "states")
		if err != nil {
			t.Fatal(err)
		}
		for i, state := range events.States() {
			if _, ok := noted[fmt.Sprint(i)]; ok == terminal[state] {
				t.Errorf("%s: last error kept = %v; want one only in flight", state, ok)
			}
			k := ledger.Key{Batch: "states", Hash: fmt.Sprint(i)}
			next := events.Queued
			if state == events.Queued {
				next = events.Polling
			}
			if changed, err := b.store.Transition(ctx, k, next, nil, ""); err != nil || changed == terminal[state] {
				t.Errorf("%s: Transition to %s changed = %v, %v; want a change only in flight", state, next, changed, err)
			}
		}
	})
}

func get(t *testing.T, b testBundle, k ledger.Key) ledger.DestState {
	t.Helper()
	st, err := b.store.Get(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// attemptsByName is a by stage name: the Attempts' JSON names are the
// stages' values (events.Stage), which gives the test its own way from a
// stage to its counter.
func attemptsByName(t *testing.T, a events.Attempts) map[string]int {
	t.Helper()
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// counts checks a batch's total and per-state counters; states not in want
// must be 0.
func counts(t *testing.T, b testBundle, batch string, total int64, want map[events.State]int64) {
	t.Helper()
	bs, err := b.store.Batch(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if bs.Total != total {
		t.Errorf("batch %s total = %d; want %d", batch, bs.Total, total)
	}
	for _, s := range events.States() {
		if bs.Counts[s] != want[s] {
			t.Errorf("batch %s %s = %d; want %d (counts %v)", batch, s, bs.Counts[s], want[s], bs.Counts)
		}
	}
}

// TestTransitionThen: the script after a transition runs in the same
// script run, once the transition is written (it reads the new state), and
// its result comes back; a transition that fails runs nothing after it.
func TestTransitionThen(t *testing.T) {
	t.Parallel()
	both(t, func(t *testing.T, b testBundle) {
		ctx := context.Background()
		k := ledger.Key{Batch: "b1", Hash: "h1"}
		if _, err := register(ctx, b.store, k, ledger.Meta{Line: 2, Type: "s3", EnqueuedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		after := luascript.New(`redis.call('SET', KEYS[2], ARGV[1]) return redis.call('HGET', KEYS[1], 'state')`)
		then := luascript.Call{Script: after, Keys: []string{"logpush:dest:{b1}:h1", "then"}, Args: []any{"ran"}}
		changed, res, err := b.store.TransitionThen(ctx, k, events.Validated, &events.Event{Event: events.Validated}, events.StageValidate, then)
		if err != nil || !changed || res != string(events.Validated) {
			t.Fatalf("TransitionThen = %v, %v, %v; want changed and the state the script after it read, validated", changed, res, err)
		}
		counts(t, b, "b1", 1, map[events.State]int64{events.Validated: 1})
		// Finished: the transition changes nothing, the script after it still runs.
		b.rdb.Del(ctx, "then")
		if changed, res, err := b.store.TransitionThen(ctx, k, events.Failed, nil, "", then); err != nil || changed || res != string(events.Validated) {
			t.Fatalf("TransitionThen of a finished destination = %v, %v, %v; want unchanged, validated", changed, res, err)
		}
		if v := b.rdb.Get(ctx, "then").Val(); v != "ran" {
			t.Fatalf("the script after the transition wrote %q, want ran", v)
		}
		// A transition that fails (an odd field list fails before the
		// script; a wrong type in it fails inside): nothing after it.
		b.rdb.Del(ctx, "then")
		b.rdb.Set(ctx, "logpush:dest:{b1}:h2", "not a hash", 0)
		if _, _, err := b.store.TransitionThen(ctx, ledger.Key{Batch: "b1", Hash: "h2"}, events.Validated, nil, "", then); err == nil {
			t.Fatal("a transition on a key of the wrong type did not fail")
		}
		if n := b.rdb.Exists(ctx, "then").Val(); n != 0 {
			t.Fatal("the script after a failed transition ran")
		}
	})
}
