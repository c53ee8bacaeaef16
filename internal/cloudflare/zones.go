package cloudflare

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// EndpointZones is GET /zones, the list of zones.
const EndpointZones = "zones"

// MaxZonesPerPage is GET /zones' largest per_page: more is answered 50.
const MaxZonesPerPage = 50

// Zone is a zone as GET /zones lists it.
type Zone struct {
	// ID is the zone id, 32 hex characters.
	ID string
	// Name is the domain name.
	Name string
	// Status is initializing, pending, active or moved.
	Status string
	// AccountID is the id of the zone's account.
	AccountID string
}

// ZoneFilter selects zones (GET /zones' query). Empty fields do not filter.
type ZoneFilter struct {
	// AccountID is account.id.
	AccountID string
	// Status is status: initializing, pending, active or moved.
	Status string
	// Name is name: a domain, or an operator such as contains:,
	// starts_with: or ends_with: with its text.
	Name string
}

// ZonePage is one page of GET /zones.
type ZonePage struct {
	// Zones are the page's zones.
	Zones []Zone
	// Page is the page number, from 1.
	Page int
	// TotalPages is result_info.total_pages: follow pages up to it.
	TotalPages int
	// TotalCount is result_info.total_count.
	TotalCount int
}

// ListZones returns page (from 1) of the zones f selects, MaxZonesPerPage
// a page: GET /zones. Listing needs Zone Read; Cloudflare does not say
// whether a credential without it is refused or shown no zones, so a
// caller must treat an empty account as possibly unreadable.
func (c *Client) ListZones(ctx context.Context, f ZoneFilter, page int) (ZonePage, error) {
	q := url.Values{}
	switch {
	case page < 1:
		return ZonePage{}, invalidRequest(EndpointZones, fmt.Errorf("page must be at least 1, got %d", page))
	case f.AccountID != "" && !IsIdentifier(f.AccountID):
		return ZonePage{}, invalidRequest(EndpointZones, fmt.Errorf("account id %q is not 32 hex characters", truncate(f.AccountID, 40)))
	case len(f.Name) > 253:
		return ZonePage{}, invalidRequest(EndpointZones, fmt.Errorf("name filter is over 253 characters"))
	}
	switch f.Status {
	case "", "initializing", "pending", "active", "moved":
	default:
		return ZonePage{}, invalidRequest(EndpointZones, fmt.Errorf("status must be initializing, pending, active or moved, got %q", truncate(f.Status, 32)))
	}
	if f.AccountID != "" {
		q.Set("account.id", f.AccountID)
	}
	if f.Status != "" {
		q.Set("status", f.Status)
	}
	if f.Name != "" {
		q.Set("name", f.Name)
	}
	q.Set("page", strconv.Itoa(page))
	q.Set("per_page", strconv.Itoa(MaxZonesPerPage))
	cl := call{endpoint: EndpointZones, method: http.MethodGet, path: "/zones?" + q.Encode(), list: true}
	status, raw, info, err := c.doInfo(ctx, cl)
	if err != nil {
		return ZonePage{}, err
	}
	var rs []*struct {
		ID      string `json:"id"`
		Name    string `json:"name"`
		Status  string `json:"status"`
		Account struct {
			ID string `json:"id"`
		} `json:"account"`
	}
	if err := json.Unmarshal(raw, &rs); err != nil {
		return ZonePage{}, garbage(cl.endpoint, status, "result is not a list of zones", nil)
	}
	p := ZonePage{Page: page}
	for _, r := range rs {
		if r == nil {
			continue
		}
		if !IsIdentifier(r.ID) || r.Name == "" {
			return ZonePage{}, garbage(cl.endpoint, status, "zone without a 32-hex id or a name in result", nil)
		}
		p.Zones = append(p.Zones, Zone{ID: r.ID, Name: r.Name, Status: r.Status, AccountID: r.Account.ID})
	}
	if info == nil {
		// No result_info: one page, as far as Cloudflare told.
		p.TotalPages, p.TotalCount = page, len(p.Zones)
		return p, nil
	}
	p.TotalPages, p.TotalCount = int(info.TotalPages), int(info.TotalCount)
	return p, nil
}

// resultInfo is the pagination of a list answer.
type resultInfo struct {
	Page       float64 `json:"page"`
	PerPage    float64 `json:"per_page"`
	Count      float64 `json:"count"`
	TotalCount float64 `json:"total_count"`
	TotalPages float64 `json:"total_pages"`
}

// doInfo is do, also returning the envelope's result_info (nil when
// absent).
func (c *Client) doInfo(ctx context.Context, cl call) (int, json.RawMessage, *resultInfo, error) {
	cl.info = new(json.RawMessage)
	status, raw, err := c.do(ctx, cl)
	if err != nil {
		return status, nil, nil, err
	}
	if len(*cl.info) == 0 || string(*cl.info) == "null" {
		return status, raw, nil, nil
	}
	var ri resultInfo
	if err := json.Unmarshal(*cl.info, &ri); err != nil || ri.TotalPages < 0 {
		return status, nil, nil, garbage(cl.endpoint, status, "result_info is not pagination", nil)
	}
	return status, raw, &ri, nil
}

// Retry runs fn until it succeeds, fails other than transiently (Transient
// or RateLimited *APIError), or p's attempts or patience run out: the
// backoff of VerifyCredential, for callers outside the worker's queue (the
// plan command).
func Retry(ctx context.Context, p VerifyPolicy, fn func() error) error {
	return retryTransient(ctx, p.WithDefaults(), fn)
}
