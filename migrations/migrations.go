// Package migrations holds the versioned SQL of the warm store, one folder per dialect, embedded
// into the binary and applied at start-up and by `shopdesk migrate`.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
)

//go:embed mysql/*.sql sqlite/*.sql
var files embed.FS

// Dialects this package has migrations for.
const (
	MySQL  = "mysql"
	SQLite = "sqlite"
)

// Up applies every migration not yet applied to db and returns the resulting version.
func Up(ctx context.Context, db *sql.DB, dialect string) (int64, error) {
	p, err := provider(db, dialect)
	if err != nil {
		return 0, err
	}
	if _, err := p.Up(ctx); err != nil {
		return 0, fmt.Errorf("migrate %s: %w", dialect, err)
	}
	return p.GetDBVersion(ctx)
}

// Version returns the schema version of db and the newest version this binary knows.
func Version(ctx context.Context, db *sql.DB, dialect string) (current, latest int64, err error) {
	p, err := provider(db, dialect)
	if err != nil {
		return 0, 0, err
	}
	if current, err = p.GetDBVersion(ctx); err != nil {
		return 0, 0, err
	}
	srcs := p.ListSources()
	if len(srcs) > 0 {
		latest = srcs[len(srcs)-1].Version
	}
	return current, latest, nil
}

func provider(db *sql.DB, dialect string) (*goose.Provider, error) {
	var d goose.Dialect
	switch dialect {
	case MySQL:
		d = goose.DialectMySQL
	case SQLite:
		d = goose.DialectSQLite3
	default:
		return nil, fmt.Errorf("migrations: unknown dialect %q", dialect)
	}
	sub, err := fs.Sub(files, dialect)
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(d, db, sub)
}
