-- memory_resources 007: partition maintenance without DDL on the application's path.
-- Idempotent.
--
-- Month partitions are created ahead by the owner (`memory-resources migrate` and the
-- scheduled `memory-resources maintain`), never by the application role; a row whose month
-- has no partition yet lands in <table>_default, so an insert never fails.
-- memory_maintain_partitions(start_at, months_ahead, max_moves) creates the default
-- partitions and the months from start_at's on, then gives every month that has rows in a
-- default partition its own partition (moving the rows), and reports what it did.
-- memory_create_month_partition (003) now locks the default partition while it moves rows,
-- so an insert racing the move waits instead of failing the ATTACH.

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
BEGIN
    partition_name := parent || '_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYY_MM');
    created := false;
    rows_moved := 0;
    IF to_regclass(format('%I.%I', sch, partition_name)) IS NOT NULL THEN
        RETURN;
    END IF;
    IF to_regclass(format('%I.%I', sch, dflt)) IS NOT NULL THEN
        -- Writers of this month wait here until the new partition is attached.
        EXECUTE format('LOCK TABLE %I.%I IN SHARE ROW EXCLUSIVE MODE', sch, dflt);
        EXECUTE format('SELECT count(*) FROM %I.%I WHERE %I >= $1 AND %I < $2',
                       sch, dflt, key_column, key_column)
            INTO rows_moved USING lo, hi;
    END IF;
    IF rows_moved > 0 THEN
        EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       sch, partition_name, sch, parent);
        EXECUTE format('WITH moved AS (DELETE FROM %I.%I WHERE %I >= $1 AND %I < $2 RETURNING *) '
                       'INSERT INTO %I.%I SELECT * FROM moved',
                       sch, dflt, key_column, key_column, sch, partition_name)
            USING lo, hi;
        EXECUTE format('ALTER TABLE %I.%I ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                       sch, parent, sch, partition_name, lo, hi);
    ELSE
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
                       sch, partition_name, sch, parent, lo, hi);
    END IF;
    created := true;
END
$fn$;

CREATE OR REPLACE FUNCTION memory_create_month_partition(
    parent text, key_column text, month_start timestamptz
) RETURNS text
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    made record;
BEGIN
    made := memory_attach_month(parent, key_column, month_start);
    RETURN CASE WHEN made.created THEN made.partition_name END;
END
$fn$;

CREATE OR REPLACE FUNCTION memory_maintain_partitions(
    start_at timestamptz DEFAULT now(), months_ahead integer DEFAULT 6,
    max_moves integer DEFAULT 120
) RETURNS TABLE (parent text, partition_name text, action text, row_count bigint)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    sch   text      := current_schema();
    first timestamp := date_trunc('month', start_at AT TIME ZONE 'UTC');
    spec  record;
    made  record;
    month timestamp;
    moves integer   := 0;
    left_over bigint;
BEGIN
    IF months_ahead < 0 OR months_ahead > 240 THEN
        RAISE EXCEPTION 'months_ahead must be between 0 and 240, got %', months_ahead
            USING ERRCODE = '22023';
    END IF;
    IF max_moves < 0 THEN
        RAISE EXCEPTION 'max_moves must be >= 0, got %', max_moves USING ERRCODE = '22023';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('memory_resources.partitions.' || sch));
    FOR spec IN SELECT * FROM (VALUES ('flow_run_history', 'created_at'),
                                      ('audit_log', 'occurred_at')) AS t(parent, key_column)
    LOOP
        parent := spec.parent;
        IF to_regclass(format('%I.%I', sch, spec.parent || '_default')) IS NULL THEN
            EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.%I DEFAULT',
                           sch, spec.parent || '_default', sch, spec.parent);
            partition_name := spec.parent || '_default';
            action := 'created';
            row_count := 0;
            RETURN NEXT;
        END IF;
        FOR i IN 0..months_ahead LOOP
            made := memory_attach_month(spec.parent, spec.key_column,
                                        (first + make_interval(months => i)) AT TIME ZONE 'UTC');
            IF made.created THEN
                partition_name := made.partition_name;
                action := CASE WHEN made.rows_moved > 0 THEN 'moved' ELSE 'created' END;
                row_count := made.rows_moved;
                RETURN NEXT;
            END IF;
        END LOOP;
        -- Months outside the window that have rows in the default partition (backfills,
        -- or a window that ran out because maintenance did not run).
        FOR month IN EXECUTE format(
            'SELECT DISTINCT date_trunc(''month'', %I AT TIME ZONE ''UTC'') AS m FROM %I.%I'
            ' ORDER BY m', spec.key_column, sch, spec.parent || '_default')
        LOOP
            EXIT WHEN moves >= max_moves;
            made := memory_attach_month(spec.parent, spec.key_column, month AT TIME ZONE 'UTC');
            IF made.created THEN
                moves := moves + 1;
                partition_name := made.partition_name;
                action := 'moved';
                row_count := made.rows_moved;
                RETURN NEXT;
            END IF;
        END LOOP;
        EXECUTE format('SELECT count(*) FROM %I.%I', sch, spec.parent || '_default')
            INTO left_over;
        partition_name := spec.parent || '_default';
        action := 'remaining';
        row_count := left_over;
        RETURN NEXT;
    END LOOP;
END
$fn$;

SELECT count(*) FILTER (WHERE action <> 'remaining') AS partitions_changed
FROM memory_maintain_partitions(now(), 6);
