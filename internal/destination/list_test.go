package destination

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

// TestS3List: one ListObjectsV2 page of the prefix, with each object's
// date, and what it covers.
func TestS3List(t *testing.T) {
	t.Parallel()
	b := setupS3(t, s3Config{})
	before := time.Now().Truncate(time.Second)
	for _, k := range []string{"own/p1/ownership-challenge.txt", "own/p2/ownership-challenge.txt", "other/ownership-challenge.txt"} {
		if err := b.s3.Write(t.Context(), s3Loc(k), []byte("token")); err != nil {
			t.Fatal(err)
		}
	}
	l, err := b.s3.List(t.Context(), s3Loc("own/"))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k, mod := range l.ModTimes {
		keys = append(keys, k)
		if mod.Before(before) || mod.After(time.Now()) {
			t.Errorf("%s dated %v, written after %v", k, mod, before)
		}
	}
	slices.Sort(keys)
	if want := []string{"own/p1/ownership-challenge.txt", "own/p2/ownership-challenge.txt"}; !slices.Equal(keys, want) || !l.Complete {
		t.Fatalf("listed %q (complete %v), want %q, complete", keys, l.Complete, want)
	}
	for key, want := range map[string]bool{"own/p3/ownership-challenge.txt": true, "other/ownership-challenge.txt": false} {
		if got := l.Covers(key); got != want {
			t.Errorf("Covers(%q) = %v, want %v", key, got, want)
		}
	}
	if got := b.observed.list(); got[len(got)-1] != "list ok" {
		t.Errorf("observed %q, want a list last", got)
	}
}

// TestListingCovers: a page that ends early covers the keys up to its last.
func TestListingCovers(t *testing.T) {
	t.Parallel()
	l := Listing{Prefix: "own/", Through: "own/m/x"}
	for key, want := range map[string]bool{"own/a/x": true, "own/m/x": true, "own/n/x": false, "other/a": false} {
		if got := l.Covers(key); got != want {
			t.Errorf("Covers(%q) = %v, want %v", key, got, want)
		}
	}
}

// TestS3ListDeniedNamesListBucket: a listing S3 refuses names the
// permission it needs.
func TestS3ListDeniedNamesListBucket(t *testing.T) {
	t.Parallel()
	url, _ := errorServer(t, http.StatusForbidden, "AccessDenied", nil)
	b := setupS3Server(t, url, nil, S3Options{})
	_, err := b.s3.List(t.Context(), s3Loc("own/"))
	if e := requireError(t, err, Permanent); e.Permission != "s3:ListBucket" {
		t.Fatalf("permission %q, want s3:ListBucket: %v", e.Permission, err)
	}
}
