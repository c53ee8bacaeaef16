package cloudflare_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/logpush-onboard/logpush-onboard/internal/cloudflare"
	"github.com/logpush-onboard/logpush-onboard/internal/simulator"
)

// TestZonesContract: ListZones pages through GET /zones as the schema says
// (query parameters, result items, result_info), the simulator filters by
// account, status and name, and both answers to a credential without Zone
// Read reach the caller as such.
func TestZonesContract(t *testing.T) {
	t.Parallel()
	const other = "00000000000000000000000000000bbb"
	var zones []simulator.Zone
	for i := range 130 {
		st := "active"
		if i%10 == 3 {
			st = "pending"
		}
		acct := accountID
		if i%13 == 0 {
			acct = other
		}
		zones = append(zones, simulator.Zone{ID: fmt.Sprintf("%032x", 0x1000+i), Name: fmt.Sprintf("z%03d.example.com", i), Status: st, AccountID: acct})
	}
	client := func(mode string) (*cloudflare.Client, *contract) {
		sim, err := simulator.New(simulator.Config{Write: func(context.Context, string, string, []byte) error { return nil }, Zones: zones, ZoneRead: mode})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sim.Close)
		srv := httptest.NewServer(sim)
		t.Cleanup(srv.Close)
		ct := newContract(t, srv.URL+"/client/v4")
		c, err := cloudflare.New(cloudflare.Config{BaseURL: srv.URL + "/client/v4", Credentials: cloudflare.Credentials{APIToken: "zones-token"},
			HTTPClient: &http.Client{Transport: ct, Timeout: 10 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		return c, ct
	}
	ctx := context.Background()
	c, ct := client(simulator.ZoneReadAllowed)
	want := 0
	for _, z := range zones {
		if z.AccountID == accountID && z.Status == "active" {
			want++
		}
	}
	seen := map[string]bool{}
	pages := 0
	for page := 1; ; page++ {
		p, err := c.ListZones(ctx, cloudflare.ZoneFilter{AccountID: accountID, Status: "active"}, page)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, z := range p.Zones {
			if z.AccountID != accountID || z.Status != "active" || seen[z.ID] {
				t.Fatalf("page %d: %+v", page, z)
			}
			seen[z.ID] = true
		}
		if page >= p.TotalPages {
			if p.TotalCount != want {
				t.Fatalf("total_count %d, want %d", p.TotalCount, want)
			}
			break
		}
	}
	if len(seen) != want || pages != (want+49)/50 || pages < 2 {
		t.Fatalf("%d zones over %d pages, want %d", len(seen), pages, want)
	}
	if ct.answers["zones-get 200"] != pages {
		t.Fatalf("answers validated: %v", ct.answers)
	}
	p, err := c.ListZones(ctx, cloudflare.ZoneFilter{Name: "starts_with:z00"}, 1)
	if err != nil || len(p.Zones) != 10 {
		t.Fatalf("name filter: %d zones, %v", len(p.Zones), err)
	}
	// An account the credential cannot see: a success without zones.
	p, err = c.ListZones(ctx, cloudflare.ZoneFilter{AccountID: "0000000000000000000000000000dead"}, 1)
	if err != nil || len(p.Zones) != 0 || p.TotalPages != 0 {
		t.Fatalf("unknown account: %+v %v", p, err)
	}
	if _, err := c.ListZones(ctx, cloudflare.ZoneFilter{AccountID: "nothex"}, 1); !errors.Is(err, cloudflare.ErrInvalidRequest) {
		t.Fatalf("bad account id: %v", err)
	}

	// Without Zone Read: refused, or shown no zones.
	fc, fct := client(simulator.ZoneReadForbidden)
	_, err = fc.ListZones(ctx, cloudflare.ZoneFilter{AccountID: accountID}, 1)
	var ae *cloudflare.APIError
	if !errors.As(err, &ae) || ae.HTTPStatus != 403 || ae.Kind != cloudflare.Auth || fct.answers["zones-get 403"] != 1 {
		t.Fatalf("forbidden: %v (%v)", err, fct.answers)
	}
	ec, _ := client(simulator.ZoneReadEmpty)
	if p, err := ec.ListZones(ctx, cloudflare.ZoneFilter{AccountID: accountID}, 1); err != nil || len(p.Zones) != 0 {
		t.Fatalf("empty: %+v %v", p, err)
	}
}
