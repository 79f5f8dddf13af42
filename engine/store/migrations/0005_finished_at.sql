-- Schema version 5: when a run finished, for the console's activity charts (runs finished,
-- error rate and p95 latency per minute or hour of a window). finished_at is the terminal
-- save's updated_at and stays NULL while a run is active; a finished run saved again keeps it.
-- The index is partial, so intake's new runs never enter it, and covering, so a window is one
-- index-only scan grouped by bucket.

ALTER TABLE runs ADD COLUMN finished_at float8;
UPDATE runs SET finished_at = updated_at
    WHERE status IN ('succeeded', 'filtered', 'dropped', 'dead_lettered', 'failed',
                     'handed_off', 'split');
CREATE INDEX runs_finished ON runs (finished_at) INCLUDE (flow_id, status, created_at)
    WHERE finished_at IS NOT NULL;
