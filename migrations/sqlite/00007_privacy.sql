-- +goose Up
-- The record of every deletion of history: retention runs (per shop and cutoff) and erasures of a
-- buyer on request, with what each tier lost. index_pending marks a deletion whose search index part
-- is still owed (the process that ran it had no index open).
CREATE TABLE data_deletions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  shop_id BIGINT NOT NULL,
  kind VARCHAR(16) NOT NULL,
  subject VARCHAR(64) NOT NULL DEFAULT '',
  reason VARCHAR(512) NOT NULL DEFAULT '',
  cutoff DATETIME NULL,
  requested_by VARCHAR(64) NOT NULL,
  state VARCHAR(16) NOT NULL,
  hot_messages BIGINT NOT NULL DEFAULT 0,
  warm_messages BIGINT NOT NULL DEFAULT 0,
  cold_messages BIGINT NOT NULL DEFAULT 0,
  cold_segments BIGINT NOT NULL DEFAULT 0,
  index_documents BIGINT NOT NULL DEFAULT 0,
  index_pending BOOLEAN NOT NULL DEFAULT FALSE,
  blobs BIGINT NOT NULL DEFAULT 0,
  sessions BIGINT NOT NULL DEFAULT 0,
  error TEXT NULL,
  started_at DATETIME NOT NULL,
  finished_at DATETIME NULL
);
CREATE INDEX ix_data_deletions_shop ON data_deletions (shop_id, started_at);
CREATE INDEX ix_data_deletions_pending ON data_deletions (index_pending);

-- Who exported which conversation or session, when, in which format, and how many messages.
CREATE TABLE data_exports (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  shop_id BIGINT NOT NULL,
  staff_id BIGINT NOT NULL,
  subject VARCHAR(64) NOT NULL,
  format VARCHAR(8) NOT NULL,
  state VARCHAR(16) NOT NULL,
  messages BIGINT NOT NULL DEFAULT 0,
  created_at DATETIME NOT NULL,
  finished_at DATETIME NULL
);
CREATE INDEX ix_data_exports_shop ON data_exports (shop_id, created_at);

-- +goose Down
DROP TABLE data_exports;
DROP TABLE data_deletions;
