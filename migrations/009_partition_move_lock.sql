-- memory_resources 009: creating a month partition never fails a concurrent write. Idempotent.
--
-- 007's memory_attach_month locked the default partition while it moved a month's rows out
-- of it. A writer of that month then waited on the default partition, having already routed
-- its row there, and failed after the ATTACH (SQLSTATE 23514, "violates partition
-- constraint"). Now the parent table is locked first, in SHARE ROW EXCLUSIVE mode: writers
-- of the table wait before routing and, once the partition exists, route to it; reads go
-- on. The lock is held for one partition's creation (and its move), never for long.

SELECT set_config(
    'search_path',
    CASE WHEN current_schema() = 'public' THEN 'public'
         ELSE quote_ident(current_schema()) || ', public' END,
    false
) AS search_path;

CREATE OR REPLACE FUNCTION memory_attach_month(
    parent text, key_column text, month_start timestamptz,
    OUT partition_name text, OUT created boolean, OUT rows_moved bigint
)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    sch  text        := current_schema();
    lo   timestamptz := date_trunc('month', month_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi   timestamptz := (date_trunc('month', month_start AT TIME ZONE 'UTC')
                         + interval '1 month') AT TIME ZONE 'UTC';
    dflt text        := parent || '_default';
    has_rows boolean := false;
BEGIN
    partition_name := parent || '_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYY_MM');
    created := false;
    rows_moved := 0;
    IF to_regclass(format('%I.%I', sch, partition_name)) IS NOT NULL THEN
        RETURN;
    END IF;
    -- Writers wait here, before routing; what they committed before is seen below.
    EXECUTE format('LOCK TABLE %I.%I IN SHARE ROW EXCLUSIVE MODE', sch, parent);
    IF to_regclass(format('%I.%I', sch, dflt)) IS NOT NULL THEN
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.%I WHERE %I >= $1 AND %I < $2)',
                       sch, dflt, key_column, key_column)
            INTO has_rows USING lo, hi;
    END IF;
    IF has_rows THEN
        EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       sch, partition_name, sch, parent);
        EXECUTE format('WITH moved AS (DELETE FROM %I.%I WHERE %I >= $1 AND %I < $2 RETURNING *) '
                       'INSERT INTO %I.%I SELECT * FROM moved',
                       sch, dflt, key_column, key_column, sch, partition_name)
            USING lo, hi;
        GET DIAGNOSTICS rows_moved = ROW_COUNT;
        EXECUTE format('ALTER TABLE %I.%I ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                       sch, parent, sch, partition_name, lo, hi);
    ELSE
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
                       sch, partition_name, sch, parent, lo, hi);
    END IF;
    created := true;
END
$fn$;
