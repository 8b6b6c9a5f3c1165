-- +goose Up
-- The manifest of the cold tier: one row per segment object (a shop's messages of one period, split
-- into parts), and the conversations and seq ranges each segment holds.
CREATE TABLE cold_segments (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  shop_id BIGINT NOT NULL,
  period VARCHAR(16) NOT NULL,
  part INT NOT NULL,
  generation INT NOT NULL DEFAULT 0,
  object_key VARCHAR(512) NOT NULL,
  message_count BIGINT NOT NULL,
  size_bytes BIGINT NOT NULL,
  checksum VARCHAR(80) NOT NULL,
  first_time DATETIME NOT NULL,
  last_time DATETIME NOT NULL,
  state VARCHAR(16) NOT NULL,
  created_at DATETIME NOT NULL,
  rewritten_at DATETIME NULL,
  CONSTRAINT uk_cold_segments_part UNIQUE (shop_id, period, part),
  CONSTRAINT uk_cold_segments_object UNIQUE (object_key)
);

CREATE TABLE cold_segment_ranges (
  segment_id BIGINT NOT NULL,
  conversation_id BIGINT NOT NULL,
  first_seq BIGINT NOT NULL,
  last_seq BIGINT NOT NULL,
  message_count BIGINT NOT NULL,
  PRIMARY KEY (segment_id, conversation_id)
);

CREATE INDEX ix_cold_segments_state ON cold_segments (shop_id, state);
CREATE INDEX ix_cold_segments_time ON cold_segments (shop_id, last_time);
CREATE INDEX ix_cold_ranges_conversation ON cold_segment_ranges (conversation_id, first_seq);

-- +goose Down
DROP TABLE cold_segment_ranges;
DROP TABLE cold_segments;
