-- memory_resources 005: fewer index entries per write. Idempotent.
--
-- Every audited write inserts an audit_log row and every history write a
-- flow_run_history_keys row, so each index on those two tables is paid on every write.
-- Two were redundant with a primary key in a better column order:
--   * audit_log: the primary key becomes (occurred_at, id). A backward scan of it serves
--     the newest-first reads, so audit_log_occurred_idx is dropped.
--   * flow_run_history_keys: the primary key becomes (run_id, flow_id). Lookups by run_id
--     alone use its prefix, so flow_run_history_keys_run_idx is dropped. Upserts keep
--     ON CONFLICT (flow_id, run_id): PostgreSQL infers the same unique index.
-- Re-applying 002 by hand re-creates the two indexes; re-applying this file drops them again.

DO $lean$
DECLARE
    pk record;
BEGIN
    FOR pk IN
        SELECT c.conrelid::regclass AS tbl, c.conname, t.wanted
        FROM (VALUES ('audit_log', 'PRIMARY KEY (occurred_at, id)', '(occurred_at, id)'),
                     ('flow_run_history_keys', 'PRIMARY KEY (run_id, flow_id)', '(run_id, flow_id)'))
             AS t(table_name, definition, wanted)
        JOIN pg_constraint c
          ON c.conrelid = to_regclass(quote_ident(current_schema()) || '.' || t.table_name)
         AND c.contype = 'p'
        WHERE pg_get_constraintdef(c.oid) <> t.definition
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I PRIMARY KEY %s',
                       pk.tbl, pk.conname, pk.conname, pk.wanted);
    END LOOP;
END
$lean$;

DROP INDEX IF EXISTS audit_log_occurred_idx;
DROP INDEX IF EXISTS flow_run_history_keys_run_idx;
