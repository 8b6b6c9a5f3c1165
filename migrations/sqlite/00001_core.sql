-- +goose Up
CREATE TABLE shops (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  slug VARCHAR(64) NOT NULL,
  name VARCHAR(255) NOT NULL,
  time_zone VARCHAR(64) NOT NULL DEFAULT 'UTC',
  allowed_origins TEXT NOT NULL,
  buyer_secrets TEXT NOT NULL,
  settings TEXT NOT NULL,
  created_at DATETIME NOT NULL,
  CONSTRAINT uk_shops_slug UNIQUE (slug)
);

CREATE TABLE staff (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  shop_id BIGINT NOT NULL,
  username VARCHAR(64) NOT NULL,
  display_name VARCHAR(255) NOT NULL,
  password_hash VARCHAR(255) NOT NULL,
  role VARCHAR(16) NOT NULL,
  "groups" TEXT NOT NULL,
  skills TEXT NOT NULL,
  capacity INT NOT NULL,
  status VARCHAR(16) NOT NULL,
  active BOOLEAN NOT NULL,
  created_at DATETIME NOT NULL,
  CONSTRAINT uk_staff_shop_username UNIQUE (shop_id, username)
);

CREATE TABLE buyers (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  shop_id BIGINT NOT NULL,
  external_id VARCHAR(128) NOT NULL,
  name VARCHAR(255) NOT NULL,
  tier VARCHAR(32) NOT NULL,
  tags TEXT NOT NULL,
  anonymous BOOLEAN NOT NULL,
  created_at DATETIME NOT NULL,
  CONSTRAINT uk_buyers_shop_external UNIQUE (shop_id, external_id)
);

CREATE TABLE conversations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  shop_id BIGINT NOT NULL,
  buyer_id BIGINT NOT NULL,
  last_seq BIGINT NOT NULL DEFAULT 0,
  context TEXT,
  created_at DATETIME NOT NULL,
  updated_at DATETIME NOT NULL,
  CONSTRAINT uk_conversations_shop_buyer UNIQUE (shop_id, buyer_id)
);

CREATE TABLE service_sessions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  conversation_id BIGINT NOT NULL,
  shop_id BIGINT NOT NULL,
  buyer_id BIGINT NOT NULL,
  kind VARCHAR(16) NOT NULL,
  context TEXT,
  state VARCHAR(16) NOT NULL,
  agent_id BIGINT NOT NULL DEFAULT 0,
  assigned_by VARCHAR(32) NOT NULL DEFAULT '',
  first_seq BIGINT NOT NULL DEFAULT 0,
  opened_at DATETIME NOT NULL,
  assigned_at DATETIME NULL,
  first_response_at DATETIME NULL,
  last_activity_at DATETIME NOT NULL,
  closed_at DATETIME NULL,
  closed_by VARCHAR(32) NOT NULL DEFAULT '',
  outcome VARCHAR(64) NOT NULL DEFAULT '',
  open_key BIGINT NULL,
  CONSTRAINT uk_sessions_open UNIQUE (open_key)
);

CREATE TABLE messages (
  conversation_id BIGINT NOT NULL,
  seq BIGINT NOT NULL,
  client_msg_id VARCHAR(64) NOT NULL,
  shop_id BIGINT NOT NULL,
  sender_kind VARCHAR(8) NOT NULL,
  sender_id BIGINT NOT NULL,
  body TEXT NOT NULL,
  created_at DATETIME NOT NULL,
  PRIMARY KEY (conversation_id, seq),
  CONSTRAINT uk_messages_client UNIQUE (conversation_id, client_msg_id)
);

CREATE TABLE unread_counters (
  reader VARCHAR(32) NOT NULL,
  conversation_id BIGINT NOT NULL,
  count BIGINT NOT NULL DEFAULT 0,
  last_seq BIGINT NOT NULL DEFAULT 0,
  read_seq BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (reader, conversation_id)
);

CREATE TABLE unread_totals (
  reader VARCHAR(32) NOT NULL PRIMARY KEY,
  total BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE secrets (
  name VARCHAR(64) NOT NULL PRIMARY KEY,
  value VARCHAR(255) NOT NULL
);

CREATE INDEX ix_conversations_shop_updated ON conversations (shop_id, updated_at);
CREATE INDEX ix_sessions_conversation ON service_sessions (conversation_id);
CREATE INDEX ix_sessions_shop_state ON service_sessions (shop_id, state);
CREATE INDEX ix_sessions_agent ON service_sessions (shop_id, agent_id);
CREATE INDEX ix_sessions_activity ON service_sessions (state, last_activity_at);
CREATE INDEX ix_messages_shop_time ON messages (shop_id, created_at);

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
