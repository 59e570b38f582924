-- memory_resources 003: monthly partitions, retention and expiry functions. Idempotent.
--
-- flow_run_history (by created_at) and audit_log (by occurred_at) get one partition per
-- UTC month, named <table>_pYYYY_MM, plus a <table>_default partition for rows outside
-- every month partition. No cron is needed: the store calls memory_create_partitions()
-- on connect and when the month changes; this file calls it once for psql users.
-- Retention drops whole partitions: SELECT * FROM memory_drop_partitions(now() - interval '90 days').
-- The functions run with the search_path they were created with: the schema of the tables
-- (then public, where extensions usually live). It is normalised first so that psql and the
-- migration runner give the functions the same setting.

SELECT set_config(
    'search_path',
    CASE WHEN current_schema() = 'public' THEN 'public'
         ELSE quote_ident(current_schema()) || ', public' END,
    false
) AS search_path;

CREATE OR REPLACE FUNCTION memory_create_month_partition(
    parent text, key_column text, month_start timestamptz
) RETURNS text
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    sch      text        := current_schema();
    lo       timestamptz := date_trunc('month', month_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi       timestamptz := (date_trunc('month', month_start AT TIME ZONE 'UTC')
                             + interval '1 month') AT TIME ZONE 'UTC';
    part     text        := parent || '_p' || to_char(lo AT TIME ZONE 'UTC', 'YYYY_MM');
    dflt     text        := parent || '_default';
    has_rows boolean     := false;
BEGIN
    IF to_regclass(format('%I.%I', sch, part)) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    IF to_regclass(format('%I.%I', sch, dflt)) IS NOT NULL THEN
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.%I WHERE %I >= $1 AND %I < $2)',
                       sch, dflt, key_column, key_column)
            INTO has_rows USING lo, hi;
    END IF;
    IF has_rows THEN
        -- Rows of this month already sit in the default partition: move them first,
        -- otherwise PostgreSQL refuses the new partition.
        EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       sch, part, sch, parent);
        EXECUTE format('WITH moved AS (DELETE FROM %I.%I WHERE %I >= $1 AND %I < $2 RETURNING *) '
                       'INSERT INTO %I.%I SELECT * FROM moved',
                       sch, dflt, key_column, key_column, sch, part)
            USING lo, hi;
        EXECUTE format('ALTER TABLE %I.%I ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                       sch, parent, sch, part, lo, hi);
    ELSE
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES FROM (%L) TO (%L)',
                       sch, part, sch, parent, lo, hi);
    END IF;
    RETURN part;
END
$fn$;

CREATE OR REPLACE FUNCTION memory_create_partitions(
    start_at timestamptz DEFAULT now(), months_ahead integer DEFAULT 3
) RETURNS SETOF text
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    sch     text := current_schema();
    first   timestamp := date_trunc('month', start_at AT TIME ZONE 'UTC');
    spec    record;
    created text;
BEGIN
    IF months_ahead < 0 OR months_ahead > 240 THEN
        RAISE EXCEPTION 'months_ahead must be between 0 and 240, got %', months_ahead
            USING ERRCODE = '22023';
    END IF;
    -- Serialise concurrent callers (two stores connecting at once).
    PERFORM pg_advisory_xact_lock(hashtext('memory_resources.partitions.' || sch));
    FOR spec IN SELECT * FROM (VALUES ('flow_run_history', 'created_at'),
                                      ('audit_log', 'occurred_at')) AS t(parent, key_column)
    LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I.%I PARTITION OF %I.%I DEFAULT',
                       sch, spec.parent || '_default', sch, spec.parent);
        FOR i IN 0..months_ahead LOOP
            created := memory_create_month_partition(
                spec.parent, spec.key_column,
                (first + make_interval(months => i)) AT TIME ZONE 'UTC');
            IF created IS NOT NULL THEN
                RETURN NEXT created;
            END IF;
        END LOOP;
    END LOOP;
END
$fn$;

CREATE OR REPLACE FUNCTION memory_drop_partitions(older_than timestamptz)
RETURNS SETOF text
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    sch   text := current_schema();
    part  record;
    upper timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('memory_resources.partitions.' || sch));
    FOR part IN
        SELECT child.relname AS name, parent.relname AS parent
        FROM pg_inherits i
        JOIN pg_class child ON child.oid = i.inhrelid
        JOIN pg_class parent ON parent.oid = i.inhparent
        JOIN pg_namespace n ON n.oid = parent.relnamespace
        WHERE n.nspname = sch
          AND parent.relname IN ('flow_run_history', 'audit_log')
          AND child.relname ~ '_p[0-9]{4}_[0-9]{2}$'
        ORDER BY child.relname
    LOOP
        upper := (to_timestamp(right(part.name, 7), 'YYYY_MM')::timestamp AT TIME ZONE 'UTC'
                  + interval '1 month');
        -- Drop only partitions whose whole month lies before the cut-off.
        IF upper <= older_than THEN
            EXECUTE format('DROP TABLE %I.%I', sch, part.name);
            RETURN NEXT part.name;
        END IF;
    END LOOP;
    -- Outliers in the default partitions are deleted row by row.
    IF to_regclass(format('%I.%I', sch, 'flow_run_history_default')) IS NOT NULL THEN
        DELETE FROM flow_run_history_default WHERE created_at < older_than;
    END IF;
    IF to_regclass(format('%I.%I', sch, 'audit_log_default')) IS NOT NULL THEN
        DELETE FROM audit_log_default WHERE occurred_at < older_than;
    END IF;
    -- Forget the partition keys of runs whose rows are gone.
    DELETE FROM flow_run_history_keys k
    WHERE k.created_at < older_than
      AND NOT EXISTS (SELECT 1 FROM flow_run_history h
                      WHERE h.flow_id = k.flow_id AND h.run_id = k.run_id
                        AND h.created_at = k.created_at);
END
$fn$;

CREATE OR REPLACE FUNCTION memory_purge_expired_context(at_time timestamptz DEFAULT now())
RETURNS integer
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    purged integer;
BEGIN
    WITH expired AS (
        DELETE FROM memory_context WHERE expires_at <= at_time RETURNING context_id
    ), events AS (
        DELETE FROM memory_events e USING expired x WHERE e.context_id = x.context_id
    )
    SELECT count(*) INTO purged FROM expired;
    RETURN purged;
END
$fn$;

SELECT count(*) AS partitions_created FROM memory_create_partitions(now(), 3);
