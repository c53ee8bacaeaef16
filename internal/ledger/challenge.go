package ledger

import "time"

// Challenge is the record of one ownership challenge, kept before the call
// is made, so that a run that is killed and run again can take up a
// challenge that was in flight: its token is likely in its file already,
// valid for 7 days, and asking again costs a call of the user's rate limit
// and, on a shared path, one more serial file delay. Kept before the call,
// a record missing means the call was not made: the last record of a
// location names the destination whose token its file may hold. It holds
// no secret: not the token, only where it is written and what the path
// held before.
type Challenge struct {
	// Dest is the destination's tasks.Dest.Hash.
	Dest string `json:"dest"`
	// Location is the challenge file's location.ID: one file per resolved
	// path, shared by every destination pushing there.
	Location string `json:"location"`
	// Filename is the file read (redacted), for people.
	Filename string `json:"filename"`
	// Time is when the challenge was requested.
	Time time.Time `json:"time"`
	// Before is the path's pre-challenge fingerprint: the digest of what
	// the file held just before the challenge, or location.Absent. Only a
	// different object can be this challenge's token.
	Before string `json:"before"`
}
