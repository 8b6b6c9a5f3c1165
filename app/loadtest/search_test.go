package loadtest

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// searchLineRE is the search scenario's summary line, field for field.
var searchLineRE = regexp.MustCompile(`^SEARCH docs=(\d+) index_per_sec=(\d+) query_p50_ms=(\d+\.\d\d) query_p99_ms=(\d+\.\d\d)$`)

// TestBenchSearch runs the search scenario small on the embedded index in a directory the test
// names: one well-formed line, every document counted, and the index left where it was asked for.
func TestBenchSearch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "index")
	code, lines, stderr := bench(t, "--scenario", "search", "--messages", "2000", "--queries", "200", "--dir", dir)
	t.Logf("stderr:\n%s", stderr)
	if code != 0 || len(lines) != 1 {
		t.Fatalf("exit %d, stdout %q", code, lines)
	}
	m := searchLineRE.FindStringSubmatch(lines[0])
	if m == nil {
		t.Fatalf("line does not match: %q", lines[0])
	}
	if m[1] != "2000" {
		t.Errorf("docs=%s, want 2000", m[1])
	}
	for i, name := range []string{"index_per_sec", "query_p50_ms", "query_p99_ms"} {
		if v, err := strconv.ParseFloat(m[i+2], 64); err != nil || v <= 0 {
			t.Errorf("%s=%s, want a positive number", name, m[i+2])
		}
	}
	if p50, _ := strconv.ParseFloat(m[3], 64); p50 > mustFloat(t, m[4]) {
		t.Errorf("p50 %s above p99 %s", m[3], m[4])
	}
	if !strings.Contains(stderr, "200 queries") {
		t.Errorf("stderr does not report the queries")
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) == 0 {
		t.Errorf("the index is not in --dir %s: %v", dir, err)
	}
}

func mustFloat(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestBenchSearchFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--scenario", "search", "--messages", "0"},
		{"--scenario", "search", "--queries", "-1"},
		{"--scenario", "search", "--dir", t.TempDir()}, // exists already
		{"--scenario", "search", "--dir", "x", "--es-url", "http://127.0.0.1:1"},
		{"--scenario", "search", "--buyers", "3"},
		{"--scenario", "search", "extra"},
		{"--scenario", "search", "--es-url", "http://10.1.2.3:9200"},
	} {
		if code, lines, stderr := bench(t, args...); code != 2 || lines[0] != "" || stderr == "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, lines, stderr)
		}
	}
}
