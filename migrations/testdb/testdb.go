// Package testdb gives tests their own SQLite file, MariaDB database and Redis key prefix, and drops
// them afterwards. Servers come from SHOPDESK_TEST_MYSQL_DSN (default root@tcp(127.0.0.1:3306)/) and
// SHOPDESK_TEST_REDIS_ADDR (default 127.0.0.1:6379). A missing server fails the test when CI=true and
// skips it with a clear message elsewhere.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the database/sql driver for the admin connection
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"github.com/shopdesk/shopdesk/migrations"
)

// MySQLDSN returns the server DSN tests use, without a database name.
func MySQLDSN() string {
	if v := os.Getenv("SHOPDESK_TEST_MYSQL_DSN"); v != "" {
		return v
	}
	return "root@tcp(127.0.0.1:3306)/"
}

// RedisAddr returns the Redis address tests use.
func RedisAddr() string {
	if v := os.Getenv("SHOPDESK_TEST_REDIS_ADDR"); v != "" {
		return v
	}
	return "127.0.0.1:6379"
}

// Unreachable fails the test under CI and skips it elsewhere; the skip message is counted by make test.
func Unreachable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s unreachable (CI=true, so this fails instead of skipping): %v", what, err)
	}
	t.Skipf("BACKEND-SKIP %s unreachable: %v", what, err)
}

// Name returns a random lower-case identifier with prefix, for databases and key prefixes.
func Name(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// SQLite returns a migrated SQLite warm store in a fresh temporary directory.
func SQLite(t testing.TB) *gorm.DB {
	t.Helper()
	db, err := migrations.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "shopdesk.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s, err := db.DB(); err == nil {
			s.Close()
		}
	})
	return db
}

// MySQLDatabase creates an empty database of its own and returns the DSN that selects it.
func MySQLDatabase(t testing.TB) string {
	t.Helper()
	base := MySQLDSN()
	admin, err := sql.Open("mysql", base)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = admin.PingContext(ctx)
		cancel()
	}
	if err != nil {
		Unreachable(t, "MariaDB at "+base, err)
	}
	name := Name("shopdesk_t_")
	if _, err := admin.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec("DROP DATABASE IF EXISTS " + name)
		admin.Close()
	})
	i := strings.LastIndex(base, "/")
	return base[:i+1] + name + base[i+1:]
}

// MySQL returns a migrated warm store in a database of its own on the test MariaDB.
func MySQL(t testing.TB) *gorm.DB {
	t.Helper()
	db, err := migrations.OpenMySQL(context.Background(), MySQLDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s, err := db.DB(); err == nil {
			s.Close()
		}
	})
	return db
}

// Redis returns a client of the test Redis and a key prefix of the test's own, whose keys are deleted
// afterwards. Tests never FLUSHDB: packages run in parallel on the same server.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: RedisAddr()})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	err := rdb.Ping(ctx).Err()
	cancel()
	if err != nil {
		Unreachable(t, "Redis at "+RedisAddr(), err)
	}
	prefix := Name("sdt") + ":"
	t.Cleanup(func() {
		DeletePrefix(context.Background(), rdb, prefix)
		rdb.Close()
	})
	return rdb, prefix
}

// DeletePrefix deletes every key that starts with prefix.
func DeletePrefix(ctx context.Context, rdb *redis.Client, prefix string) {
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 500 {
			rdb.Del(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		rdb.Del(ctx, keys...)
	}
}
