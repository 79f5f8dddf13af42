-- flowrunner's PostgreSQL schema, version 2: the console's shared sessions and its throttle of
-- failed logins (engine/console/sql_state.py), so that several `flowrun serve` processes behind
-- a load balancer see one set. A session is kept by the SHA-256 of its id, never the id itself.

CREATE TABLE console_sessions (
    id         text PRIMARY KEY,
    user_name  text NOT NULL,
    role       text NOT NULL,
    source     text NOT NULL,
    csrf       text NOT NULL,
    expires_at float8 NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

CREATE TABLE console_failures (
    key text NOT NULL,
    at  float8 NOT NULL
);
CREATE INDEX console_failures_key_at ON console_failures (key, at);
CREATE INDEX console_failures_at ON console_failures (at);
