package budget

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Default budget: Cloudflare's global API limit per user.
const (
	DefaultLimit  = 1200
	DefaultWindow = 5 * time.Minute
)

// Rate is a request budget: at most Limit requests in ANY window of length
// Window (a sliding window, as Cloudflare counts).
type Rate struct {
	Limit  int
	Window time.Duration
}

// ParseRate parses "<limit>/<window>", e.g. "1200/5m", "1100/300s",
// "120/10s"; a window of one unit may omit the 1 ("60/m"). Limit must be
// positive and Window at least one second.
func ParseRate(s string) (Rate, error) {
	limit, window, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Rate{}, fmt.Errorf("invalid rate %q: want <limit>/<window>, e.g. 1200/5m", s)
	}
	n, err := strconv.Atoi(strings.TrimSpace(limit))
	if err != nil || n <= 0 {
		return Rate{}, fmt.Errorf("invalid rate %q: limit %q is not a positive integer", s, limit)
	}
	window = strings.TrimSpace(window)
	if window != "" && (window[0] >= 'a' && window[0] <= 'z' || window[0] >= 'A' && window[0] <= 'Z') {
		window = "1" + window // "60/m"
	}
	w, err := time.ParseDuration(window)
	if err != nil {
		return Rate{}, fmt.Errorf("invalid rate %q: window %q is not a duration like 5m or 300s", s, window)
	}
	if w < time.Second {
		return Rate{}, fmt.Errorf("invalid rate %q: window %s is shorter than 1s", s, w)
	}
	return Rate{Limit: n, Window: w}, nil
}

// String formats r the way ParseRate reads it: "1200/5m", "120/10s",
// "10/1.5s".
func (r Rate) String() string {
	w := r.Window
	switch {
	case w <= 0:
		return fmt.Sprintf("%d/%s", r.Limit, w)
	case w%time.Hour == 0:
		return fmt.Sprintf("%d/%dh", r.Limit, w/time.Hour)
	case w%time.Minute == 0:
		return fmt.Sprintf("%d/%dm", r.Limit, w/time.Minute)
	case w%time.Second == 0:
		return fmt.Sprintf("%d/%ds", r.Limit, w/time.Second)
	}
	return fmt.Sprintf("%d/%s", r.Limit, w)
}

// Set parses s into r, so that *Rate is a flag.Value.
func (r *Rate) Set(s string) error {
	v, err := ParseRate(s)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

func (r Rate) validate() error {
	if r.Limit <= 0 {
		return fmt.Errorf("rate %s: limit must be positive", r)
	}
	if r.Window < time.Second {
		return fmt.Errorf("rate %s: window must be at least 1s", r)
	}
	return nil
}
