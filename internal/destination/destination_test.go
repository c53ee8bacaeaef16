package destination

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestMux(t *testing.T) {
	t.Parallel()
	b := setupFile(t)
	loc := b.loc("c.txt")
	w := WriterMux{"file": b.file}
	r := Mux{"file": b.file}
	if err := w.Write(t.Context(), loc, []byte("tok")); err != nil {
		t.Fatal(err)
	}
	obj, err := r.Read(t.Context(), loc, time.Time{})
	if err != nil || string(obj.Body) != "tok" {
		t.Fatalf("read %q, %v", obj.Body, err)
	}

	unknown := Location{Scheme: "gs", Bucket: "b", Key: "k"}
	_, err = r.Read(t.Context(), unknown, time.Time{})
	requireError(t, err, Permanent)
	if want := `read gs://b/k: no reader for destination scheme "gs"`; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	err = w.Write(t.Context(), unknown, nil)
	requireError(t, err, Permanent)
	if want := `write gs://b/k: no writer for destination scheme "gs"`; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
	if _, err := (Mux{"s3": nil}).Read(t.Context(), Location{Scheme: "s3"}, time.Time{}); !strings.Contains(fmt.Sprint(err), "no reader") {
		t.Errorf("nil reader: %v", err)
	}
}

func TestOutcome(t *testing.T) {
	t.Parallel()
	loc := Location{Scheme: "s3", Bucket: "b", Key: "k"}
	tests := []struct {
		err       error
		outcome   string
		transient bool
	}{
		{nil, OutcomeOK, false},
		{notFound(OpRead, loc), OutcomeNotFound, false},
		{stale(OpRead, loc, time.Unix(0, 0), time.Unix(1, 0)), OutcomeStale, false},
		{&Error{Kind: Transient, Op: OpRead, Location: loc, Err: context.Canceled}, OutcomeTransient, true},
		{fmt.Errorf("poll: %w", &Error{Kind: Transient, Op: OpRead, Location: loc}), OutcomeTransient, true},
		{&Error{Kind: Permanent, Op: OpRead, Location: loc}, OutcomePermanent, false},
		{&Error{Kind: Permanent, Op: OpRead, Location: loc, Permission: "s3:GetObject", MaybeAbsent: true}, OutcomeDenied, false},
		{fmt.Errorf("poll: %w", &Error{Kind: Permanent, Op: OpRead, Location: loc, Permission: "storage.objects.get"}), OutcomeDenied, false},
		{errors.New("unclassified"), OutcomePermanent, false},
	}
	for _, tt := range tests {
		if got := Outcome(tt.err); got != tt.outcome {
			t.Errorf("Outcome(%v) = %q, want %q", tt.err, got, tt.outcome)
		}
		if got := IsTransient(tt.err); got != tt.transient {
			t.Errorf("IsTransient(%v) = %v", tt.err, got)
		}
	}
	if Transient.String() != "transient" || Permanent.String() != "permanent" || Kind(0).String() != "Kind(0)" {
		t.Error("Kind.String")
	}
}

// TestErrorStrings pins the text operators read, in testdata/errors.golden.
// Run with -update to rewrite it.
func TestErrorStrings(t *testing.T) {
	t.Parallel()
	s3loc := Location{Scheme: "s3", Bucket: "my-bucket", Key: "logs/challenge.txt", Region: "eu-west-1"}
	cnloc := Location{Scheme: "s3", Bucket: "b", Key: "k", Region: "cn-north-1"}
	fileloc := Location{Scheme: "file", Key: "tmp/logs/challenge.txt"}
	cause := errors.New("api error AccessDenied: Access Denied")
	mod := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	errs := []error{
		&Error{Kind: Permanent, Op: OpRead, Location: s3loc, Permission: "s3:GetObject", Err: cause},
		&Error{Kind: Permanent, Op: opWrite, Location: cnloc, Permission: "s3:PutObject", Err: cause},
		&Error{Kind: Permanent, Op: OpRead, Location: fileloc, Permission: "read permission on the file", Err: errors.New("open /tmp/logs/challenge.txt: permission denied")},
		&Error{Kind: Transient, Op: OpRead, Location: s3loc},
		tooLarge(OpRead, s3loc, DefaultMaxBodyBytes),
		notFound(OpRead, s3loc),
		stale(OpRead, fileloc, mod, mod.Add(1500*time.Millisecond)),
		unknownScheme(OpRead, Location{Scheme: "sumo", Bucket: "collectors.example.com", Key: "receiver"}),
		&Error{Kind: Permanent, Op: OpRead, Location: Location{Scheme: "gs", Bucket: "my-bucket", Key: "logs/challenge.txt"},
			Permission: "storage.objects.get", Err: errors.New("HTTP 403 AccessDenied: Access denied.")},
		&Error{Kind: Permanent, Op: OpRead, Location: Location{Scheme: "azure", Bucket: "logs", Key: "challenge.txt", Account: "myaccount", SAS: "sp=cw&sig=c2VjcmV0"},
			Permission: azurePermission(OpRead), Err: errors.New("the SAS grants sp=cw, without read (r), and no account key or Entra ID credential is configured for storage account myaccount")},
	}
	var b strings.Builder
	for _, err := range errs {
		b.WriteString(err.Error())
		b.WriteByte('\n')
	}
	golden := filepath.Join("testdata", "errors.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("error strings:\n%s\nwant (%s):\n%s", b.String(), golden, want)
	}
}
