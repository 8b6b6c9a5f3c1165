-- +goose Up
-- How far the search index job has read each shop's warm messages.
CREATE TABLE search_cursors (
  shop_id BIGINT NOT NULL PRIMARY KEY,
  created_at DATETIME(6) NOT NULL,
  conversation_id BIGINT NOT NULL,
  seq BIGINT NOT NULL,
  updated_at DATETIME(6) NOT NULL
);

-- +goose Down
DROP TABLE search_cursors;
