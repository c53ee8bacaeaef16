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

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
)

// listSAS is a container SAS that reads and lists, as a reader's would.
func (b *azureBundle) listSAS(t *testing.T) string {
	return b.sas(t, sas.ContainerPermissions{Read: true, List: true}, time.Now().Add(time.Hour))
}

// TestAzureList: one List Blobs page of the prefix, with the location's
// SAS, with each blob's date, and what it covers.
func TestAzureList(t *testing.T) {
	t.Parallel()
	b := setupAzure(t, AzureOptions{}) // no credential but the location's SAS
	before := time.Now().Truncate(time.Second)
	for _, k := range listedKeys {
		b.write(t, k, []byte("token"))
	}
	sas := b.listSAS(t)
	var c clockSamples
	l, err := b.reader.List(c.ctx(), b.loc("own/", sas))
	if err != nil {
		t.Fatal(err)
	}
	if n := b.requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	checkOwnListed(t, l, before)
	if got := b.observed.list(); fmt.Sprint(got) != "[list ok]" {
		t.Errorf("observed %q, want [list ok]", got)
	}
	// The listing's response tells the storage's clock, as a read's does.
	if got := c.list(); len(got) != 1 {
		t.Errorf("got %d clock samples, want 1", len(got))
	} else {
		checkSample(t, got[0], time.Second)
	}

	// The empty prefix is the whole container.
	l, err = b.reader.List(t.Context(), b.loc("", sas))
	if err != nil {
		t.Fatal(err)
	}
	checkAllListed(t, l)
}

// TestAzureListSASWithoutList: a SAS that does not grant list is not
// used; the configured account key lists instead, and without one the
// error names the permission, with no request made.
func TestAzureListSASWithoutList(t *testing.T) {
	t.Parallel()
	b := setupAzure(t, AzureOptions{})
	b.write(t, "own/p1/ownership-challenge.txt", []byte("token"))
	readOnly := b.readSAS(t)
	_, err := b.reader.List(t.Context(), b.loc("own/", readOnly))
	b.checkSASWithout(t, err, "Blob list (sp=l in the SAS, or Storage Blob Data Reader)",
		"list azure://"+b.container+"/own/: access denied: the listing identity needs Blob list (sp=l in the SAS, or Storage Blob Data Reader) "+
			"on container "+b.container+" of storage account devstoreaccount1: the SAS grants sp=r, without list (l), "+
			"and no account key or Entra ID credential is configured for storage account devstoreaccount1")
	assertNoAzureSecrets(t, err, readOnly)
	if got := b.observed.list(); fmt.Sprint(got) != "[list denied]" {
		t.Errorf("observed %q, want [list denied]", got)
	}

	// With the account key configured, the key lists.
	r := b.newReader(t, AzureOptions{AccountName: azuriteAccount, AccountKey: azuriteKey})
	l, err := r.List(t.Context(), b.loc("own/", readOnly))
	if err != nil || len(l.ModTimes) != 1 || !l.Complete {
		t.Fatalf("with the key: listed %+v, %v", l, err)
	}
}

// TestAzureListSASRefused: a SAS storage refuses (here: signed with
// another key) is a Permanent error naming the list permission, free of
// the SAS; with an account key configured, the key is tried next.
func TestAzureListSASRefused(t *testing.T) {
	t.Parallel()
	b := setupAzure(t, AzureOptions{})
	b.write(t, "own/p1/ownership-challenge.txt", []byte("token"))
	forged := forgeSig(t, b.listSAS(t))
	_, err := b.reader.List(t.Context(), b.loc("own/", forged))
	e := requireError(t, err, Permanent)
	if want := "Blob list (sp=l in the SAS, or Storage Blob Data Reader)"; e.Permission != want {
		t.Errorf("permission = %q, want %q", e.Permission, want)
	}
	if !strings.Contains(err.Error(), ": HTTP 403 Authenticat") && !strings.Contains(err.Error(), ": HTTP 403 AuthorizationFailure") {
		t.Errorf("err = %q", err)
	}
	assertNoAzureSecrets(t, err, forged)

	b.requests.Store(0)
	r := b.newReader(t, AzureOptions{AccountName: azuriteAccount, AccountKey: azuriteKey})
	l, err := r.List(t.Context(), b.loc("own/", forged))
	if err != nil || len(l.ModTimes) != 1 {
		t.Fatalf("with the key after a refused SAS: listed %+v, %v", l, err)
	}
	if n := b.requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2 (the SAS, then the key)", n)
	}
}

// TestAzureListContainerMissing: a listing of a container that is not
// there is Permanent, and says so.
func TestAzureListContainerMissing(t *testing.T) {
	t.Parallel()
	b := setupAzure(t, AzureOptions{AccountName: azuriteAccount, AccountKey: azuriteKey})
	loc := Location{Scheme: "azure", Bucket: "nocontainer", Key: "own/", Account: azuriteAccount}
	_, err := b.reader.List(t.Context(), loc)
	e := requireError(t, err, Permanent)
	if e.Permission != "" {
		t.Errorf("permission = %q", e.Permission)
	}
	if want := "list azure://nocontainer/own/: container does not exist: HTTP 404 ContainerNotFound: The specified container does not exist."; err.Error() != want {
		t.Errorf("err = %q\nwant %q", err, want)
	}
}

// TestAzureListFirstPageOnly: a listing is one request for up to 1000
// blobs of the prefix; a page with a NextMarker is the listing, up to its
// last name, not Complete.
func TestAzureListFirstPageOnly(t *testing.T) {
	t.Parallel()
	var query atomic.Pointer[url.Values]
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		q := r.URL.Query()
		query.Store(&q)
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprint(w, `<?xml version="1.0" encoding="utf-8"?>`+
			`<EnumerationResults ServiceEndpoint="http://127.0.0.1/account1/" ContainerName="c">`+
			`<Prefix>own/</Prefix><MaxResults>1000</MaxResults><Blobs>`+
			`<Blob><Name>own/p1/ownership-challenge.txt</Name><Properties><Last-Modified>Mon, 01 Jun 2026 12:00:00 GMT</Last-Modified></Properties></Blob>`+
			`<Blob><Name>own/p2/ownership-challenge.txt</Name><Properties><Last-Modified>Mon, 01 Jun 2026 12:00:01 GMT</Last-Modified></Properties></Blob>`+
			`</Blobs><NextMarker>2!next</NextMarker></EnumerationResults>`)
	}))
	t.Cleanup(srv.Close)
	r, err := NewAzure(t.Context(), AzureOptions{Endpoint: srv.URL + "/account1"})
	if err != nil {
		t.Fatal(err)
	}
	loc := Location{Scheme: "azure", Bucket: "c", Key: "own/", Account: "account1",
		SAS: "sv=2024-08-04&sr=c&sp=rl&se=2099-01-01T00:00:00Z&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"}
	l, err := r.List(t.Context(), loc)
	if err != nil {
		t.Fatal(err)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	q := *query.Load()
	if q.Get("comp") != "list" || q.Get("prefix") != "own/" || q.Get("maxresults") != "1000" || q.Get("marker") != "" {
		t.Errorf("query %v, want comp=list, prefix own/, maxresults 1000, no marker", q)
	}
	want := map[string]time.Time{
		"own/p1/ownership-challenge.txt": time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC),
		"own/p2/ownership-challenge.txt": time.Date(2026, 6, 1, 12, 0, 1, 0, time.UTC),
	}
	checkFirstPage(t, l, want)
}

// TestAzureListUnavailable: a listing storage fails is Transient, as a
// read would be, and free of the SAS.
func TestAzureListUnavailable(t *testing.T) {
	t.Parallel()
	endpoint, requests := azureErrorServer(t, http.StatusServiceUnavailable, "ServerBusy")
	r, err := NewAzure(t.Context(), AzureOptions{Endpoint: endpoint, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	sas := "sv=2024-08-04&sr=c&sp=rl&se=2099-01-01T00:00:00Z&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"
	_, err = r.List(t.Context(), Location{Scheme: "azure", Bucket: "c", Key: "own/", Account: "account1", SAS: sas})
	requireError(t, err, Transient)
	if want := "list azure://c/own/: throttled by storage: HTTP 503 ServerBusy: message for ServerBusy"; err.Error() != want {
		t.Errorf("err = %q\nwant %q", err, want)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	assertNoAzureSecrets(t, err, sas)
}
