-- +goose Up
-- The manifest of the cold tier: one row per segment object (a shop's messages of one period, split
-- into parts), and the conversations and seq ranges each segment holds.
CREATE TABLE cold_segments (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  shop_id BIGINT NOT NULL,
  period VARCHAR(16) NOT NULL,
  part INT NOT NULL,
  generation INT NOT NULL DEFAULT 0,
  object_key VARCHAR(512) NOT NULL,
  message_count BIGINT NOT NULL,
  size_bytes BIGINT NOT NULL,
  checksum VARCHAR(80) NOT NULL,
  first_time DATETIME(6) NOT NULL,
  last_time DATETIME(6) NOT NULL,
  state VARCHAR(16) NOT NULL,
  created_at DATETIME(6) NOT NULL,
  rewritten_at DATETIME(6) NULL,
  UNIQUE KEY uk_cold_segments_part (shop_id, period, part),
  UNIQUE KEY uk_cold_segments_object (object_key),
  KEY ix_cold_segments_state (shop_id, state),
  KEY ix_cold_segments_time (shop_id, last_time)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE cold_segment_ranges (
  segment_id BIGINT NOT NULL,
  conversation_id BIGINT NOT NULL,
  first_seq BIGINT NOT NULL,
  last_seq BIGINT NOT NULL,
  message_count BIGINT NOT NULL,
  PRIMARY KEY (segment_id, conversation_id),
  KEY ix_cold_ranges_conversation (conversation_id, first_seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE cold_segment_ranges;
DROP TABLE cold_segments;
