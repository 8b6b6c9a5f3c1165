package search

import (
	"context"
	"path/filepath"
)

// Config chooses and configures the search backend: Elasticsearch when Elastic.URLs is set,
// otherwise the embedded index under Dir.
type Config struct {
	Dir     string // the embedded index's directory, e.g. "./data/search"
	Elastic ElasticConfig
}

// Open returns the configured Index, ready to use: for Elasticsearch the template and the current
// month's index exist; for bleve the directory is created on first use.
func Open(ctx context.Context, cfg Config) (Index, error) {
	if len(cfg.Elastic.URLs) > 0 {
		return NewElastic(ctx, cfg.Elastic)
	}
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join("data", "search")
	}
	return OpenBleve(cfg.Dir)
}
