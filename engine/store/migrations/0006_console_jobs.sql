-- flowrunner's PostgreSQL schema, version 6: the console's bulk replay and discard jobs
-- (engine/console/jobs.py, engine/store/sql_jobs.py), so that every `flowrun serve` process
-- behind a load balancer answers for any job, and a job whose process died can be resumed.

CREATE TABLE console_jobs (
    id         text PRIMARY KEY,
    state      text NOT NULL,
    created_at float8 NOT NULL,
    updated_at float8 NOT NULL,
    data       text NOT NULL
);
CREATE INDEX console_jobs_created ON console_jobs (created_at);

CREATE TABLE console_job_entries (
    job_id   text NOT NULL,
    entry_id text NOT NULL,
    outcome  text NOT NULL,
    detail   text NOT NULL,
    PRIMARY KEY (job_id, entry_id)
);
