-- +goose Up
-- The Store Scheduler's run log: the last runs of each job on any node, for `shopdesk archive status`
-- and GET /api/operator/jobs. The scheduler keeps about the last 100 runs per job.
CREATE TABLE job_runs (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  job VARCHAR(64) NOT NULL,
  node VARCHAR(64) NOT NULL,
  started_at DATETIME(6) NOT NULL,
  ended_at DATETIME(6) NOT NULL,
  processed BIGINT NOT NULL,
  moved BIGINT NOT NULL,
  deleted BIGINT NOT NULL,
  errors BIGINT NOT NULL,
  error TEXT NOT NULL,
  KEY ix_job_runs_job (job, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- +goose Down
DROP TABLE job_runs;
