package worker_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/destination"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
	"github.com/logpush-onboard/logpush-onboard/internal/location"
	"github.com/logpush-onboard/logpush-onboard/internal/testutil"
	"github.com/logpush-onboard/logpush-onboard/tasks"
	"github.com/logpush-onboard/logpush-onboard/worker"
)

// listingReader is a fakeReader that lists its objects, a page of max keys
// (0: all), and records the prefixes listed.
type listingReader struct {
	*fakeReader
	lists   []string
	listErr error
	max     int
}

func (l *listingReader) List(_ context.Context, loc destination.Location) (destination.Listing, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lists = append(l.lists, loc.Key)
	if l.listErr != nil {
		return destination.Listing{}, l.listErr
	}
	var keys []string
	for k := range l.objs {
		if key, ok := strings.CutPrefix(k, loc.Bucket+"/"); ok && strings.HasPrefix(key, loc.Key) {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	out := destination.Listing{Prefix: loc.Key, ModTimes: map[string]time.Time{}, Complete: true}
	for i, k := range keys {
		if l.max > 0 && i == l.max {
			out.Complete = false
			break
		}
		out.ModTimes[k], out.Through = l.objs[loc.Bucket+"/"+k].ModTime, k
	}
	return out, nil
}

func (l *listingReader) counts() (reads, lists int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reads, len(l.lists)
}

// listBundle is handlers with leases whose reader lists, and one zone per
// path under bucket/own/.
type listBundle struct {
	h     *worker.Handlers
	api   *fakeAPI
	rd    *listingReader
	clock *fakeClock
	enq   *fakeEnqueuer
	waker *fakeWaker
}

func setupListing(t *testing.T) *listBundle {
	t.Helper()
	rdb, _ := testutil.Mini(t)
	leases, err := location.New(rdb, location.Config{})
	if err != nil {
		t.Fatal(err)
	}
	lb := &listBundle{api: &fakeAPI{token: jwt(time.Now())}, rd: &listingReader{fakeReader: &fakeReader{objs: map[string]destination.Object{}}},
		clock: newFakeClock(), enq: &fakeEnqueuer{}, waker: &fakeWaker{}}
	lb.h = worker.NewHandlers(worker.Deps{API: lb.api, Reader: lb.rd, Store: ledger.NewStore(rdb, ledger.Config{}),
		Enqueue: lb.enq, Metrics: newMetrics(t), Leases: leases, Waker: lb.waker, Now: lb.clock.Now,
		Sleep: func(_ context.Context, d time.Duration) error { lb.clock.Advance(d); return nil }}, worker.HandlerConfig{})
	return lb
}

// own is a zone of its own whose destination is bucket/own/<path>.
func own(i int, path string) tasks.Dest {
	return tasks.Dest{BatchID: "b1", Scope: tasks.ScopeZone, ScopeID: strings.Repeat("0", 31) + string(rune('a'+i)),
		DestinationConf: "s3://bucket/own/" + path + "?region=us-east-1", EnqueuedAt: time.Now(), Line: 2 + i}
}

// challenge runs d's challenge task and returns the reader's reads and
// listings since before.
func (lb *listBundle) challenge(t *testing.T, d tasks.Dest) (reads, lists int) {
	t.Helper()
	r0, l0 := lb.rd.counts()
	if err := lb.h.Challenge(context.Background(), challengeTask(t, d)); err != nil {
		t.Fatalf("challenge of %s: %v", d.DestinationConf, err)
	}
	r1, l1 := lb.rd.counts()
	return r1 - r0, l1 - l0
}

// challengeOn challenges the i-th zone's destination on own/path 100 ms
// after the last, and checks the reads and listings before it.
func (lb *listBundle) challengeOn(t *testing.T, i int, path string, wantReads, wantLists int) {
	t.Helper()
	lb.clock.Advance(100 * time.Millisecond)
	if reads, lists := lb.challenge(t, own(i, path)); reads != wantReads || lists != wantLists {
		t.Fatalf("challenge on own/%s: %d reads and %d listings, want %d and %d", path, reads, lists, wantReads, wantLists)
	}
}

// TestListingStandsForReadsBefore: challenges of one bucket that come
// within ClockSkew of each other read their paths once between them: the
// second lists the prefix it shares with the first, and the listing
// stands for the reads of the others while it is fresh. A file listed that
// the poll would refuse by its date counts as absent; a recent one is read.
func TestListingStandsForReadsBefore(t *testing.T) {
	t.Parallel()
	lb := setupListing(t)
	lb.rd.put("bucket/own/p3/ownership-challenge.txt", "old", lb.clock.Now().Add(-time.Hour))
	lb.rd.put("bucket/own/p4/ownership-challenge.txt", "recent", lb.clock.Now())
	lb.challengeOn(t, 0, "p1", 1, 0) // the bucket's first: read
	lb.challengeOn(t, 1, "p2", 0, 1) // within ClockSkew of another path's read: list own/
	lb.challengeOn(t, 2, "p3", 0, 0) // listed; its file is too old for the poll to take
	lb.challengeOn(t, 3, "p4", 1, 0) // listed, but recent: read
	lb.clock.Advance(time.Second)
	lb.challengeOn(t, 4, "p5", 0, 1) // the listing is too old; the last read, of p4, within listFlow: list again
	lb.clock.Advance(10 * time.Second)
	lb.challengeOn(t, 5, "p6", 1, 0) // the last read is older than listFlow: read
	if got := lb.rd.lists; !slices.Equal(got, []string{"own/", "own/"}) {
		t.Fatalf("listed %q, want own/ twice", got)
	}
	if lb.api.challenges != 6 {
		t.Fatalf("%d challenges, want 6", lb.api.challenges)
	}
}

// TestListingBeforeSkipRead: a listing of the bucket taken within
// ClockSkew stands for the read before a challenge even where the files'
// dates would tell alone (skipRead): it costs no request, and the poll
// then takes a file dated in the request's own second, which a challenge
// not read before would refuse and ask again for.
func TestListingBeforeSkipRead(t *testing.T) {
	t.Parallel()
	lb := setupListing(t)
	step := func(i int, path string, wantReads, wantLists int) *asynq.Task {
		t.Helper()
		lb.api.filename = "own/" + path + "/ownership-challenge.txt"
		lb.challengeOn(t, i, path, wantReads, wantLists)
		return lb.enq.take(t, tasks.TypePoll)
	}
	step(0, "p0", 1, 0) // a cold worker: read
	step(1, "p1", 0, 1) // list own/
	for range 8 {
		lb.h.Observe(5 * time.Second) // files come late: a date would tell
	}
	requested := lb.clock.Now().Add(100 * time.Millisecond)
	poll := step(2, "p2", 0, 0)
	lb.rd.put("bucket/own/p2/ownership-challenge.txt", lb.api.token, requested.Truncate(time.Second))
	lb.clock.Advance(2 * time.Second)
	if err := lb.h.Poll(context.Background(), poll); err != nil {
		t.Fatalf("poll of own/p2: %v", err)
	}
	if q := lb.enq.queued(); len(q) != 0 || lb.api.validateCalls() != 1 {
		t.Fatalf("poll of own/p2: %d validate calls, queued %q; want its file taken, not a fresh challenge", lb.api.validateCalls(), q)
	}
}

// TestListingNotForAUsedPath: a listing is no read for a path that a
// destination of the fleet used since: one whose challenge failed after
// the listing (Cloudflare may have written its file) leaves a record
// without a digest, and the next destination on that path reads it.
func TestListingNotForAUsedPath(t *testing.T) {
	t.Parallel()
	lb := setupListing(t)
	lb.challenge(t, own(0, "p0"))
	if _, lists := lb.challenge(t, own(1, "p2")); lists != 1 {
		t.Fatal("no listing for the second path")
	}
	lb.api.challengeErr = &cloudflare.APIError{Endpoint: "ownership", HTTPStatus: http.StatusBadRequest, Codes: []int{1001},
		Message: "bad destination", Kind: cloudflare.Permanent}
	if reads, lists := lb.challenge(t, own(2, "p1")); reads != 0 || lists != 0 {
		t.Fatalf("first challenge on own/p1: %d reads, %d listings; want the listing to stand", reads, lists)
	}
	lb.api.challengeErr = nil
	other := own(3, "p1")
	if reads, _ := lb.challenge(t, other); reads != 1 {
		t.Fatalf("challenge after another destination's on own/p1: %d reads, want 1", reads)
	}
}

// TestListingOff: a bucket whose listing fails (no s3:ListBucket), or
// whose page ends before the key, is read path by path from then on.
func TestListingOff(t *testing.T) {
	t.Parallel()
	for name, set := range map[string]func(*listingReader){
		"denied": func(l *listingReader) {
			l.listErr = &destination.Error{Kind: destination.Permanent, Op: "list", Permission: "s3:ListBucket", Err: errors.New("access denied")}
		},
		"page ends before the key": func(l *listingReader) {
			l.max = 1
			l.put("bucket/own/a/1.log.gz", "logs", time.Now())
			l.put("bucket/own/a/2.log.gz", "logs", time.Now())
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			lb := setupListing(t)
			set(lb.rd)
			for i, p := range []string{"p0", "p1", "p2", "p3"} {
				lb.clock.Advance(100 * time.Millisecond)
				if reads, _ := lb.challenge(t, own(i, p)); reads != 1 {
					t.Fatalf("challenge on own/%s: %d reads, want 1", p, reads)
				}
			}
			if len(lb.rd.lists) != 1 {
				t.Fatalf("listed %q, want one listing", lb.rd.lists)
			}
		})
	}
}

// pollsOn challenges a destination on each path under bucket/own/, 100 ms
// apart, after a cold worker's scout in a bucket of its own (its looks run
// on timers, and wake only its own poll), and returns a look: it runs the
// i-th path's poll task and checks its reads and listings; and the scout's
// poll task id.
func (lb *listBundle) pollsOn(t *testing.T, paths ...string) (look func(i, wantReads, wantLists int) error, scoutPoll string) {
	t.Helper()
	scout := own(9, "scout")
	scout.DestinationConf = "s3://scouts/x?region=us-east-1"
	lb.challenge(t, scout)
	lb.enq.take(t, tasks.TypePoll)
	var polls []*asynq.Task
	for i, p := range paths {
		lb.clock.Advance(100 * time.Millisecond)
		lb.api.filename = "own/" + p + "/ownership-challenge.txt"
		lb.challenge(t, own(i, p))
		polls = append(polls, lb.enq.take(t, tasks.TypePoll))
	}
	look = func(i, wantReads, wantLists int) error {
		t.Helper()
		r0, l0 := lb.rd.counts()
		err := lb.h.Poll(context.Background(), polls[i])
		if r1, l1 := lb.rd.counts(); r1-r0 != wantReads || l1-l0 != wantLists {
			t.Fatalf("poll of own/%s: %d reads and %d listings, want %d and %d", paths[i], r1-r0, l1-l0, wantReads, wantLists)
		}
		return err
	}
	return look, tasks.PollTaskID(scout)
}

// TestListingStandsForPolls: where the polls of a bucket's challenges miss
// their files, a poll due within ClockSkew of another path's miss lists
// the prefix the two share, and the listing stands for the looks of every
// poll there while it is no older than a quarter of their wait: a file it
// shows absent is a miss without a read. A later listing that shows new
// files wakes the polls that missed them, and only those.
func TestListingStandsForPolls(t *testing.T) {
	t.Parallel()
	lb := setupListing(t)
	paths := []string{"p0", "p1", "p2", "p3"}
	look, scoutPoll := lb.pollsOn(t, paths...)
	miss := func(i, wantReads, wantLists int) {
		t.Helper()
		var s *worker.SnoozeError
		if err := look(i, wantReads, wantLists); !errors.As(err, &s) {
			t.Fatalf("poll of own/%s: %v, want a snooze", paths[i], err)
		}
	}
	lb.clock.Advance(2 * time.Second)
	miss(0, 1, 0) // the first miss: read
	lb.clock.Advance(100 * time.Millisecond)
	miss(1, 0, 1) // within ClockSkew of another path's miss: list own/
	lb.clock.Advance(100 * time.Millisecond)
	miss(2, 0, 0) // listed: no file yet
	for _, p := range []string{"p0", "p3"} {
		lb.rd.put("bucket/own/"+p+"/ownership-challenge.txt", lb.api.token, lb.clock.Now())
	}
	lb.clock.Advance(100 * time.Millisecond)
	miss(3, 0, 0) // the listing is from before its file
	lb.clock.Advance(800 * time.Millisecond)
	miss(2, 0, 1) // the listing is older than a quarter of the wait: list again; no file yet
	woken := func() (ids []string) {
		for _, id := range lb.waker.ids() {
			if id != scoutPoll {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		return ids
	}
	want := []string{tasks.PollTaskID(own(0, "p0")), tasks.PollTaskID(own(3, "p3"))}
	slices.Sort(want)
	for end := time.Now().Add(hangAfter); !slices.Equal(woken(), want); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("woken %v, want the polls of own/p0 and own/p3 %v", woken(), want)
		}
	}
	if err := look(0, 1, 0); err != nil {
		t.Fatalf("poll of own/p0 after its file was listed: %v", err)
	}
	if lb.api.validateCalls() != 1 {
		t.Fatalf("%d validations, want own/p0's", lb.api.validateCalls())
	}
}

// TestListingForPollsWhereItStands: where a bucket's last listing asked
// by a poll stood for fewer than two looks (the polls that used it found
// their files in it: files come fast), the next poll after another path's
// miss reads rather than lists, for listRetry.
func TestListingForPollsWhereItStands(t *testing.T) {
	t.Parallel()
	lb := setupListing(t)
	paths := []string{"p0", "p1", "p2", "p3"}
	look, _ := lb.pollsOn(t, paths...)
	for _, p := range []string{"p1", "p2"} {
		lb.rd.put("bucket/own/"+p+"/ownership-challenge.txt", lb.api.token, lb.clock.Now())
	}
	lb.clock.Advance(2 * time.Second)
	step := func(i, wantReads, wantLists int) {
		t.Helper()
		_ = look(i, wantReads, wantLists)
		lb.clock.Advance(100 * time.Millisecond)
	}
	step(0, 1, 0) // a miss
	step(1, 1, 1) // lists after p0's miss: its file is there, read
	step(2, 1, 0) // the listing shows its file: read
	lb.clock.Advance(600 * time.Millisecond)
	step(3, 1, 0) // after p0's miss, but listings lately showed files: read
	lb.clock.Advance(5 * time.Second)
	step(0, 1, 0) // the last miss, p3's, is too old: read
	step(3, 0, 1) // after p0's miss, the last listing long ago: list
}

// TestListingNotForYoungPolls: a poll that has waited less than ClockSkew
// reads rather than lists after another path's miss: a listing that young
// stands for a quarter second of looks, and files that fast are mostly
// there at the next look.
func TestListingNotForYoungPolls(t *testing.T) {
	t.Parallel()
	lb := setupListing(t)
	look, _ := lb.pollsOn(t, "p0", "p1")
	lb.clock.Advance(800 * time.Millisecond)
	_ = look(0, 1, 0) // waited 0.9 s: a miss
	lb.clock.Advance(150 * time.Millisecond)
	_ = look(1, 1, 0) // waited 0.95 s, after p0's miss: read
	lb.clock.Advance(200 * time.Millisecond)
	_ = look(0, 0, 1) // waited 1.25 s, after p1's miss: list
}

// TestListingForABurstOfYoungPolls: polls of a bucket that come together
// (a batch's first burst, each a second or less after its challenge)
// share one listing however young: the second lists, and the listing
// stands for the look of the third.
func TestListingForABurstOfYoungPolls(t *testing.T) {
	t.Parallel()
	lb := setupListing(t)
	look, _ := lb.pollsOn(t, "p0", "p1", "p2")
	lb.clock.Advance(700 * time.Millisecond)
	_ = look(0, 1, 0) // waited 1 s less the challenges' 200 ms: read
	lb.clock.Advance(10 * time.Millisecond)
	_ = look(1, 0, 1) // its read began within listBurst: list own/
	lb.clock.Advance(10 * time.Millisecond)
	_ = look(2, 0, 0) // listed: no file yet
}

// TestScoutReadsPastAListing: while its files may come after a second or
// so, a cold worker's scout reads rather than stand on a listing of its
// bucket that other polls took, unless the listing is no older than a
// quarter of the time to its next look: its looks learn when files appear,
// for every first poll it wakes, and a listing a quarter second old that
// did not show its file made it find the file half a second late, and the
// first polls look late.
func TestScoutReadsPastAListing(t *testing.T) {
	t.Parallel()
	lb := setupListing(t)
	var polls []*asynq.Task
	for i, p := range []string{"p0", "p1", "p2"} { // p0's is the scout
		lb.api.filename = "own/" + p + "/ownership-challenge.txt"
		lb.challenge(t, own(i, p))
		polls = append(polls, lb.enq.take(t, tasks.TypePoll))
		lb.clock.Advance(100 * time.Millisecond)
	}
	lb.clock.Advance(900 * time.Millisecond)
	// p1 misses 1.2 s in, p2 lists at 1.3 s.
	for i, want := range []struct{ reads, lists int }{{1, 0}, {0, 1}} {
		r0, l0 := lb.rd.counts()
		var s *worker.SnoozeError
		if err := lb.h.Poll(context.Background(), polls[i+1]); !errors.As(err, &s) {
			t.Fatalf("poll %d: %v, want a snooze", i+1, err)
		}
		if r1, l1 := lb.rd.counts(); r1-r0 != want.reads || l1-l0 != want.lists {
			t.Fatalf("poll %d: %d reads and %d listings, want %d and %d", i+1, r1-r0, l1-l0, want.reads, want.lists)
		}
		lb.clock.Advance(100 * time.Millisecond)
	}
	// The scout, 1.45 s in, looks next in 0.36 s: a listing 0.09 s old
	// would stand, the one 0.15 s old does not.
	lb.clock.Advance(50 * time.Millisecond)
	r0, l0 := lb.rd.counts()
	var s *worker.SnoozeError
	if err := lb.h.Poll(context.Background(), polls[0]); !errors.As(err, &s) {
		t.Fatalf("the scout's poll: %v, want a snooze", err)
	}
	if r1, l1 := lb.rd.counts(); r1-r0 != 1 || l1 != l0 {
		t.Fatalf("the scout's look 0.15 s after a listing: %d reads and %d listings, want a read", r1-r0, l1-l0)
	}
}
