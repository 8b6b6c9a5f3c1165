-- +goose Up
-- The Store Scheduler's run log: the last runs of each job on any node, for `shopdesk archive status`
-- and GET /api/operator/jobs. The scheduler keeps about the last 100 runs per job.
CREATE TABLE job_runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job VARCHAR(64) NOT NULL,
  node VARCHAR(64) NOT NULL,
  started_at DATETIME NOT NULL,
  ended_at DATETIME NOT NULL,
  processed BIGINT NOT NULL,
  moved BIGINT NOT NULL,
  deleted BIGINT NOT NULL,
  errors BIGINT NOT NULL,
  error TEXT NOT NULL
);
CREATE INDEX ix_job_runs_job ON job_runs (job, id);

-- +goose Down
DROP TABLE job_runs;
