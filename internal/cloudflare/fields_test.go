package cloudflare_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
)

// TestFieldsContract: Fields asks the schema's fields path of both scopes,
// the simulator answers the schema's object of names, and a dataset of the
// other scope is a Permanent 400.
func TestFieldsContract(t *testing.T) {
	t.Parallel()
	sim, err := simulator.New(simulator.Config{Write: func(context.Context, string, string, []byte) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	base := srv.URL + "/client/v4"
	ct := newContract(t, base)
	c, err := cloudflare.New(cloudflare.Config{BaseURL: base, Credentials: cloudflare.Credentials{APIToken: "fields-token"},
		HTTPClient: &http.Client{Transport: ct, Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	zone := cloudflare.Target{Scope: cloudflare.ScopeZone, ID: zoneID}
	account := cloudflare.Target{Scope: cloudflare.ScopeAccount, ID: accountID}
	fs, err := c.Fields(ctx, zone, "http_requests")
	if err != nil {
		t.Fatal(err)
	}
	if fs["RayID"] == "" || fs["ClientIP"] == "" || len(fs) != len(simulator.DatasetFields("zone", "http_requests")) {
		t.Fatalf("http_requests fields: %v", fs)
	}
	afs, err := c.Fields(ctx, account, "firewall_events")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := afs["ZoneName"]; !ok {
		t.Fatalf("account firewall_events lacks ZoneName: %v", afs)
	}
	_, err = c.Fields(ctx, account, "http_requests")
	var ae *cloudflare.APIError
	if !errors.As(err, &ae) || ae.HTTPStatus != 400 || ae.Kind != cloudflare.Permanent || ae.Endpoint != cloudflare.EndpointFields {
		t.Fatalf("http_requests of an account: %v", err)
	}
	// A dataset outside the schema's pattern is refused before any call.
	calls := ct.operations["get-zones-zone_id-logpush-datasets-dataset_id-fields"]
	if _, err := c.Fields(ctx, zone, "http/requests"); !errors.Is(err, cloudflare.ErrInvalidRequest) {
		t.Fatalf("bad dataset: %v", err)
	}
	if calls != 1 || ct.operations["get-zones-zone_id-logpush-datasets-dataset_id-fields"] != 1 ||
		ct.operations["get-accounts-account_id-logpush-datasets-dataset_id-fields"] != 2 {
		t.Fatalf("operations validated: %v", ct.operations)
	}
	if ct.answers["get-accounts-account_id-logpush-datasets-dataset_id-fields 400"] != 1 {
		t.Fatalf("the 400 was not validated: %v", ct.answers)
	}
}
