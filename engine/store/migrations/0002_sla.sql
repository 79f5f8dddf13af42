-- Business SLAs (engine/sla), schema version 2: the due-set of runs with a deadline not yet met
-- or claimed, read by deadline by the sweep; and each breach, claimed once by its run id.

CREATE TABLE sla_due (
    run_id   text PRIMARY KEY,
    deadline float8 NOT NULL
);
CREATE INDEX sla_due_deadline ON sla_due (deadline);

CREATE TABLE sla_breaches (
    run_id      text PRIMARY KEY,
    flow_id     text NOT NULL,
    detected_at float8 NOT NULL,
    data        bytea NOT NULL
);
CREATE INDEX sla_breaches_detected ON sla_breaches (detected_at);
CREATE INDEX sla_breaches_flow_detected ON sla_breaches (flow_id, detected_at);
