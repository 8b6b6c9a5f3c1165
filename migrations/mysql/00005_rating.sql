-- +goose Up
-- A buyer's 1-5 satisfaction rating of a closed session, with an optional comment.
ALTER TABLE service_sessions
  ADD COLUMN rating INT NOT NULL DEFAULT 0,
  ADD COLUMN rating_comment VARCHAR(500) NOT NULL DEFAULT '',
  ADD COLUMN rated_at DATETIME(6) NULL;

-- +goose Down
ALTER TABLE service_sessions DROP COLUMN rated_at, DROP COLUMN rating_comment, DROP COLUMN rating;
