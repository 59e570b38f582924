"""The migration runner: apply ``migrations/NNN_name.sql`` files in order, once each.

Each file runs in its own transaction with ``search_path`` set to the configured schema, and
is recorded in ``schema_migrations(version, name, checksum, applied_at)``. A session-level
``pg_advisory_lock`` per schema makes concurrent runners wait for each other (the second one
then finds nothing to do). A file whose checksum differs from the one recorded when it was
applied stops the runner with :class:`~memory_resources.errors.SchemaError` before anything
runs. The files are plain idempotent SQL, so a database prepared with ``psql -f`` is adopted:
the runner re-runs them (a no-op) and records them.

When nothing is pending the runner only reads ``schema_migrations``: no lock, no DDL, so a
role with row privileges only (the application role of ``docs/postgres.md``) passes it.
When something is pending and the role may not apply it, it raises
:class:`~memory_resources.errors.SchemaPermissionError` naming the pending files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import psycopg2
from psycopg2 import sql

from ...errors import BackendError, SchemaError, SchemaPermissionError
from ...log import get_logger
from .errors import BACKEND, is_connection_failure, translate
from .pool import Connection, PostgresPool
from .support import one

_log = get_logger(__name__)

_FILE = re.compile(r"^(\d{3})_([A-Za-z0-9_]+)\.sql$")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""Shipped migrations: a link to the repository's top-level ``migrations/`` (real files in
an installed wheel)."""

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS {s}.schema_migrations (
    version     integer     PRIMARY KEY,
    name        text        NOT NULL,
    checksum    text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""


@dataclasses.dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str
    checksum: str
    path: Path


@dataclasses.dataclass(frozen=True)
class AppliedMigration:
    """One row of ``schema_migrations``."""

    version: int
    name: str
    checksum: str
    applied_at: str


def checksum(text: str) -> str:
    """SHA-256 of the file text with line endings normalised (checkouts may use CRLF)."""
    return hashlib.sha256(text.replace("\r\n", "\n").encode("utf-8")).hexdigest()


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """The migration files of ``directory`` (default: the shipped ones) in version order."""
    folder = directory or MIGRATIONS_DIR
    if not folder.is_dir():
        raise SchemaError(BACKEND, f"migrations directory {folder} not found")
    found: list[Migration] = []
    for path in sorted(folder.iterdir()):
        match = _FILE.fullmatch(path.name)
        if not match:
            continue
        text = path.read_text(encoding="utf-8")
        found.append(Migration(int(match.group(1)), path.stem, text, checksum(text), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise SchemaError(BACKEND, f"duplicate migration versions in {folder}: {versions}")
    return found


def _lock_key(schema: str) -> int:
    digest = hashlib.sha256(f"memory_resources.migrate:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _applied(conn: Connection, schema: str) -> dict[int, AppliedMigration]:
    with conn.cursor() as cur:
        cur.execute(sql.SQL(_CREATE_TABLE).format(s=sql.Identifier(schema)))
        cur.execute(
            sql.SQL("SELECT version, name, checksum, applied_at FROM {s}.schema_migrations"
                    " ORDER BY version").format(s=sql.Identifier(schema))
        )
        rows = cur.fetchall()
    conn.commit()
    return {
        row[0]: AppliedMigration(row[0], row[1], row[2], row[3].isoformat(timespec="microseconds"))
        for row in rows
    }


def applied_migrations(pool: PostgresPool) -> list[AppliedMigration]:
    """What ``schema_migrations`` records (empty when the table does not exist)."""
    def read(cur: psycopg2.extensions.cursor) -> list[AppliedMigration]:
        cur.execute("SELECT to_regclass(%s)", (f'"{pool.schema}".schema_migrations',))
        if one(cur)[0] is None:
            return []
        cur.execute(
            sql.SQL("SELECT version, name, checksum, applied_at FROM {s}.schema_migrations"
                    " ORDER BY version").format(s=sql.Identifier(pool.schema))
        )
        return [AppliedMigration(r[0], r[1], r[2], r[3].isoformat(timespec="microseconds"))
                for r in cur.fetchall()]

    return pool.run(read)


def pending_migrations(pool: PostgresPool, directory: Path | None = None) -> list[Migration]:
    """Files not recorded as applied (checksums of applied files are verified)."""
    files = load_migrations(directory)
    applied = _verified(pool, files)
    return [m for m in files if m.version not in applied]


def _verify(files: list[Migration], applied: dict[int, AppliedMigration]) -> None:
    for migration in files:
        done = applied.get(migration.version)
        if done is not None and done.checksum != migration.checksum:
            raise SchemaError(
                BACKEND,
                f"migration {migration.name} was changed after it was applied on "
                f"{done.applied_at} (checksum {done.checksum[:12]}… now "
                f"{migration.checksum[:12]}…); never edit an applied migration, add a new one",
            )


OnApply = Callable[[Migration, int, int], None]
"""Called before each file is applied with ``(migration, n, N)``: file n of the N pending."""


def migrate(pool: PostgresPool, directory: Path | None = None, *,
            on_apply: OnApply | None = None) -> list[AppliedMigration]:
    """Apply the pending migrations to ``pool.schema``; returns what was applied now.

    Nothing pending: one read of ``schema_migrations`` and no DDL. Pending but the role
    lacks the privileges: :class:`SchemaPermissionError` (nothing half-applied: each file
    is its own transaction). ``on_apply`` reports progress (the CLI's display)."""
    files = load_migrations(directory)
    pending = [m for m in files if m.version not in _verified(pool, files)]
    if not pending:
        return []
    try:
        return _migrate_locked(pool, files, on_apply)
    except BackendError as exc:
        cause = _privilege_cause(exc)
        if cause is None:
            raise
        detail = " ".join(str(cause.pgerror or cause).split())
        raise SchemaPermissionError(
            BACKEND,
            f"the connected role may not apply the pending migrations "
            f"{', '.join(m.name for m in pending)} to schema {pool.schema!r} ({detail}); "
            f"run `memory-resources migrate --schema {pool.schema}` as the schema owner "
            "(docs/postgres.md, Roles), or connect with auto_migrate=False once it has run",
            pending=[m.name for m in pending],
        ) from exc


def _verified(pool: PostgresPool, files: list[Migration]) -> dict[int, AppliedMigration]:
    applied = {m.version: m for m in applied_migrations(pool)}
    _verify(files, applied)
    return applied


def _privilege_cause(exc: BaseException) -> psycopg2.Error | None:
    """The SQLSTATE 42501 (insufficient_privilege) error behind ``exc``, if that is it."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, psycopg2.Error) and seen.pgcode == "42501":
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _migrate_locked(pool: PostgresPool, files: list[Migration],
                    on_apply: OnApply | None = None) -> list[AppliedMigration]:
    """The runner proper: under the schema's advisory lock, re-read and apply."""
    schema = pool.schema
    ident = sql.Identifier(schema)
    applied_now: list[AppliedMigration] = []
    with pool.connection() as conn:
        with conn.cursor() as cur:
            # Waiting for another runner must not hit the configured statement_timeout.
            cur.execute("SET LOCAL statement_timeout = 0")
            cur.execute("SELECT pg_advisory_lock(%s)", (_lock_key(schema),))
        conn.commit()
        try:
            with conn.cursor() as cur:
                # CREATE SCHEMA needs CREATE on the database even with IF NOT EXISTS: only
                # when the schema is missing (an owner of an existing schema needs no more).
                cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE SCHEMA {s}").format(s=ident))
            conn.commit()
            applied = _applied(conn, schema)
            _verify(files, applied)
            todo = [m for m in files if m.version not in applied]
            for index, migration in enumerate(todo, 1):
                if on_apply is not None:
                    on_apply(migration, index, len(todo))
                applied_now.append(_apply(conn, schema, migration))
        finally:
            # A broken connection drops its session lock by itself.
            with contextlib.suppress(psycopg2.Error):
                conn.rollback()
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s)", (_lock_key(schema),))
    return applied_now


def _apply(conn: Connection, schema: str, migration: Migration) -> AppliedMigration:
    try:
        with conn.cursor() as cur:
            cur.execute("SET LOCAL statement_timeout = 0")
            cur.execute(migration.sql)
            cur.execute(
                sql.SQL("INSERT INTO {s}.schema_migrations (version, name, checksum)"
                        " VALUES (%s, %s, %s) RETURNING applied_at").format(
                    s=sql.Identifier(schema)),
                (migration.version, migration.name, migration.checksum),
            )
            applied_at = one(cur)[0]
        conn.commit()
    except psycopg2.Error as exc:
        with contextlib.suppress(psycopg2.Error):
            conn.rollback()
        error = translate(exc, context=f"migration {migration.name}")
        if is_connection_failure(exc):
            raise error from exc
        raise SchemaError(BACKEND, str(error).removeprefix(f"[{BACKEND}] ")) from exc
    _log.info("migration applied", version=migration.version, name=migration.name,
              schema=schema)
    return AppliedMigration(migration.version, migration.name, migration.checksum,
                            applied_at.isoformat(timespec="microseconds"))
