package migrations_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/glebarez/sqlite"
	_ "github.com/go-sql-driver/mysql" // the MariaDB driver
	"gorm.io/gorm"

	"github.com/shopdesk/shopdesk/migrations"
	"github.com/shopdesk/shopdesk/migrations/testdb"
)

var tables = []string{"shops", "staff", "buyers", "conversations", "service_sessions", "messages",
	"unread_counters", "unread_totals", "secrets", "routing_versions", "routing_drafts", "routing_active", "routing_audit",
	"routing_schedules", "routing_traces", "routing_shadow", "cold_segments", "cold_segment_ranges", "search_cursors", "job_runs",
	"data_deletions", "data_exports"}

// upTwice applies the migrations to an empty database twice and checks the version and tables.
func upTwice(t *testing.T, db *sql.DB, dialect string, tableExists func(name string) bool) {
	t.Helper()
	ctx := context.Background()
	v1, err := migrations.Up(ctx, db, dialect)
	if err != nil {
		t.Fatalf("first Up: %v", err)
	}
	v2, err := migrations.Up(ctx, db, dialect)
	if err != nil {
		t.Fatalf("second Up: %v", err)
	}
	if v1 <= 0 || v2 != v1 {
		t.Fatalf("versions after Up: %d then %d", v1, v2)
	}
	cur, latest, err := migrations.Version(ctx, db, dialect)
	if err != nil {
		t.Fatal(err)
	}
	if cur != latest || latest != v1 {
		t.Fatalf("Version: current %d, latest %d, Up returned %d", cur, latest, v1)
	}
	for _, name := range tables {
		if !tableExists(name) {
			t.Errorf("table %s missing after Up", name)
		}
	}
}

func TestUpSQLite(t *testing.T) {
	t.Parallel()
	gdb, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "fresh.db")), &gorm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	db, err := gdb.DB()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	upTwice(t, db, migrations.SQLite, func(name string) bool {
		var n int
		err := db.QueryRow("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?", name).Scan(&n)
		return err == nil && n == 1
	})
}

func TestUpMySQL(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("mysql", testdb.MySQLDatabase(t)+"?multiStatements=true&parseTime=true")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	upTwice(t, db, migrations.MySQL, func(name string) bool {
		var n int
		err := db.QueryRow("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?", name).Scan(&n)
		return err == nil && n == 1
	})
}

// TestOpenMigratesAgain: opening an already migrated store (every node start) changes nothing.
func TestOpenMigratesAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shopdesk.db")
	for i := 0; i < 2; i++ {
		gdb, err := migrations.OpenSQLite(ctx, path)
		if err != nil {
			t.Fatalf("open %d: %v", i+1, err)
		}
		db, _ := gdb.DB()
		cur, latest, err := migrations.Version(ctx, db, migrations.SQLite)
		db.Close()
		if err != nil || cur != latest || cur <= 0 {
			t.Fatalf("open %d: version %d of %d, %v", i+1, cur, latest, err)
		}
	}
	dsn := testdb.MySQLDatabase(t)
	for i := 0; i < 2; i++ {
		gdb, err := migrations.OpenMySQL(ctx, dsn)
		if err != nil {
			t.Fatalf("open MySQL %d: %v", i+1, err)
		}
		db, _ := gdb.DB()
		cur, latest, err := migrations.Version(ctx, db, migrations.MySQL)
		db.Close()
		if err != nil || cur != latest || cur <= 0 {
			t.Fatalf("open MySQL %d: version %d of %d, %v", i+1, cur, latest, err)
		}
	}
	if _, err := migrations.Up(ctx, nil, "postgres"); err == nil {
		t.Fatal("Up accepted an unknown dialect")
	}
}
