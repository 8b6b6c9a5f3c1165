package migrations

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// OpenSQLite opens (creating if needed) the embedded warm store at path and migrates it. SQLite has
// one writer: the pool holds a single connection so writers queue in Go instead of failing busy.
func OpenSQLite(ctx context.Context, path string) (*gorm.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	dsn := path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(0)"
	db, err := gorm.Open(sqlite.Open(dsn), gormConfig())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	sqlDB.SetMaxOpenConns(1)
	if _, err := Up(ctx, sqlDB, SQLite); err != nil {
		return nil, err
	}
	return db, nil
}

// OpenMySQL opens the MySQL/MariaDB warm store at dsn (go-sql-driver syntax) and migrates it.
// parseTime and UTC are forced so that times round-trip exactly.
func OpenMySQL(ctx context.Context, dsn string) (*gorm.DB, error) {
	// interpolateParams: the driver otherwise prepares, executes and closes a statement for every
	// query with arguments, three round trips where one does (safe with utf8mb4).
	dsn = withParams(dsn, "parseTime=true&loc=UTC&charset=utf8mb4&multiStatements=true&interpolateParams=true")
	db, err := gorm.Open(mysql.Open(dsn), gormConfig())
	if err != nil {
		return nil, fmt.Errorf("open mysql: %w", err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	sqlDB.SetMaxOpenConns(64)
	sqlDB.SetMaxIdleConns(64)
	sqlDB.SetConnMaxLifetime(30 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pingCtx); err != nil {
		return nil, fmt.Errorf("mysql unreachable: %w", err)
	}
	if _, err := Up(ctx, sqlDB, MySQL); err != nil {
		return nil, err
	}
	return db, nil
}

func withParams(dsn, params string) string {
	for i := len(dsn) - 1; i >= 0; i-- {
		if dsn[i] == '?' {
			return dsn + "&" + params
		}
		if dsn[i] == '/' {
			break
		}
	}
	return dsn + "?" + params
}

func gormConfig() *gorm.Config {
	return &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		NowFunc:                func() time.Time { return time.Now().UTC() },
		TranslateError:         true,
	}
}
