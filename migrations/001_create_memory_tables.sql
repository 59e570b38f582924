-- memory_resources 001: the core tables.
--
-- Idempotent: running it again changes nothing. Apply with
--   psql -d DB -v ON_ERROR_STOP=1 -f migrations/001_create_memory_tables.sql
-- Tables are created in the first schema of search_path (the migration runner sets it to
-- postgres_config["schema"]). flow_run_history and audit_log are range-partitioned by
-- month; their partitions are created by 003_add_memory_partitions.sql.

CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per flow run, upserted by (flow_id, run_id). The partition key created_at is
-- the run's creation time and never changes, so a run's later states update the same row.
CREATE TABLE IF NOT EXISTS flow_run_history (
    flow_id        text             NOT NULL,
    run_id         text             NOT NULL,
    flow_name      text,
    status         text,
    state_name     text,
    started_at     timestamptz,
    ended_at       timestamptz,
    duration       double precision,
    parameters     jsonb,
    tags           text[],           -- NULL reads as []
    error_type     text,
    error_message  text,
    deployment_id  text,
    parent_run_id  text,
    run_count      integer,
    data           jsonb            NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz      NOT NULL DEFAULT now(),
    updated_at     timestamptz      NOT NULL DEFAULT now(),
    seq            bigserial        NOT NULL,  -- insertion order, breaks created_at ties
    PRIMARY KEY (flow_id, run_id, created_at)
) PARTITION BY RANGE (created_at);

-- (flow_id, run_id) -> created_at: makes (flow_id, run_id) unique across partitions and
-- tells a later write of the same run which partition its row lives in.
CREATE TABLE IF NOT EXISTS flow_run_history_keys (
    flow_id     text        NOT NULL,
    run_id      text        NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (flow_id, run_id)
);

-- Every version of every task output; the latest is the highest version.
CREATE TABLE IF NOT EXISTS task_outputs (
    task_id      text        NOT NULL,
    version      integer     NOT NULL,
    output       jsonb,
    metadata     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    task_run_id  text,
    flow_run_id  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, version)
);

-- The latest version number per task (row-locked while a new version is written).
CREATE TABLE IF NOT EXISTS task_output_heads (
    task_id         text    PRIMARY KEY,
    latest_version  integer NOT NULL
);

CREATE TABLE IF NOT EXISTS audit_log (
    id           bigserial   NOT NULL,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    operation    text        NOT NULL,
    target       text        NOT NULL,
    flow_run_id  text,
    task_run_id  text,
    details      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at);

-- Context as key-value with an optional expiry (the spec's "alternative to Redis").
CREATE TABLE IF NOT EXISTS memory_context (
    context_id  text        PRIMARY KEY,
    data        jsonb       NOT NULL,
    version     integer     NOT NULL DEFAULT 1,
    ttl         integer     CHECK (ttl IS NULL OR ttl > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz
);

-- Append-only events; seq increases per context in commit order.
CREATE TABLE IF NOT EXISTS memory_events (
    context_id   text        NOT NULL,
    seq          bigint      NOT NULL,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    data         jsonb       NOT NULL,
    PRIMARY KEY (context_id, seq)
);

-- The last event seq per context (kept after clear so ids never repeat).
CREATE TABLE IF NOT EXISTS memory_event_heads (
    context_id  text   PRIMARY KEY,
    last_seq    bigint NOT NULL
);

-- Lease locks with a fencing token that strictly increases per name.
CREATE TABLE IF NOT EXISTS memory_locks (
    name           text        PRIMARY KEY,
    owner          text,
    fencing_token  bigint      NOT NULL,
    expires_at     timestamptz NOT NULL
);

-- Embeddings without the pgvector extension (float4[]); 004_add_pgvector.sql adds the
-- pgvector tables where the extension is available.
CREATE TABLE IF NOT EXISTS vector_embeddings (
    namespace   text        NOT NULL,
    id          text        NOT NULL,
    dimension   integer     NOT NULL CHECK (dimension > 0),
    embedding   real[]      NOT NULL,
    metadata    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, id),
    CHECK (cardinality(embedding) = dimension)
);
