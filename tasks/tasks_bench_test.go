package tasks_test

import (
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// Confs of each kind the producer parses per input line and every handler
// parses again per task.
var benchConfs = []struct{ name, conf string }{
	{"s3", "s3://my-logs/http/{DATE}?region=us-east-1"},
	{"s3_keys", "s3://my-logs/http?region=us-east-1&access-key-id=AKIAIOSFODNN7EXAMPLE&secret-access-key=wJalrXUtnFEMI%2FK7MDENG"},
	{"file", "file:///var/tmp/logpush/dest-00042"},
	{"https", "https://logs.example.com/ingest?header_Authorization=Bearer%20abc123&tags=env:prod"},
	{"azure_sas", "azure://logs/http?sv=2022-11-02&ss=b&srt=co&sp=w&se=2030-01-01T00:00:00Z&sig=abcDEF123%2B%2F%3D"},
}

// BenchmarkParseConf is the destination_conf parser: once per input line
// (producer) and once per task (handlers).
func BenchmarkParseConf(b *testing.B) {
	for _, bc := range benchConfs {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tasks.ParseConf(bc.conf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkConfRedacted is the redaction every event, log line and state
// record of a destination goes through.
func BenchmarkConfRedacted(b *testing.B) {
	for _, bc := range benchConfs {
		c, err := tasks.ParseConf(bc.conf)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = c.Redacted()
			}
		})
	}
}

// BenchmarkDestHash is the destination's identity: per input line (twice:
// the check pass and the enqueue pass) and per task.
func BenchmarkDestHash(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = tasks.DestHash(tasks.ScopeZone, "023e105f4ecef8ad9ca31a8372d0c353", benchConfs[0].conf, "")
	}
}

func benchDest() tasks.Dest {
	return tasks.Dest{BatchID: "b-3f2a9c1d0e4b", Scope: tasks.ScopeZone, ScopeID: "023e105f4ecef8ad9ca31a8372d0c353",
		DestinationConf: benchConfs[1].conf, EnqueuedAt: time.Date(2026, 11, 23, 20, 0, 0, 0, time.UTC)}
}

// BenchmarkNewTask is building a task: payload encoding and options, once
// per stage of every destination.
func BenchmarkNewTask(b *testing.B) {
	d := benchDest()
	at := time.Date(2026, 11, 23, 20, 0, 1, 0, time.UTC)
	b.Run("challenge", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tasks.NewChallengeTask(d, tasks.Options{}, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("poll", func(b *testing.B) {
		b.ReportAllocs()
		p := tasks.PollPayload{Dest: d, Filename: "http/ownership-challenge-6a1f0c2e.txt", RequestedAt: at, Deadline: at.Add(15 * time.Minute)}
		for b.Loop() {
			if _, err := tasks.NewPollTask(p, tasks.Options{}, 2*time.Second); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDecode is the payload decoding at the start of every handler
// run.
func BenchmarkDecode(b *testing.B) {
	d := benchDest()
	at := time.Date(2026, 11, 23, 20, 0, 1, 0, time.UTC)
	t, err := tasks.NewPollTask(tasks.PollPayload{Dest: d, Filename: "http/ownership-challenge-6a1f0c2e.txt", RequestedAt: at,
		Deadline: at.Add(15 * time.Minute)}, tasks.Options{}, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(t.Payload())))
	for b.Loop() {
		var p tasks.PollPayload
		if err := tasks.Decode(t, &p); err != nil {
			b.Fatal(err)
		}
	}
}
