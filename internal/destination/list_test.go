package destination

import (
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
)

// listedKeys are what the listing tests write: two under own/, one not.
var listedKeys = []string{"own/p1/ownership-challenge.txt", "own/p2/ownership-challenge.txt", "other/ownership-challenge.txt"}

// checkOwnListed checks l, a listing of own/ after listedKeys were written
// from before on: the two under own/ with their dates, complete, and what
// it covers.
func checkOwnListed(t *testing.T, l Listing, before time.Time) {
	t.Helper()
	var keys []string
	for k, mod := range l.ModTimes {
		keys = append(keys, k)
		if mod.Before(before) || mod.After(time.Now()) {
			t.Errorf("%s dated %v, written after %v", k, mod, before)
		}
	}
	slices.Sort(keys)
	if want := listedKeys[:2]; !slices.Equal(keys, want) || !l.Complete {
		t.Fatalf("listed %q (complete %v), want %q, complete", keys, l.Complete, want)
	}
	if l.Prefix != "own/" || l.Through != listedKeys[1] {
		t.Errorf("prefix %q through %q", l.Prefix, l.Through)
	}
	for key, want := range map[string]bool{"own/p3/ownership-challenge.txt": true, listedKeys[2]: false} {
		if got := l.Covers(key); got != want {
			t.Errorf("Covers(%q) = %v, want %v", key, got, want)
		}
	}
}

// checkAllListed checks l, a listing of the empty prefix after listedKeys
// were written: the whole bucket (or container).
func checkAllListed(t *testing.T, l Listing) {
	t.Helper()
	if len(l.ModTimes) != len(listedKeys) || !l.Complete || !l.Covers(listedKeys[2]) {
		t.Errorf("whole bucket: %+v", l)
	}
}

// checkFirstPage checks l, a page of own/ that says more follow, against
// the objects the page held, through own/p2/ownership-challenge.txt.
func checkFirstPage(t *testing.T, l Listing, want map[string]time.Time) {
	t.Helper()
	if len(l.ModTimes) != len(want) || l.Complete || l.Through != "own/p2/ownership-challenge.txt" {
		t.Fatalf("listed %v through %q (complete %v), want %v through own/p2/ownership-challenge.txt, not complete", l.ModTimes, l.Through, l.Complete, want)
	}
	for k, mod := range want {
		if !l.ModTimes[k].Equal(mod) {
			t.Errorf("%s dated %v, want %v", k, l.ModTimes[k], mod)
		}
	}
}

// TestS3List: one ListObjectsV2 page of the prefix, with each object's
// date, and what it covers.
func TestS3List(t *testing.T) {
	t.Parallel()
	b := setupS3(t, s3Config{})
	before := time.Now().Truncate(time.Second)
	for _, k := range listedKeys {
		if err := b.s3.Write(t.Context(), s3Loc(k), []byte("token")); err != nil {
			t.Fatal(err)
		}
	}
	l, err := b.s3.List(t.Context(), s3Loc("own/"))
	if err != nil {
		t.Fatal(err)
	}
	checkOwnListed(t, l, before)
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

// TestNewMuxLists: the readers NewMux builds for S3, GCS and Azure list;
// a cloud whose reader could not be set up does not (its reads fail with
// the reason, and the worker reads before each challenge).
func TestNewMuxLists(t *testing.T) {
	t.Parallel()
	creds := awscreds.NewStaticCredentialsProvider(testKeyID, testSecret, "")
	m, err := NewMux(t.Context(), Options{
		S3:  S3Options{Credentials: creds},
		GCS: GCSOptions{Endpoint: "http://127.0.0.1:1"}, // an emulator: set up without a request
	})
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := m["gs"].(*GCS); ok {
		t.Cleanup(func() { g.Close() })
	}
	for scheme, want := range map[string]bool{"s3": true, "gs": true, "azure": true, "file": false} {
		if got := Lists(m, scheme); got != want {
			t.Errorf("Lists(%s) = %v, want %v", scheme, got, want)
		}
	}

	m, err = NewMux(t.Context(), Options{
		S3:    S3Options{Credentials: creds},
		GCS:   GCSOptions{Endpoint: "ftp://127.0.0.1"},       // not an http endpoint
		Azure: AzureOptions{AccountName: "devstoreaccount1"}, // no key
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, scheme := range []string{"gs", "azure"} {
		if _, ok := m[scheme].(unavailable); !ok {
			t.Fatalf("%s reader is %T, want unavailable", scheme, m[scheme])
		}
		if Lists(m, scheme) {
			t.Errorf("Lists(%s) = true for a reader that could not be set up", scheme)
		}
		_, err := m.List(t.Context(), Location{Scheme: scheme, Bucket: "b", Key: "own/"})
		if e := requireError(t, err, Permanent); !errors.Is(e, ErrNoList) {
			t.Errorf("List(%s) = %v, want ErrNoList", scheme, err)
		}
	}
}
