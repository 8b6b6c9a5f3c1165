-- +goose Up
-- Routing: rule-set versions (never edited), one draft per shop, the active-version pointer and its
-- audit log, schedules, explain traces and shadow results (both pruned after 30 days).
CREATE TABLE routing_versions (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  shop_id BIGINT NOT NULL,
  number INT NOT NULL,
  rule_set MEDIUMTEXT NOT NULL,
  author BIGINT NOT NULL,
  note VARCHAR(1000) NOT NULL DEFAULT '',
  created_at DATETIME(6) NOT NULL,
  UNIQUE KEY uk_routing_versions_shop_number (shop_id, number)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE routing_drafts (
  shop_id BIGINT NOT NULL PRIMARY KEY,
  rule_set MEDIUMTEXT NOT NULL,
  author BIGINT NOT NULL,
  shadow BOOLEAN NOT NULL DEFAULT FALSE,
  updated_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE routing_active (
  shop_id BIGINT NOT NULL PRIMARY KEY,
  version INT NOT NULL,
  updated_by BIGINT NOT NULL,
  updated_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE routing_audit (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  shop_id BIGINT NOT NULL,
  action VARCHAR(16) NOT NULL,
  version INT NOT NULL,
  previous INT NOT NULL,
  actor BIGINT NOT NULL,
  note VARCHAR(1000) NOT NULL DEFAULT '',
  created_at DATETIME(6) NOT NULL,
  KEY ix_routing_audit_shop (shop_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE routing_schedules (
  shop_id BIGINT NOT NULL PRIMARY KEY,
  schedules MEDIUMTEXT NOT NULL,
  updated_by BIGINT NOT NULL,
  updated_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE routing_traces (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  shop_id BIGINT NOT NULL,
  session_id BIGINT NOT NULL,
  created_at DATETIME(6) NOT NULL,
  version INT NOT NULL,
  rule_name VARCHAR(100) NOT NULL DEFAULT '',
  agent_id BIGINT NOT NULL DEFAULT 0,
  outcome VARCHAR(16) NOT NULL,
  trace MEDIUMTEXT NOT NULL,
  KEY ix_routing_traces_session (shop_id, session_id),
  KEY ix_routing_traces_time (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE routing_shadow (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  shop_id BIGINT NOT NULL,
  session_id BIGINT NOT NULL,
  created_at DATETIME(6) NOT NULL,
  live_version INT NOT NULL,
  live_rule VARCHAR(100) NOT NULL DEFAULT '',
  live_agent BIGINT NOT NULL DEFAULT 0,
  shadow_rule VARCHAR(100) NOT NULL DEFAULT '',
  shadow_agent BIGINT NOT NULL DEFAULT 0,
  differs BOOLEAN NOT NULL,
  KEY ix_routing_shadow_shop (shop_id, created_at),
  KEY ix_routing_shadow_time (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE routing_shadow;
DROP TABLE routing_traces;
DROP TABLE routing_schedules;
DROP TABLE routing_audit;
DROP TABLE routing_active;
DROP TABLE routing_drafts;
DROP TABLE routing_versions;
