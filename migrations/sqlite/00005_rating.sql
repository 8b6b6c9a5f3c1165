-- +goose Up
-- A buyer's 1-5 satisfaction rating of a closed session, with an optional comment.
ALTER TABLE service_sessions ADD COLUMN rating INTEGER NOT NULL DEFAULT 0;
ALTER TABLE service_sessions ADD COLUMN rating_comment VARCHAR(500) NOT NULL DEFAULT '';
ALTER TABLE service_sessions ADD COLUMN rated_at DATETIME NULL;

-- +goose Down
ALTER TABLE service_sessions DROP COLUMN rated_at;
ALTER TABLE service_sessions DROP COLUMN rating_comment;
ALTER TABLE service_sessions DROP COLUMN rating;
