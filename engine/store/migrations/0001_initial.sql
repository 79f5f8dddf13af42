-- flowrunner's system of record on PostgreSQL, schema version 1.
-- Records (runs, dead letters) are flowrunner's own encoding (orjson, engine/records.py) in a
-- bytea column: written and read as they are, never parsed by the server; the fields the
-- console and the CLI filter on are columns beside them. Times are Unix seconds (float8), as
-- in the records themselves.

CREATE TABLE runs (
    run_id         text PRIMARY KEY,
    flow_id        text NOT NULL,
    status         text NOT NULL,
    key            text,
    correlation_id text,
    created_at     float8 NOT NULL,
    updated_at     float8 NOT NULL,
    due_at         float8,
    data           bytea NOT NULL
);
-- newest first, by each filter of the console and `flowrun runs` (a B-tree reads backwards)
CREATE INDEX runs_created ON runs (created_at);
CREATE INDEX runs_flow_created ON runs (flow_id, created_at);
CREATE INDEX runs_flow_status_created ON runs (flow_id, status, created_at);
CREATE INDEX runs_status_created ON runs (status, created_at);
CREATE INDEX runs_key_created ON runs (key, created_at) WHERE key IS NOT NULL;
CREATE INDEX runs_correlation_created ON runs (correlation_id, created_at);

-- Runs by flow and status, for the console and /metrics without counting millions of rows.
-- Writers only append changes (no hot counter row for concurrent transactions to queue on);
-- readers fold them into run_counts now and then (engine/store/postgres.py).
CREATE TABLE run_counts (
    flow_id text NOT NULL,
    status  text NOT NULL,
    n       bigint NOT NULL,
    PRIMARY KEY (flow_id, status)
);
CREATE TABLE run_count_changes (
    flow_id text NOT NULL,
    status  text NOT NULL,
    n       bigint NOT NULL
);

CREATE FUNCTION flowrun_runs_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO run_count_changes
        SELECT flow_id, status, count(*) FROM inserted GROUP BY flow_id, status;
    RETURN NULL;
END $$;

CREATE FUNCTION flowrun_runs_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO run_count_changes
        SELECT flow_id, status, sum(n) FROM (
            SELECT flow_id, status, -1 AS n FROM before
            UNION ALL SELECT flow_id, status, 1 FROM after) AS moved
        GROUP BY flow_id, status HAVING sum(n) <> 0;
    RETURN NULL;
END $$;

CREATE FUNCTION flowrun_runs_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO run_count_changes
        SELECT flow_id, status, -count(*) FROM deleted GROUP BY flow_id, status;
    RETURN NULL;
END $$;

CREATE TRIGGER runs_inserted AFTER INSERT ON runs REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION flowrun_runs_inserted();
CREATE TRIGGER runs_updated AFTER UPDATE ON runs REFERENCING OLD TABLE AS before
    NEW TABLE AS after FOR EACH STATEMENT EXECUTE FUNCTION flowrun_runs_updated();
CREATE TRIGGER runs_deleted AFTER DELETE ON runs REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION flowrun_runs_deleted();

-- A delivery id is claimed in the transaction that records its run: both or neither.
CREATE TABLE idempotency (
    scope      text NOT NULL,
    key        text NOT NULL,
    run_id     text NOT NULL,
    expires_at float8 NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_expires ON idempotency (expires_at);

CREATE TABLE dead_letters (
    id         text PRIMARY KEY,
    run_id     text NOT NULL,
    flow_id    text NOT NULL,
    step       text,
    message    text NOT NULL,
    status     text NOT NULL,
    created_at float8 NOT NULL,
    data       bytea NOT NULL
);
CREATE INDEX dead_letters_status_flow_created ON dead_letters (status, flow_id, created_at);
CREATE INDEX dead_letters_flow_created ON dead_letters (flow_id, created_at);
CREATE INDEX dead_letters_created ON dead_letters (created_at);

CREATE TABLE flow_versions (
    flow_id    text NOT NULL,
    version    text NOT NULL,
    text       text NOT NULL,
    created_at float8 NOT NULL,
    PRIMARY KEY (flow_id, version)
);

CREATE TABLE cursors (
    name  text PRIMARY KEY,
    value text NOT NULL
);

CREATE TABLE locks (
    name       text PRIMARY KEY,
    owner      text NOT NULL,
    expires_at float8 NOT NULL
);
