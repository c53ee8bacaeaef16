package words

import "testing"

func TestPlural(t *testing.T) {
	for n, want := range map[int]string{0: "0 rows", 1: "1 row", 2: "2 rows"} {
		if got := Plural(n, "row"); got != want {
			t.Errorf("Plural(%d) = %q, want %q", n, got, want)
		}
	}
	if got := Plural(int64(1), "account"); got != "1 account" {
		t.Errorf("Plural(int64 1) = %q", got)
	}
}
