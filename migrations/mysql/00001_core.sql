-- +goose Up
CREATE TABLE shops (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  slug VARCHAR(64) NOT NULL,
  name VARCHAR(255) NOT NULL,
  time_zone VARCHAR(64) NOT NULL DEFAULT 'UTC',
  allowed_origins TEXT NOT NULL,
  buyer_secrets TEXT NOT NULL,
  settings TEXT NOT NULL,
  created_at DATETIME(6) NOT NULL,
  UNIQUE KEY uk_shops_slug (slug)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE staff (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  shop_id BIGINT NOT NULL,
  username VARCHAR(64) NOT NULL,
  display_name VARCHAR(255) NOT NULL,
  password_hash VARCHAR(255) NOT NULL,
  role VARCHAR(16) NOT NULL,
  `groups` TEXT NOT NULL,
  skills TEXT NOT NULL,
  capacity INT NOT NULL,
  status VARCHAR(16) NOT NULL,
  active BOOLEAN NOT NULL,
  created_at DATETIME(6) NOT NULL,
  UNIQUE KEY uk_staff_shop_username (shop_id, username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE buyers (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  shop_id BIGINT NOT NULL,
  external_id VARCHAR(128) NOT NULL,
  name VARCHAR(255) NOT NULL,
  tier VARCHAR(32) NOT NULL,
  tags TEXT NOT NULL,
  anonymous BOOLEAN NOT NULL,
  created_at DATETIME(6) NOT NULL,
  UNIQUE KEY uk_buyers_shop_external (shop_id, external_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE conversations (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  shop_id BIGINT NOT NULL,
  buyer_id BIGINT NOT NULL,
  last_seq BIGINT NOT NULL DEFAULT 0,
  context TEXT,
  created_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  UNIQUE KEY uk_conversations_shop_buyer (shop_id, buyer_id),
  KEY ix_conversations_shop_updated (shop_id, updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE service_sessions (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  conversation_id BIGINT NOT NULL,
  shop_id BIGINT NOT NULL,
  buyer_id BIGINT NOT NULL,
  kind VARCHAR(16) NOT NULL,
  context TEXT,
  state VARCHAR(16) NOT NULL,
  agent_id BIGINT NOT NULL DEFAULT 0,
  assigned_by VARCHAR(32) NOT NULL DEFAULT '',
  first_seq BIGINT NOT NULL DEFAULT 0,
  opened_at DATETIME(6) NOT NULL,
  assigned_at DATETIME(6) NULL,
  first_response_at DATETIME(6) NULL,
  last_activity_at DATETIME(6) NOT NULL,
  closed_at DATETIME(6) NULL,
  closed_by VARCHAR(32) NOT NULL DEFAULT '',
  outcome VARCHAR(64) NOT NULL DEFAULT '',
  open_key BIGINT NULL,
  UNIQUE KEY uk_sessions_open (open_key),
  KEY ix_sessions_conversation (conversation_id),
  KEY ix_sessions_shop_state (shop_id, state),
  KEY ix_sessions_agent (shop_id, agent_id),
  KEY ix_sessions_activity (state, last_activity_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE messages (
  conversation_id BIGINT NOT NULL,
  seq BIGINT NOT NULL,
  client_msg_id VARCHAR(64) NOT NULL,
  shop_id BIGINT NOT NULL,
  sender_kind VARCHAR(8) NOT NULL,
  sender_id BIGINT NOT NULL,
  body TEXT NOT NULL,
  created_at DATETIME(6) NOT NULL,
  PRIMARY KEY (conversation_id, seq),
  UNIQUE KEY uk_messages_client (conversation_id, client_msg_id),
  KEY ix_messages_shop_time (shop_id, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE unread_counters (
  reader VARCHAR(32) NOT NULL,
  conversation_id BIGINT NOT NULL,
  count BIGINT NOT NULL DEFAULT 0,
  last_seq BIGINT NOT NULL DEFAULT 0,
  read_seq BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (reader, conversation_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE unread_totals (
  reader VARCHAR(32) NOT NULL PRIMARY KEY,
  total BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE secrets (
  name VARCHAR(64) NOT NULL PRIMARY KEY,
  value VARCHAR(255) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE secrets;
DROP TABLE unread_totals;
DROP TABLE unread_counters;
DROP TABLE messages;
DROP TABLE service_sessions;
DROP TABLE conversations;
DROP TABLE buyers;
DROP TABLE staff;
DROP TABLE shops;
