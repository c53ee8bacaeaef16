package simulator

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// ZoneRead modes (Config.ZoneRead).
const (
	// ZoneReadAllowed lists the zones.
	ZoneReadAllowed = ""
	// ZoneReadEmpty answers success with no zones, as for a token scoped
	// to no zone.
	ZoneReadEmpty = "empty"
	// ZoneReadForbidden answers 403 code 9109, "Unauthorized to access
	// requested resource".
	ZoneReadForbidden = "forbidden"
)

// Zone statuses, the schema's enum.
var zoneStatuses = []string{"initializing", "pending", "active", "moved"}

// Zone is a zone GET /zones lists.
type Zone struct {
	// ID is the zone id, 32 hex characters.
	ID string
	// Name is the domain name.
	Name string
	// Status is initializing, pending, active or moved.
	Status string
	// AccountID is the id of the zone's account, 32 hex characters.
	AccountID string
}

// zoneResult is a zone as the schema's List Zones result item.
type zoneResult struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Status  string            `json:"status"`
	Paused  bool              `json:"paused"`
	Type    string            `json:"type"`
	Account map[string]string `json:"account"`
	Plan    map[string]string `json:"plan"`
}

// sortZones returns a copy of zs ordered by name, then id: the order pages
// are cut in.
func sortZones(zs []Zone) []Zone {
	out := slices.Clone(zs)
	slices.SortFunc(out, func(a, b Zone) int { return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.ID, b.ID)) })
	return out
}

// listZones answers GET /zones as Cloudflare documents it: filtered by
// account.id, status and name (exact, or with the contains:,
// starts_with: and ends_with: operators), ordered by name, cut in pages of
// per_page (5 to 50, default 20; more is answered 50) with result_info. A
// filter that matches nothing (an account the credential cannot see) is a
// success with no zones.
func (s *Simulator) listZones(w http.ResponseWriter, r *http.Request, _ credential) {
	switch s.cfg.ZoneRead {
	case ZoneReadForbidden:
		writeFailure(w, fail(http.StatusForbidden, message{Code: 9109, Message: "Unauthorized to access requested resource"}))
		return
	}
	q := r.URL.Query()
	bad := func(msg string) { writeFailure(w, fail(http.StatusBadRequest, message{Code: 1001, Message: msg})) }
	page, perPage := 1, 20
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			bad("page must be a number of at least 1")
			return
		}
		page = n
	}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 5 {
			bad("per_page must be a number from 5 to 50")
			return
		}
		perPage = min(n, 50)
	}
	status := q.Get("status")
	if status != "" && !slices.Contains(zoneStatuses, status) {
		bad("status must be one of " + strings.Join(zoneStatuses, ", "))
		return
	}
	account, name := q.Get("account.id"), q.Get("name")
	var match []Zone
	if s.cfg.ZoneRead != ZoneReadEmpty {
		for _, z := range s.zones {
			if (account == "" || strings.EqualFold(z.AccountID, account)) && (status == "" || z.Status == status) && nameMatches(z.Name, name) {
				match = append(match, z)
			}
		}
	}
	total := len(match)
	pages := (total + perPage - 1) / perPage
	lo := min((page-1)*perPage, total)
	hi := min(lo+perPage, total)
	result := make([]zoneResult, 0, hi-lo)
	for _, z := range match[lo:hi] {
		result = append(result, zoneResult{ID: z.ID, Name: z.Name, Status: z.Status, Type: "full",
			Account: map[string]string{"id": z.AccountID, "name": "account " + z.AccountID[:8]},
			Plan:    map[string]string{"id": "0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee", "name": "Free Website", "legacy_id": "free"}})
	}
	env := success(result)
	writeJSON(w, http.StatusOK, struct {
		envelope
		ResultInfo map[string]int `json:"result_info"`
	}{env, map[string]int{"page": page, "per_page": perPage, "count": len(result), "total_count": total, "total_pages": pages}})
}

// nameMatches applies GET /zones' name filter.
func nameMatches(name, filter string) bool {
	switch {
	case filter == "":
		return true
	case strings.HasPrefix(filter, "contains:"):
		return strings.Contains(name, strings.TrimPrefix(filter, "contains:"))
	case strings.HasPrefix(filter, "starts_with:"):
		return strings.HasPrefix(name, strings.TrimPrefix(filter, "starts_with:"))
	case strings.HasPrefix(filter, "ends_with:"):
		return strings.HasSuffix(name, strings.TrimPrefix(filter, "ends_with:"))
	}
	return name == filter
}

// AddJob stores a Logpush job for the zone or account ("zone" or
// "account", id) as if it had been created earlier, by the dashboard or
// Terraform: a test's or demo's starting state. It bypasses the job limit
// and the challenge; it returns the job's id.
func (s *Simulator) AddJob(scope, id, dataset, conf string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastJob++
	ds := dataset
	j := &job{ID: s.lastJob, DestinationConf: conf, Dataset: &ds}
	key := scopeKey(target{scope: scope, id: strings.ToLower(id)})
	s.jobs[key] = append(s.jobs[key], j)
	return j.ID
}

// RemoveJob deletes the job id of the zone or account ("zone" or
// "account", id), as the dashboard's delete does: a test's way to free a
// job slot; it reports whether the job was there.
func (s *Simulator) RemoveJob(scope, id string, jobID int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := scopeKey(target{scope: scope, id: strings.ToLower(id)})
	for i, j := range s.jobs[key] {
		if j.ID == jobID {
			s.jobs[key] = slices.Delete(s.jobs[key], i, i+1)
			return true
		}
	}
	return false
}
