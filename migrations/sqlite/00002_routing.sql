-- +goose Up
-- Routing: rule-set versions (never edited), one draft per shop, the active-version pointer and its
-- audit log, schedules, explain traces and shadow results (both pruned after 30 days).
CREATE TABLE routing_versions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  shop_id BIGINT NOT NULL,
  number INT NOT NULL,
  rule_set TEXT NOT NULL,
  author BIGINT NOT NULL,
  note VARCHAR(1000) NOT NULL DEFAULT '',
  created_at DATETIME NOT NULL,
  CONSTRAINT uk_routing_versions_shop_number UNIQUE (shop_id, number)
);

CREATE TABLE routing_drafts (
  shop_id BIGINT NOT NULL PRIMARY KEY,
  rule_set TEXT NOT NULL,
  author BIGINT NOT NULL,
  shadow BOOLEAN NOT NULL DEFAULT FALSE,
  updated_at DATETIME NOT NULL
);

CREATE TABLE routing_active (
  shop_id BIGINT NOT NULL PRIMARY KEY,
  version INT NOT NULL,
  updated_by BIGINT NOT NULL,
  updated_at DATETIME NOT NULL
);

CREATE TABLE routing_audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  shop_id BIGINT NOT NULL,
  action VARCHAR(16) NOT NULL,
  version INT NOT NULL,
  previous INT NOT NULL,
  actor BIGINT NOT NULL,
  note VARCHAR(1000) NOT NULL DEFAULT '',
  created_at DATETIME NOT NULL
);
CREATE INDEX ix_routing_audit_shop ON routing_audit (shop_id, id);

CREATE TABLE routing_schedules (
  shop_id BIGINT NOT NULL PRIMARY KEY,
  schedules TEXT NOT NULL,
  updated_by BIGINT NOT NULL,
  updated_at DATETIME NOT NULL
);

CREATE TABLE routing_traces (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  shop_id BIGINT NOT NULL,
  session_id BIGINT NOT NULL,
  created_at DATETIME NOT NULL,
  version INT NOT NULL,
  rule_name VARCHAR(100) NOT NULL DEFAULT '',
  agent_id BIGINT NOT NULL DEFAULT 0,
  outcome VARCHAR(16) NOT NULL,
  trace TEXT NOT NULL
);
CREATE INDEX ix_routing_traces_session ON routing_traces (shop_id, session_id);
CREATE INDEX ix_routing_traces_time ON routing_traces (created_at);

CREATE TABLE routing_shadow (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  shop_id BIGINT NOT NULL,
  session_id BIGINT NOT NULL,
  created_at DATETIME NOT NULL,
  live_version INT NOT NULL,
  live_rule VARCHAR(100) NOT NULL DEFAULT '',
  live_agent BIGINT NOT NULL DEFAULT 0,
  shadow_rule VARCHAR(100) NOT NULL DEFAULT '',
  shadow_agent BIGINT NOT NULL DEFAULT 0,
  differs BOOLEAN NOT NULL
);
CREATE INDEX ix_routing_shadow_shop ON routing_shadow (shop_id, created_at);
CREATE INDEX ix_routing_shadow_time ON routing_shadow (created_at);

-- +goose Down
DROP TABLE routing_shadow;
DROP TABLE routing_traces;
DROP TABLE routing_schedules;
DROP TABLE routing_audit;
DROP TABLE routing_active;
DROP TABLE routing_drafts;
DROP TABLE routing_versions;
