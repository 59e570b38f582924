-- memory_resources 004: the pgvector extension, when the server provides it. Idempotent.
--
-- Succeeds on servers WITHOUT pgvector (nothing is done, a NOTICE says so) and for roles
-- that may not create extensions (pgvector is not a trusted extension: creating it needs a
-- superuser or the database owner with it marked trusted); the pgvector backend then
-- reports a clear configuration error when it connects. The per-namespace tables
-- (pgvector_<namespace>, with a vector(dimension) column, an HNSW index and a GIN index on
-- metadata) are created by the backend on connect, because their dimension and metric come
-- from the vector configuration, not from this file.

DO $pgvector$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
        RAISE NOTICE 'pgvector is not installed on this server; the pgvector vector backend '
                     'will not be available (the numpy backend is unaffected)';
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('memory_resources.pgvector.extension'));
    BEGIN
        -- In public (when it exists), not in the memory schema: dropping one application
        -- schema must not drop the vector type every other schema's tables use.
        IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public') THEN
            CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public;
        ELSE
            CREATE EXTENSION IF NOT EXISTS vector;
        END IF;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE NOTICE 'pgvector is available but this role may not create it: '
                     'a superuser must run CREATE EXTENSION vector in this database';
    END;
END
$pgvector$;
