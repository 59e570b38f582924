"""Connect-time setup of the pgvector backend: extension, namespace table, indexes.

Everything here is idempotent and serialised with transaction-scoped advisory locks, so
several processes may connect to the same namespace at once.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import psycopg2
import psycopg2.errors
from psycopg2 import sql

from ...config import VectorConfig
from ...errors import ConfigurationError, SchemaError
from ...records import Metric
from ..postgres.pool import Cursor
from .naming import (
    HNSW_LIMITS,
    MAX_HALFVEC_HNSW_DIMENSION,
    METRICS,
    TABLE_COMMENT_PREFIX,
    hnsw_index_name,
    metadata_index_name,
)

BACKEND = "pgvector"
MIN_VERSION = (0, 5, 0)
"""HNSW indexes arrived in pgvector 0.5.0."""
ITERATIVE_SCAN_VERSION = (0, 8, 0)
"""``hnsw.iterative_scan`` (filtered queries that keep scanning) arrived in 0.8.0."""

_INSTALL_HINT = (
    "install pgvector on the server (https://github.com/pgvector/pgvector#installation; "
    "e.g. the postgresql-<major>-pgvector package), or run a local server with pgvector via "
    "PostgresConfig(local_server=True) (pip install 'memory-resources[local-postgres]'), "
    "or use the in-process backend: vector_config={'backend': 'numpy'}"
)


_CREATE_EXTENSION = (
    # In public (when it exists), not in the memory schema: dropping one application schema
    # must not drop the vector type that every other schema's tables use.
    "DO $$ BEGIN "
    "IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public') THEN "
    "CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public; "
    "ELSE CREATE EXTENSION IF NOT EXISTS vector; END IF; END $$"
)


@dataclasses.dataclass(frozen=True)
class ServerInfo:
    """The pgvector extension as installed in the connected database."""

    extension_schema: str
    version: tuple[int, ...]

    @property
    def iterative_scan(self) -> bool:
        """True when filtered HNSW scans can continue past ``ef_search`` (pgvector >= 0.8)."""
        return self.version >= ITERATIVE_SCAN_VERSION

    @property
    def version_text(self) -> str:
        return ".".join(str(part) for part in self.version)


def parse_version(text: str) -> tuple[int, ...]:
    """``"0.8.1"`` -> ``(0, 8, 1)`` (non-numeric suffixes ignored)."""
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def fetch_one(cur: Cursor) -> tuple[Any, ...]:
    """The single row a statement always returns (an aggregate, a function call)."""
    row = cur.fetchone()
    if row is None:
        raise SchemaError(BACKEND, "a statement returning one row returned none")
    return row


def _advisory_lock(cur: Cursor, key: str) -> None:
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))


def _installed(cur: Cursor) -> ServerInfo | None:
    cur.execute(
        "SELECT n.nspname, e.extversion FROM pg_extension e "
        "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'"
    )
    row = cur.fetchone()
    return ServerInfo(row[0], parse_version(row[1])) if row else None


def _server_label(cur: Cursor) -> str:
    cur.execute("SELECT current_database(), current_setting('server_version')")
    database, version = fetch_one(cur)
    return f"database {database!r} (PostgreSQL {version})"


def ensure_extension(cur: Cursor) -> ServerInfo:
    """Return the installed pgvector, running ``CREATE EXTENSION IF NOT EXISTS vector``
    first when the server has it but the database does not; a clear ConfigurationError when
    the server lacks pgvector, the role may not create it, or it is too old for HNSW."""
    info = _installed(cur)
    if info is None:
        cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        if cur.fetchone() is None:
            raise ConfigurationError(
                f"the pgvector backend needs the 'vector' extension, but the server of "
                f"{_server_label(cur)} does not provide it: {_INSTALL_HINT}"
            )
        _advisory_lock(cur, "memory_resources.pgvector.extension")
        cur.execute("SAVEPOINT pgvector_extension")
        try:
            cur.execute(_CREATE_EXTENSION)
        except psycopg2.errors.InsufficientPrivilege:
            cur.execute("ROLLBACK TO SAVEPOINT pgvector_extension")
            raise ConfigurationError(
                f"the pgvector extension is available in {_server_label(cur)} but this role "
                f"may not create it: ask a superuser to run 'CREATE EXTENSION vector;' in "
                f"that database (or apply migrations/004_add_pgvector.sql as a superuser)"
            ) from None
        cur.execute("RELEASE SAVEPOINT pgvector_extension")
        info = _installed(cur)
        assert info is not None
    if info.version < MIN_VERSION:
        raise ConfigurationError(
            f"pgvector {info.version_text} in {_server_label(cur)} has no HNSW indexes; "
            f"upgrade to >= 0.5.0 (ALTER EXTENSION vector UPDATE), 0.8+ recommended"
        )
    return info


def ensure_schema(cur: Cursor, schema: str) -> None:
    """Create ``schema`` when it does not exist yet."""
    cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
    if cur.fetchone() is None:
        _advisory_lock(cur, f"memory_resources.schema:{schema}")
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


def stored_column(cur: Cursor, schema: str, table: str) -> tuple[str, int] | None:
    """``(type, dimension)`` of the ``embedding`` column of an existing namespace table
    (type ``vector`` or ``halfvec``), or None if the table is absent.

    Raises SchemaError when a table of that name exists but is not a pgvector namespace.
    """
    cur.execute(
        "SELECT t.typname, a.atttypmod FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'embedding' "
        "  AND NOT a.attisdropped "
        "LEFT JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE n.nspname = %s AND c.relname = %s",
        (schema, table),
    )
    row = cur.fetchone()
    if row is None:
        return None
    type_name, typmod = row
    if type_name not in HNSW_LIMITS or typmod is None or typmod < 1:
        raise SchemaError(
            BACKEND,
            f"table {schema}.{table} exists but has no 'embedding vector(n)' column; "
            f"it was not created by this backend (drop or rename it, or pick another namespace)",
        )
    return str(type_name), int(typmod)


def stored_dimension(cur: Cursor, schema: str, table: str) -> int | None:
    """The dimension of an existing namespace table, or None if it is absent."""
    column = stored_column(cur, schema, table)
    return None if column is None else column[1]


def _check_column(schema: str, table: str, namespace: str, stored: tuple[str, int],
                  storage: str, dimension: int) -> None:
    stored_type, stored_dim = stored
    if stored_dim != dimension:
        raise ConfigurationError(
            f"dimension mismatch: namespace {namespace!r} ({schema}.{table}) stores "
            f"{stored_dim}-dimensional vectors but the config says dimension={dimension}; "
            f"use dimension={stored_dim}, another namespace, or drop the table to re-index"
        )
    if stored_type != storage:
        raise ConfigurationError(
            f"vector_config['pgvector_storage']: namespace {namespace!r} ({schema}.{table}) "
            f"stores {stored_type} but the config says {storage!r}; use "
            f"pgvector_storage={stored_type!r}, another namespace, or convert the column "
            f"(ALTER TABLE ... ALTER COLUMN embedding TYPE {storage}({dimension}), then "
            f"drop its HNSW indexes and reconnect to rebuild them)"
        )


def ensure_table(cur: Cursor, *, schema: str, table: str, namespace: str, dimension: int,
                 extension_schema: str, storage: str = "vector") -> bool:
    """Create the namespace table (``embedding`` of type ``storage``) and its metadata GIN
    index if missing; check the type and dimension of an existing one. Returns True when
    the table was created now."""
    stored = stored_column(cur, schema, table)
    if stored is not None:
        _check_column(schema, table, namespace, stored, storage, dimension)
        return False
    _advisory_lock(cur, f"memory_resources.pgvector:{schema}.{table}")
    stored = stored_column(cur, schema, table)  # another process may have won the race
    if stored is not None:
        _check_column(schema, table, namespace, stored, storage, dimension)
        return False
    qualified = sql.Identifier(schema, table)
    cur.execute(
        sql.SQL(
            "CREATE TABLE {table} ("
            " id text PRIMARY KEY,"
            " embedding {ext}.{type}({dim}) NOT NULL,"
            " metadata jsonb NOT NULL DEFAULT '{{}}'::jsonb,"
            " created_at timestamptz NOT NULL DEFAULT now(),"
            " updated_at timestamptz NOT NULL DEFAULT now())"
        ).format(table=qualified, ext=sql.Identifier(extension_schema),
                 type=sql.Identifier(storage), dim=sql.Literal(dimension))
    )
    cur.execute(
        sql.SQL("COMMENT ON TABLE {} IS {}").format(
            qualified, sql.Literal(f"{TABLE_COMMENT_PREFIX}{namespace}")
        )
    )
    cur.execute(
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gin (metadata)").format(
            sql.Identifier(metadata_index_name(table)), qualified
        )
    )
    return True


def hnsw_key(*, metric: Metric, dimension: int, extension_schema: str, storage: str,
             quantization: str) -> sql.Composable | None:
    """The indexed key of the HNSW index (``embedding <opclass>`` or, for binary
    quantization, ``(binary_quantize(embedding)::bit(n)) bit_hamming_ops``), or None when
    the dimension is above the HNSW limit of the column type (exact scans)."""
    ext = sql.Identifier(extension_schema)
    if quantization == "binary":
        return sql.SQL("(({ext}.binary_quantize(embedding))::bit({dim})) {ext}.bit_hamming_ops"
                       ).format(ext=ext, dim=sql.Literal(dimension))
    if dimension > HNSW_LIMITS[storage]:
        return None
    return sql.SQL("embedding {ext}.{opclass}").format(
        ext=ext, opclass=sql.Identifier(METRICS[metric].opclass_for(storage)))


def index_exists(cur: Cursor, schema: str, name: str) -> bool:
    """True when the relation ``schema.name`` exists."""
    cur.execute(
        "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s",
        (schema, name),
    )
    return cur.fetchone() is not None


def ensure_hnsw_index(cur: Cursor, *, schema: str, table: str, metric: Metric, dimension: int,
                      extension_schema: str, m: int, ef_construction: int,
                      maintenance_work_mem: str, storage: str = "vector",
                      quantization: str = "none") -> bool:
    """Create the HNSW index if missing (building it over existing rows with
    ``maintenance_work_mem`` raised for this transaction): the metric's index on the column,
    or the hamming index on its binary quantization. Returns False when the dimension is
    above pgvector's HNSW limit (queries are then exact scans)."""
    key = hnsw_key(metric=metric, dimension=dimension, extension_schema=extension_schema,
                   storage=storage, quantization=quantization)
    if key is None:
        return False
    name = hnsw_index_name(table, metric, quantization)
    if index_exists(cur, schema, name):
        return True
    _advisory_lock(cur, f"memory_resources.pgvector:{schema}.{table}")
    # A build can take minutes: maintenance, not bound by the configured statement_timeout.
    cur.execute("SELECT set_config('maintenance_work_mem', %s, true), "
                "set_config('statement_timeout', '0', true)", (maintenance_work_mem,))
    cur.execute(
        sql.SQL(
            "CREATE INDEX IF NOT EXISTS {name} ON {table} USING hnsw ({key}) "
            "WITH (m = {m}, ef_construction = {efc})"
        ).format(
            name=sql.Identifier(name),
            table=sql.Identifier(schema, table),
            key=key,
            m=sql.Literal(m),
            efc=sql.Literal(ef_construction),
        )
    )
    return True


MAX_EF_SEARCH = 1000
"""pgvector's upper bound of ``hnsw.ef_search``."""


def check_hnsw_options(config: VectorConfig) -> None:
    """pgvector's own bounds, checked before connecting (it would refuse them later)."""
    if not 2 <= config.hnsw_m <= 100:
        raise ConfigurationError(f"hnsw_m must be between 2 and 100, got {config.hnsw_m}")
    if not 4 <= config.hnsw_ef_construction <= 1000:
        raise ConfigurationError(
            f"hnsw_ef_construction must be between 4 and 1000, got {config.hnsw_ef_construction}"
        )
    if config.hnsw_ef_construction < 2 * config.hnsw_m:
        raise ConfigurationError(
            f"hnsw_ef_construction ({config.hnsw_ef_construction}) must be >= 2 * hnsw_m "
            f"({2 * config.hnsw_m})"
        )
    if not 1 <= config.ef_search <= MAX_EF_SEARCH:
        raise ConfigurationError(
            f"ef_search must be between 1 and {MAX_EF_SEARCH}, got {config.ef_search}"
        )
    if (config.pgvector_storage == "halfvec" and config.pgvector_quantization == "none"
            and config.dimension > MAX_HALFVEC_HNSW_DIMENSION):
        raise ConfigurationError(
            f"vector_config['dimension']: {config.dimension} is above pgvector's HNSW limit "
            f"for halfvec ({MAX_HALFVEC_HNSW_DIMENSION}); use pgvector_quantization='binary' "
            f"(a bit index, up to 64000 dimensions, re-ranked on the halfvec column) or "
            f"reduce the embedding dimension"
        )
