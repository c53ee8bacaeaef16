package destination

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Lister lists the objects under a prefix: the worker's one listing stands
// for the reads before several challenges in one bucket (see the worker's
// listings).
type Lister interface {
	// List returns the first page of the objects whose keys start with
	// loc.Key, in key order. Errors are *Error.
	List(ctx context.Context, loc Location) (Listing, error)
}

// Listing is one page of the objects under a prefix, in key order.
type Listing struct {
	// Prefix is the prefix listed.
	Prefix string
	// ModTimes are the dates of the objects listed, by key.
	ModTimes map[string]time.Time
	// Complete says that the page holds every object under Prefix; else it
	// holds every one up to Through, its last key.
	Complete bool
	Through  string
}

// Covers reports whether the listing says what key holds: the key is under
// the prefix, and the page reaches it.
func (l Listing) Covers(key string) bool {
	return strings.HasPrefix(key, l.Prefix) && (l.Complete || key <= l.Through)
}

// ErrNoList is the error of a List on a storage whose reader does not list.
var ErrNoList = errors.New("this storage is not listed")

// List lists loc.Key's prefix with the reader registered for loc.Scheme,
// when it is a Lister.
func (m Mux) List(ctx context.Context, loc Location) (Listing, error) {
	l, ok := m[loc.Scheme].(Lister)
	if !ok {
		return Listing{}, &Error{Kind: Permanent, Op: OpList, Location: loc, Err: ErrNoList}
	}
	return l.List(ctx, loc)
}

// Lists reports whether r lists the objects of scheme.
func Lists(r Reader, scheme string) bool {
	if m, ok := r.(Mux); ok {
		_, ok = m[scheme].(Lister)
		return ok
	}
	_, ok := r.(Lister)
	return ok
}
