package input

import (
	"io"
	"strings"
	"testing"
)

// TestZoneNameIgnored: zone_name, the column plan writes for people, is
// accepted and ignored in CSV and JSONL.
func TestZoneNameIgnored(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"zone_name,zone_id,account_id,destination_conf\nshop.example.com,0123456789abcdef0123456789abcdef,,https://logs.example.com/a\n",
		`{"zone_id":"0123456789abcdef0123456789abcdef","destination_conf":"https://logs.example.com/a","zone_name":"shop.example.com"}` + "\n",
	} {
		r := NewReader(strings.NewReader(in), Options{})
		row, err := r.Next()
		if err != nil || row.ScopeID != "0123456789abcdef0123456789abcdef" || row.Conf.Raw != "https://logs.example.com/a" || row.Extra != nil {
			t.Fatalf("%q: %+v %v", in, row, err)
		}
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("%q: then %v", in, err)
		}
	}
}
