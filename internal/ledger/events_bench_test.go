package ledger_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/events"
	"github.com/logpush-onboard/logpush-onboard/internal/ledger"
)

func benchEvent(failed bool) events.Event {
	ev := events.Event{
		Event: events.Validated, BatchID: "b-3f2a9c1d0e4b", Scope: "zone", ScopeID: "023e105f4ecef8ad9ca31a8372d0c353",
		Destination: "s3://my-logs/http?region=us-east-1&secret-access-key=REDACTED", DestinationType: "s3",
		Filename: "http/ownership-challenge-6a1f0c2e.txt", Attempts: events.Attempts{Challenge: 1, Poll: 2, Validate: 1},
		DurationSeconds: 4.2, Time: time.Date(2026, 11, 23, 20, 0, 0, 0, time.UTC), Line: 2,
	}
	if failed {
		ev.Event = events.Failed
		ev.Error = &events.Error{HTTPStatus: 400, Codes: []int{1004}, Message: "job limit reached"}
	}
	return ev
}

// BenchmarkEventEncode is the JSON encoding of the one event every
// destination emits (Store.Transition marshals it).
func BenchmarkEventEncode(b *testing.B) {
	for _, failed := range []bool{false, true} {
		ev := benchEvent(failed)
		b.Run(string(ev.Event), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := json.Marshal(&ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEventDecode is what events --follow and report do per stream
// entry (Store.Read).
func BenchmarkEventDecode(b *testing.B) {
	raw, err := json.Marshal(benchEvent(true))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		var ev events.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkErrorFields is the failed state's hash fields.
func BenchmarkErrorFields(b *testing.B) {
	e := &events.Error{HTTPStatus: 400, Codes: []int{1004, 1002}, Message: "job limit reached"}
	b.ReportAllocs()
	for b.Loop() {
		_ = ledger.ErrorFields(e)
	}
}
