package tasks_test

import (
	"errors"
	"testing"

	"github.com/logpush-onboard/logpush-onboard/tasks"
)

// TestParseJobUpdate: a migrate row's columns, each bad one named.
func TestParseJobUpdate(t *testing.T) {
	t.Parallel()
	digest := tasks.ConfDigest("s3://bkt/p?region=us-east-1")
	for _, tc := range []struct {
		in    map[string]string
		field string
	}{
		{map[string]string{"job_id": "12", "dataset": "http_requests", "from": digest}, ""},
		{map[string]string{"job_id": "12"}, ""},
		{map[string]string{"job_id": ""}, "job_id"},
		{map[string]string{"job_id": "0"}, "job_id"},
		{map[string]string{"job_id": "012"}, "job_id"},
		{map[string]string{"job_id": "x"}, "job_id"},
		{map[string]string{"job_id": "1", "dataset": "http requests"}, "dataset"},
		{map[string]string{"job_id": "1", "from": "abc"}, "from"},
	} {
		u, err := tasks.ParseJobUpdate(tc.in)
		var fe *tasks.FieldError
		switch {
		case tc.field == "" && (err != nil || u.ID != 12 && u.ID != 1):
			t.Errorf("%v: %v %v", tc.in, u, err)
		case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
			t.Errorf("%v: error %v, want one naming %s", tc.in, err, tc.field)
		}
	}
	// One destination per job moved: two jobs to one conf are two.
	a := tasks.Dest{Scope: "zone", ScopeID: "z", DestinationConf: "s3://bkt/p?region=us-east-1", Update: &tasks.JobUpdate{ID: 1}}
	b := a
	b.Update = &tasks.JobUpdate{ID: 2}
	c := a
	c.Update = &tasks.JobUpdate{ID: 1, Copy: true}
	if a.Hash() == b.Hash() || a.Hash() == c.Hash() || a.Hash() == (tasks.Dest{Scope: "zone", ScopeID: "z", DestinationConf: a.DestinationConf}).Hash() {
		t.Error("jobs share a destination hash")
	}
}
