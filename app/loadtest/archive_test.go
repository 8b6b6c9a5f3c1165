package loadtest

import (
	"database/sql"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/shopdesk/shopdesk/migrations/testdb"
)

// archiveLineRE is the archive scenario's summary line, field for field.
var archiveLineRE = regexp.MustCompile(`^ARCHIVE flush_per_sec=(\d+) archive_per_sec=(\d+) delete_per_sec=(\d+) compression_ratio=(\d+\.\d\d) warm_page_p99_ms=(\d+\.\d\d) cold_page_p99_ms=(\d+\.\d\d) cold_page_cached_p99_ms=(\d+\.\d\d\d)$`)

// benchNameRE finds the database and key prefix a run announces on stderr.
var benchNameRE = regexp.MustCompile(`database (shopdesk_bench_[0-9a-f]+),`)

// TestBenchArchive runs the archive scenario small against the test MariaDB and Redis, with both
// cold stores: one well-formed line each, and the run's database and keys gone afterwards. The
// scenario itself fails (exit 1) unless every message went hot → warm → cold exactly once and every
// page read back the right 50 messages.
func TestBenchArchive(t *testing.T) {
	rdb, _ := testdb.Redis(t) // skips or fails, as every backend test does, when a server is missing
	testdb.MySQLDatabase(t)
	code, lines, stderr := bench(t, "--scenario", "archive", "--messages", "3000", "--per-conversation", "60",
		"--shops", "3", "--pages", "20", "--mysql-dsn", testdb.MySQLDSN(), "--redis-addr", testdb.RedisAddr())
	t.Logf("stderr:\n%s", stderr)
	if code != 0 || len(lines) != 2 {
		t.Fatalf("exit %d, stdout %q", code, lines)
	}
	for i, line := range lines {
		m := archiveLineRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("line %d does not match: %q", i, line)
		}
		for j, name := range []string{"flush_per_sec", "archive_per_sec", "delete_per_sec", "compression_ratio", "warm_page_p99_ms", "cold_page_p99_ms", "cold_page_cached_p99_ms"} {
			v, err := strconv.ParseFloat(m[j+1], 64)
			if err != nil || v <= 0 {
				t.Errorf("line %d: %s=%s, want a positive number", i, name, m[j+1])
			}
		}
		// JSON Lines of chat text compress well; a ratio near 1 would mean the size is measured wrong.
		if ratio, _ := strconv.ParseFloat(m[4], 64); ratio < 2 {
			t.Errorf("line %d: compression ratio %.2f", i, ratio)
		}
	}
	for _, want := range []string{"cold store local: pre-fill", "cold store s3: pre-fill", "flushed 3000 messages", "archived 3000 messages"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	names := benchNameRE.FindAllStringSubmatch(stderr, -1)
	if len(names) != 2 {
		t.Fatalf("want two runs' database names on stderr, got %q", names)
	}
	admin, err := sql.Open("mysql", testdb.MySQLDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, n := range names {
		var found string
		if err := admin.QueryRow("SHOW DATABASES LIKE '" + n[1] + "'").Scan(&found); err != sql.ErrNoRows {
			t.Errorf("database %s is still there (%v)", n[1], err)
		}
		if keys, err := rdb.Keys(t.Context(), n[1]+":*").Result(); err != nil || len(keys) != 0 {
			t.Errorf("%d Redis keys under %s: are left (%v)", len(keys), n[1], err)
		}
	}
}

func TestBenchArchiveFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--scenario", "archive", "--mysql-dsn", "", "--redis-addr", ""},
		{"--scenario=archive", "--mysql-dsn", "root@tcp(127.0.0.1:1)/", "--redis-addr", "127.0.0.1:1", "--blobs", "tape"},
		{"--scenario", "archive", "--mysql-dsn", "root@tcp(127.0.0.1:1)/", "--redis-addr", "127.0.0.1:1", "--per-conversation", "10"},
		{"--scenario", "archive", "--mysql-dsn", "root@tcp(127.0.0.1:1)/", "--redis-addr", "127.0.0.1:1", "--messages", "0"},
		{"--scenario", "archive", "--mysql-dsn", "not a dsn", "--redis-addr", "127.0.0.1:1"},
		{"--scenario", "archive", "--mysql-dsn", "root@tcp(127.0.0.1:1)/", "--redis-addr", "127.0.0.1:1", "--part-messages", "-1"},
		{"--scenario", "archive", "--addr", "http://127.0.0.1:8080"},
		{"--scenario", "archive", "--mysql-dsn", "root@tcp(10.1.2.3:3306)/", "--redis-addr", "127.0.0.1:1"},
		{"--scenario", "archive", "--mysql-dsn", "root@tcp(127.0.0.1:3306)/", "--redis-addr", "redis.example.com:6379"},
	} {
		if code, lines, stderr := bench(t, args...); code != 2 || lines[0] != "" || !strings.Contains(stderr, "bench") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, lines, stderr)
		}
	}
}
