package worker

import (
	"errors"
)

var (
	// errUnchanged: the challenge file is the one the location held before
	// this challenge (another destination's, on a shared path).
	errUnchanged = errors.New("challenge file unchanged since before the challenge")
	// errNotListed: a listing of the bucket since the challenge shows no
	// file of its yet (pollListed).
	errNotListed = errors.New("challenge file not in a listing of the bucket since the challenge")
	// errUndated: the path was not read before the challenge (skipRead),
	// and the file found is dated too early to be told from one written
	// before it.
	errUndated = errors.New("challenge file dated too close to the challenge to tell it from an earlier one")
	// errForeignToken: the file's token names another zone, account or
	// destination_conf.
	errForeignToken = errors.New("challenge file holds another destination's token")
	// errScoutMissed: a cold first poll not read, as the worker's scout
	// had missed its own file at that age (notDue).
	errScoutMissed = errors.New("not read: this worker's first challenge had no file yet at that age")
	// errNotDue: a first poll not read, as the files seen since its
	// challenge put its look later (notDue).
	errNotDue = errors.New("not read: files seen since the challenge came later than this")
	// errOverwritten: the challenge file still holds another
	// destination's token long after this challenge's should have
	// replaced it.
	errOverwritten = errors.New("challenge file holds another destination's token long after this challenge: overwritten, or never written")
	// errExpiredToken: the file's token has expired.
	errExpiredToken = errors.New("challenge file holds an expired token")
)
