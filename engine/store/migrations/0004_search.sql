-- Search, schema version 4: runs by a field of their message, dead letters by how they failed.
--
-- runs.payload holds the original message's body as jsonb when it is a JSON object or array of
-- at most 64 KiB (engine/store/postgres.py), written once when the run is recorded; a GIN index
-- with jsonb_path_ops answers containment (`payload @> '{"customer": {"email": "..."}}'`)
-- over every run. Retention's compaction clears it with the body. Runs recorded before this
-- version have none: payload search does not find them.
ALTER TABLE runs ADD COLUMN payload jsonb;
CREATE INDEX runs_payload ON runs USING gin (payload jsonb_path_ops);

-- The failure's classification (http, timeout, validation, ...) and the partner's HTTP status,
-- beside the record like the other filtered fields; existing entries are filled from theirs.
ALTER TABLE dead_letters ADD COLUMN kind text;
ALTER TABLE dead_letters ADD COLUMN http_status integer;
CREATE INDEX dead_letters_kind_created ON dead_letters (kind, created_at);

DO $$
DECLARE
    entry record;
    reason jsonb;
BEGIN
    FOR entry IN SELECT id, data FROM dead_letters LOOP
        BEGIN
            reason := convert_from(entry.data, 'UTF8')::jsonb -> 'reason';
            UPDATE dead_letters SET kind = reason ->> 'kind',
                http_status = CASE WHEN jsonb_typeof(reason -> 'status') = 'number'
                                   THEN (reason ->> 'status')::numeric::integer END
                WHERE id = entry.id;
        EXCEPTION WHEN others THEN
            NULL;  -- a record jsonb cannot hold (a NUL character): left unclassified
        END;
    END LOOP;
END $$;
