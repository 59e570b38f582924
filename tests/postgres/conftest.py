"""Helpers of the PostgreSQL suites: fresh databases, the matching psql, catalog snapshots."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest
from psycopg2 import sql

from memory_resources.stores.postgres.migrate import MIGRATIONS_DIR


def _server_major(dsn: str) -> int:
    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        return int(conn.server_version) // 10000
    finally:
        conn.close()


def _psql_major(binary: str) -> int | None:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=10).stdout
    except OSError:
        return None
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else None


def psql_for(dsn: str) -> str:
    """The psql binary of the server under test (same major version)."""
    candidates: list[str] = []
    try:
        from tests.servers.postgres import postgres_bin_dir

        candidates.append(str(postgres_bin_dir() / "psql"))
    except Exception:  # the embedded package is optional for this lookup
        pass
    candidates += sorted(str(p) for p in Path("/usr/lib/postgresql").glob("*/bin/psql"))
    if shutil.which("psql"):
        candidates.append(str(shutil.which("psql")))
    major = _server_major(dsn)
    for binary in candidates:
        if _psql_major(binary) == major:
            return binary
    pytest.fail(f"no psql binary of major version {major} among {candidates}")


def with_database(dsn: str, database: str) -> str:
    """``dsn`` (a URL) pointing at ``database``."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


@pytest.fixture
def fresh_database() -> Iterator[Callable[[str], str]]:
    """``make(dsn)``: an empty database on ``dsn``'s server, dropped after the test."""
    made: list[tuple[str, str]] = []

    def make(dsn: str) -> str:
        name = f"mrtest_db_{uuid.uuid4().hex[:8]}"
        conn = psycopg2.connect(dsn, connect_timeout=5)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        finally:
            conn.close()
        made.append((dsn, name))
        return with_database(dsn, name)

    yield make
    for dsn, name in made:
        conn = psycopg2.connect(dsn, connect_timeout=5)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))
        finally:
            conn.close()


def run_psql_files(dsn: str, files: list[Path] | None = None) -> None:
    """``psql -v ON_ERROR_STOP=1 -d DSN -f FILE`` for each migration file, in order."""
    binary = psql_for(dsn)
    for path in files or sorted(MIGRATIONS_DIR.glob("00[123]_*.sql")):
        result = subprocess.run([binary, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn,
                                 "-f", str(path)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{path.name}: {result.stderr}"


def catalog_snapshot(dsn: str, schema: str = "public") -> list[tuple[object, ...]]:
    """Relations, columns, indexes, constraints and functions of ``schema`` (a fingerprint)."""
    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT 'rel', c.relname, c.relkind::text, NULL FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %(s)s"
                " UNION ALL SELECT 'col', table_name, column_name, data_type"
                " FROM information_schema.columns WHERE table_schema = %(s)s"
                " UNION ALL SELECT 'idx', tablename, indexname, indexdef FROM pg_indexes"
                " WHERE schemaname = %(s)s"
                " UNION ALL SELECT 'con', conrelid::regclass::text, conname,"
                " pg_get_constraintdef(c.oid) FROM pg_constraint c"
                " JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = %(s)s"
                " UNION ALL SELECT 'fn', p.proname, md5(p.prosrc),"
                " array_to_string(p.proconfig, ',')"
                " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                " WHERE n.nspname = %(s)s ORDER BY 1, 2, 3, 4",
                {"s": schema},
            )
            return [tuple(row) for row in cur.fetchall()]
    finally:
        conn.close()
