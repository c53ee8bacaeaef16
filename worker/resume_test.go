package worker_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/location"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// fakeLog is a ChallengeLog in memory: prior are an earlier run's last
// records by location, recs this run's.
type fakeLog struct {
	mu    sync.Mutex
	prior map[string]ledger.Challenge
	recs  []ledger.Challenge
	done  map[string]bool // destinations with an outcome
}

func (f *fakeLog) Record(_ context.Context, c ledger.Challenge) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs = append(f.recs, c)
	delete(f.prior, c.Location)
	return nil
}

func (f *fakeLog) Prior(dest, loc string) (ledger.Challenge, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.prior[loc]
	return c, ok && c.Dest == dest
}

func (f *fakeLog) Pending(loc string) (ledger.Challenge, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.prior[loc]
	return c, ok && !f.done[c.Dest]
}

func (f *fakeLog) records() []ledger.Challenge {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ledger.Challenge(nil), f.recs...)
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// setupResume is setupShared with a ChallengeLog whose earlier run
// challenged a on the shared path when it held before, a minute ago.
func setupResume(t *testing.T, before string) (*sharedBundle, *fakeLog) {
	return setupResumeAgo(t, before, worker.EarlierWriteWait)
}

// setupResumeAgo is setupResume with the earlier challenge ago.
func setupResumeAgo(t *testing.T, before string, ago time.Duration) (*sharedBundle, *fakeLog) {
	t.Helper()
	sb := setupShared(t, worker.HandlerConfig{})
	log := &fakeLog{prior: map[string]ledger.Challenge{string(sharedLoc): {Dest: sb.a.Hash(), Location: string(sharedLoc),
		Filename: "logs/ownership-challenge.txt", Time: sb.clock.Now().Add(-ago), Before: before}}}
	sb.h = worker.NewHandlers(worker.Deps{API: sb.api, Reader: sb.rd, Store: sb.store, Enqueue: sb.enq,
		Metrics: newMetrics(t), Leases: sb.leases, Waker: sb.waker, Now: sb.clock.Now, Challenges: log},
		worker.HandlerConfig{})
	return sb, log
}

const sharedFile = "bucket/logs/ownership-challenge.txt" // where a challenge's token is read before and after

// TestResumeValidatesTheEarlierRunsToken: a destination challenged by a
// killed run whose file holds a new write since the recorded fingerprint is
// validated with that token, without a challenge.
func TestResumeValidatesTheEarlierRunsToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb, log := setupResume(t, location.Absent)
	sb.api.token = "opaque-token-of-a"
	sb.rd.put(sharedFile, sb.api.token, sb.clock.Now().Add(-50*time.Second))
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.a)); err != nil {
		t.Fatal(err)
	}
	if sb.api.challenges != 0 || sb.api.validateCalls() != 1 || sb.api.validations[0] != sb.api.token {
		t.Fatalf("%d challenges, validations %v; want none and the file's token", sb.api.challenges, sb.api.validations)
	}
	if st := sb.state(t, sb.a); st != events.Validated {
		t.Fatalf("state %q, want validated", st)
	}
	evs, _ := sb.store.Read(ctx, "0", 10, 0)
	if len(evs) != 1 || evs[0].Event.Attempts != (events.Attempts{Validate: 1}) {
		t.Fatalf("events %+v, want one validated with one validate attempt", evs)
	}
	if holder, _ := sb.leases.Holder(ctx, sharedLoc); holder != "" || len(log.records()) != 0 {
		t.Fatalf("holder %q, records %v after the resume", holder, log.records())
	}
	// The next destination on the path takes what a's file holds as its
	// fingerprint: a's token is not taken for b's.
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.b)); err != nil {
		t.Fatal(err)
	}
	if recs := log.records(); len(recs) != 1 || recs[0].Dest != sb.b.Hash() || recs[0].Before != sum(sb.api.token) {
		t.Fatalf("records %+v, want b's with a's token's digest as fingerprint", recs)
	}
}

// TestResumeChallengesAnew: the earlier run's challenge is not taken up when
// the file is what the path held before it (never written), when the
// claims name another destination, or when a challenge was recorded on the
// path since; each then challenges, recording first.
func TestResumeChallengesAnew(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, c := range []struct {
		name, body string
		before     func(body string) string
	}{
		{"unchanged", "token-before-the-challenge", sum},
		{"absent", "", func(string) string { return location.Absent }},
		{"another destination's", claimToken("zone", "c3f2a9c1d0e4b5a6978877665544332b", sharedConf, "9"), func(string) string { return location.Absent }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sb, log := setupResume(t, c.before(c.body))
			if c.body != "" {
				sb.rd.put(sharedFile, c.body, sb.clock.Now().Add(-50*time.Second))
			}
			var at []ledger.Challenge
			sb.api.onChallenge = func(cloudflare.Target, string) { at = log.records() }
			if err := sb.h.Challenge(ctx, challengeTask(t, sb.a)); err != nil {
				t.Fatal(err)
			}
			sb.enq.take(t, tasks.TypePoll)
			if sb.api.challenges != 1 || sb.api.validateCalls() != 0 {
				t.Fatalf("%d challenges, %d validations; want a fresh challenge and no validation", sb.api.challenges, sb.api.validateCalls())
			}
			want := location.Absent
			if c.body != "" {
				want = sum(c.body)
			}
			if len(at) != 1 || at[0].Dest != sb.a.Hash() || at[0].Location != string(sharedLoc) || at[0].Before != want {
				t.Fatalf("records when the challenge was made: %+v, want a's with fingerprint %s", at, want)
			}
		})
	}
}

// TestResumeRefusedTokenRechallenges: a token Cloudflare refuses (1002: a
// later challenge superseded it) asks for a fresh challenge, the next
// generation, as a stale token found by a poll does.
func TestResumeRefusedTokenRechallenges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb, _ := setupResume(t, location.Absent)
	sb.rd.put(sharedFile, "an-older-token-of-a", sb.clock.Now().Add(-50*time.Second))
	sb.api.validateErr = &cloudflare.APIError{Endpoint: "ownership_validate", HTTPStatus: 400, Codes: []int{1002}, Kind: cloudflare.StaleChallenge}
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.a)); err != nil {
		t.Fatal(err)
	}
	next := sb.enq.take(t, tasks.TypeChallenge)
	var p tasks.ChallengePayload
	if err := tasks.Decode(next, &p); err != nil || p.Gen != 1 || sb.api.challenges != 0 {
		t.Fatalf("next challenge gen %d (%v), %d challenges; want gen 1 and none yet", p.Gen, err, sb.api.challenges)
	}
	sb.api.validateErr = nil
	if err := sb.h.Challenge(ctx, next); err != nil {
		t.Fatal(err)
	}
	sb.enq.take(t, tasks.TypePoll)
	if sb.api.challenges != 1 || sb.api.validateCalls() != 1 {
		t.Fatalf("%d challenges, %d validations; want one each", sb.api.challenges, sb.api.validateCalls())
	}
}

// TestResumeWaitsForTheEarlierWrite: a run killed with a's challenge in
// flight left its write to come. a, taking it up before EarlierWriteWait,
// waits for it (holding the path) instead of asking again, then validates
// the token it finds; b, on the same path, does not challenge while a's
// write may come (it would take a's late token for its own: opaque tokens
// cannot tell), and lets the path go to a meanwhile.
func TestResumeWaitsForTheEarlierWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb, log := setupResumeAgo(t, location.Absent, 5*time.Second)
	var snooze *worker.SnoozeError
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.b)); !errors.As(err, &snooze) {
		t.Fatalf("b's challenge while a's earlier write may come = %v, want a snooze", err)
	}
	if holder, _ := sb.leases.Holder(ctx, sharedLoc); holder != "" {
		t.Fatalf("b keeps the path (%q) while it waits for a", holder)
	}
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.a)); !errors.As(err, &snooze) {
		t.Fatalf("a's resume before its earlier write = %v, want a snooze", err)
	}
	if sb.api.challenges != 0 || sb.api.validateCalls() != 0 {
		t.Fatalf("%d challenges, %d validations while the earlier write may come; want none", sb.api.challenges, sb.api.validateCalls())
	}
	// The earlier challenge's token lands late.
	sb.clock.Advance(2 * time.Second)
	sb.api.token = "opaque-token-of-a"
	sb.rd.put(sharedFile, sb.api.token, sb.clock.Now())
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.a)); err != nil {
		t.Fatal(err)
	}
	if sb.api.challenges != 0 || sb.api.validateCalls() != 1 || sb.api.validations[0] != sb.api.token {
		t.Fatalf("%d challenges, validations %v; want none and the late token", sb.api.challenges, sb.api.validations)
	}
	log.mu.Lock()
	log.done = map[string]bool{sb.a.Hash(): true}
	log.mu.Unlock()
	// a has its outcome: b goes on, with a's token as its fingerprint.
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.b)); err != nil {
		t.Fatal(err)
	}
	if recs := log.records(); sb.api.challenges != 1 || len(recs) != 1 || recs[0].Dest != sb.b.Hash() || recs[0].Before != sum(sb.api.token) {
		t.Fatalf("%d challenges, records %+v; want b's one, with a's token's digest as fingerprint", sb.api.challenges, recs)
	}
}

// TestEarlierWriteWaitEnds: once EarlierWriteWait has passed since the
// earlier run's challenge, the path is no longer held back: a destination
// whose earlier challenge was never written challenges anew, and another
// destination challenges without waiting for it.
func TestEarlierWriteWaitEnds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sb, _ := setupResumeAgo(t, location.Absent, 5*time.Second)
	var snooze *worker.SnoozeError
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.b)); !errors.As(err, &snooze) {
		t.Fatalf("b's challenge while a's earlier write may come = %v, want a snooze", err)
	}
	sb.clock.Advance(worker.EarlierWriteWait)
	if err := sb.h.Challenge(ctx, challengeTask(t, sb.b)); err != nil {
		t.Fatal(err)
	}
	if sb.api.challenges != 1 {
		t.Fatalf("%d challenges after the wait, want b's", sb.api.challenges)
	}
}
