-- memory_resources 008: result blobs for Prefect result storage. Idempotent.
--
-- PostgresMemory serves Prefect's WritableFileSystem interface (read_path / write_path):
-- each path is one row; writing a path again replaces its content.

CREATE TABLE IF NOT EXISTS memory_results (
    path        text        PRIMARY KEY,
    content     bytea       NOT NULL,
    written_at  timestamptz NOT NULL DEFAULT now()
);
