package crashpoint

import (
	"maps"
	"testing"
)

func TestParse(t *testing.T) {
	for spec, want := range map[string]map[string]int{
		"":                             {},
		"flush.after_insert":           {"flush.after_insert": 1},
		"archive.after_put@3":          {"archive.after_put": 3},
		" a@2 , b ,":                   {"a": 2, "b": 1},
		"index.after_bulk@1,flush.x@7": {"index.after_bulk": 1, "flush.x": 7},
	} {
		got, err := parse(spec)
		if err != nil || !maps.Equal(got, want) {
			t.Errorf("parse(%q) = %v, %v; want %v", spec, got, err, want)
		}
	}
	for _, bad := range []string{"a@0", "a@x", "a@", "@2", "a@-1"} {
		if _, err := parse(bad); err == nil {
			t.Errorf("parse(%q) accepted", bad)
		}
	}
}
