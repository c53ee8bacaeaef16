package destination

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestGCSList: one objects.list page of the prefix, with each object's
// date, and what it covers.
func TestGCSList(t *testing.T) {
	t.Parallel()
	b := setupGCS(t, GCSOptions{})
	before := time.Now().Truncate(time.Second)
	for _, k := range listedKeys {
		if err := b.gcs.Write(t.Context(), gcsLoc(k), []byte("token")); err != nil {
			t.Fatal(err)
		}
	}
	b.requests.Store(0)
	l, err := b.gcs.List(t.Context(), gcsLoc("own/"))
	if err != nil {
		t.Fatal(err)
	}
	if n := b.requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	checkOwnListed(t, l, before)
	if got := b.observed.list(); got[len(got)-1] != "list ok" {
		t.Errorf("observed %q, want a list last", got)
	}

	// The empty prefix is the whole bucket.
	l, err = b.gcs.List(t.Context(), gcsLoc(""))
	if err != nil {
		t.Fatal(err)
	}
	checkAllListed(t, l)
}

// TestGCSListFirstPageOnly: a listing is one request for up to 1000
// objects of the prefix, with their names and dates only; a page that says
// more follow (GCS may end one before maxResults) is the listing, up to its
// last key, not Complete.
func TestGCSListFirstPageOnly(t *testing.T) {
	t.Parallel()
	var query atomic.Pointer[url.Values]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		query.Store(&q)
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		fmt.Fprint(w, `{"kind":"storage#objects","nextPageToken":"next","items":[`+
			`{"name":"own/p1/ownership-challenge.txt","updated":"2026-06-01T12:00:00.250Z"},`+
			`{"name":"own/p2/ownership-challenge.txt","updated":"2026-06-01T12:00:01Z"}]}`)
	}))
	t.Cleanup(srv.Close)
	b := setupGCSServer(t, srv.URL, GCSOptions{})
	l, err := b.gcs.List(t.Context(), gcsLoc("own/"))
	if err != nil {
		t.Fatal(err)
	}
	if n := b.requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	q := *query.Load()
	if q.Get("prefix") != "own/" || q.Get("maxResults") != "1000" || q.Get("pageToken") != "" {
		t.Errorf("query %v, want prefix own/, maxResults 1000, no pageToken", q)
	}
	if f := q.Get("fields"); !strings.Contains(f, "items(") || !strings.Contains(f, "name") || !strings.Contains(f, "updated") {
		t.Errorf("fields %q, want the items' names and dates", f)
	}
	want := map[string]time.Time{
		"own/p1/ownership-challenge.txt": time.Date(2026, 6, 1, 12, 0, 0, 250e6, time.UTC),
		"own/p2/ownership-challenge.txt": time.Date(2026, 6, 1, 12, 0, 1, 0, time.UTC),
	}
	checkFirstPage(t, l, want)
	if !l.Covers("own/p1/x") || l.Covers("own/p3/ownership-challenge.txt") {
		t.Error("the page covers what it does not reach, or not what it holds")
	}
}

// TestGCSListBucketMissing: a listing of a bucket that is not there is
// Permanent, and says so.
func TestGCSListBucketMissing(t *testing.T) {
	t.Parallel()
	b := setupGCS(t, GCSOptions{})
	_, err := b.gcs.List(t.Context(), Location{Scheme: "gs", Bucket: "nobucket", Key: "own/"})
	e := requireError(t, err, Permanent)
	if e.Permission != "" {
		t.Errorf("permission = %q", e.Permission)
	}
	if !strings.HasPrefix(err.Error(), "list gs://nobucket/own/: bucket does not exist: HTTP 404") {
		t.Errorf("err = %q", err)
	}
	if got := b.observed.list(); fmt.Sprint(got) != "[list permanent_error]" {
		t.Errorf("observed %q", got)
	}
}

// TestGCSListDeniedNamesObjectsList: a listing GCS refuses names the
// permission it needs, and the identity GCS named.
func TestGCSListDeniedNamesObjectsList(t *testing.T) {
	t.Parallel()
	const msg = "sa@p.iam.gserviceaccount.com does not have storage.objects.list access to the Google Cloud Storage bucket."
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `{"error":{"code":403,"message":%q,"errors":[{"message":%[1]q,"domain":"global","reason":"forbidden"}]}}`, msg)
	}))
	t.Cleanup(srv.Close)
	b := setupGCSServer(t, srv.URL, GCSOptions{})
	_, err := b.gcs.List(t.Context(), gcsLoc("own/"))
	e := requireError(t, err, Permanent)
	if e.Permission != "storage.objects.list" || e.Principal != "sa@p.iam.gserviceaccount.com" {
		t.Fatalf("permission %q, principal %q, want storage.objects.list of sa@p.iam.gserviceaccount.com: %v", e.Permission, e.Principal, err)
	}
	if want := "list gs://" + testBucket + "/own/: access denied: the listing identity sa@p.iam.gserviceaccount.com needs storage.objects.list: HTTP 403 forbidden: " + msg; err.Error() != want {
		t.Errorf("err = %q\nwant %q", err, want)
	}
	if n := b.requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	if got := b.observed.list(); fmt.Sprint(got) != "[list denied]" {
		t.Errorf("observed %q", got)
	}
}

// TestGCSListUnavailable: a listing storage fails is Transient, as a read
// would be.
func TestGCSListUnavailable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":{"code":503,"message":"Backend Error","errors":[{"reason":"backendError"}]}}`)
	}))
	t.Cleanup(srv.Close)
	b := setupGCSServer(t, srv.URL, GCSOptions{MaxAttempts: 1})
	_, err := b.gcs.List(t.Context(), gcsLoc("own/"))
	requireError(t, err, Transient)
	if !strings.HasPrefix(err.Error(), "list gs://"+testBucket+"/own/: storage unavailable: HTTP 503 backendError") {
		t.Errorf("err = %q", err)
	}
}

// TestGCSListInvalidLocation: a listing needs a bucket, not a prefix.
func TestGCSListInvalidLocation(t *testing.T) {
	t.Parallel()
	b := setupGCS(t, GCSOptions{})
	_, err := b.gcs.List(t.Context(), Location{Scheme: "gs", Key: "own/"})
	requireError(t, err, Permanent)
	if !strings.Contains(err.Error(), "invalid location: empty bucket") {
		t.Errorf("err = %q", err)
	}
}
