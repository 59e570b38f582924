"""Migrations: the spec's `psql -f` commands, the runner, checksums, racing runners."""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg2
import pytest

from memory_resources.config import PostgresConfig
from memory_resources.errors import ConfigurationError, SchemaError, UnsafeIdentifierError
from memory_resources.stores.postgres import PostgresPool, PostgresStore, migrate
from memory_resources.stores.postgres.migrate import (
    MIGRATIONS_DIR,
    applied_migrations,
    load_migrations,
    pending_migrations,
)
from tests.concurrency import run_in_threads
from tests.postgres.conftest import catalog_snapshot, run_psql_files

SPEC_TABLES = {"flow_run_history", "task_outputs", "audit_log", "memory_context",
               "memory_events", "vector_embeddings", "schema_migrations"}


def _tables(dsn: str, schema: str) -> set[str]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s"
                        " UNION SELECT relname FROM pg_class c JOIN pg_namespace n"
                        " ON n.oid = c.relnamespace WHERE n.nspname = %s AND relkind = 'p'",
                        (schema, schema))
            return {row[0] for row in cur.fetchall()}
    finally:
        conn.close()


def _pool(dsn: str, schema: str) -> PostgresPool:
    return PostgresPool(PostgresConfig.model_validate(
        {"dsn": dsn, "schema": schema, "max_connections": 2}))


def test_psql_files_in_order_on_an_empty_database_then_again_change_nothing(
    any_postgres_dsn: str, fresh_database: Callable[[str], str]
) -> None:
    """The spec's `psql -d DB -f migrations/00N_*.sql` commands create every table, and a
    second run leaves the catalog exactly as it was."""
    dsn = fresh_database(any_postgres_dsn)
    run_psql_files(dsn)
    assert _tables(dsn, "public") >= SPEC_TABLES
    first = catalog_snapshot(dsn)
    run_psql_files(dsn)
    assert catalog_snapshot(dsn) == first


def test_runner_adopts_a_psql_prepared_database(
    any_postgres_dsn: str, fresh_database: Callable[[str], str], tmp_path: Path
) -> None:
    """After psql -f, the runner records 001-003 without changing the schema."""
    dsn = fresh_database(any_postgres_dsn)
    run_psql_files(dsn)
    before = catalog_snapshot(dsn)
    pool = _pool(dsn, "public")
    try:
        applied = migrate(pool, _copy_core(tmp_path))
        assert [m.version for m in applied] == [1, 2, 3]
        assert [m.version for m in applied_migrations(pool)] == [1, 2, 3]
    finally:
        pool.close()
    assert catalog_snapshot(dsn) == before


def test_runner_applies_everything_once_and_records_it(any_pg: tuple[str, str]) -> None:
    """A fresh schema gets every migration; a second run applies nothing."""
    dsn, schema = any_pg
    pool = _pool(dsn, schema)
    try:
        files = load_migrations()
        applied = migrate(pool)
        assert [m.version for m in applied] == [m.version for m in files]
        assert {m.checksum for m in applied} == {m.checksum for m in files}
        assert _tables(dsn, schema) >= SPEC_TABLES
        snapshot = catalog_snapshot(dsn, schema)
        assert migrate(pool) == []
        assert pending_migrations(pool) == []
        assert catalog_snapshot(dsn, schema) == snapshot
    finally:
        pool.close()


def _copy_core(target: Path) -> Path:
    for path in sorted(MIGRATIONS_DIR.glob("00[123]_*.sql")):
        shutil.copy(path, target / path.name)
    return target


def test_changed_applied_file_is_refused_before_anything_runs(
    pg_schema: str, postgres_dsn: str, tmp_path: Path
) -> None:
    """Editing an applied migration stops the runner with SchemaError; a newer file queued
    behind it is not applied."""
    folder = _copy_core(tmp_path)
    pool = _pool(postgres_dsn, pg_schema)
    try:
        migrate(pool, folder)
        edited = folder / "002_add_memory_indexes.sql"
        edited.write_text(edited.read_text() + "\n-- edited after it was applied\n")
        (folder / "005_extra.sql").write_text("CREATE TABLE extra_table (id int);\n")
        with pytest.raises(SchemaError) as info:
            migrate(pool, folder)
        assert "002_add_memory_indexes" in str(info.value)
        assert "extra_table" not in _tables(postgres_dsn, pg_schema)
        assert [m.version for m in applied_migrations(pool)] == [1, 2, 3]
    finally:
        pool.close()


def test_crlf_checkout_keeps_the_same_checksum(tmp_path: Path) -> None:
    """A file checked out with CRLF line endings has the checksum of its LF original."""
    folder = _copy_core(tmp_path)
    original = load_migrations(folder)
    for path in folder.iterdir():
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert [m.checksum for m in load_migrations(folder)] == [m.checksum for m in original]


def test_failing_migration_is_rolled_back_and_not_recorded(
    pg_schema: str, postgres_dsn: str, tmp_path: Path
) -> None:
    """A file that fails half-way leaves no trace and raises SchemaError naming it."""
    folder = _copy_core(tmp_path)
    (folder / "005_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\nSELECT no_such_function();\n")
    pool = _pool(postgres_dsn, pg_schema)
    try:
        with pytest.raises(SchemaError) as info:
            migrate(pool, folder)
        assert "005_broken" in str(info.value)
        assert "half_done" not in _tables(postgres_dsn, pg_schema)
        assert [m.version for m in applied_migrations(pool)] == [1, 2, 3]
    finally:
        pool.close()


def test_two_racing_runners_apply_each_file_exactly_once(
    pg_schema: str, postgres_dsn: str
) -> None:
    """Two runners started together: the advisory lock serialises them, every file is
    applied once in total and neither fails."""
    pools = [_pool(postgres_dsn, pg_schema) for _ in range(2)]
    results: list[list[int]] = [[], []]
    barrier = threading.Barrier(2)

    def run(index: int) -> None:
        barrier.wait()
        results[index] = [m.version for m in migrate(pools[index])]

    errors = run_in_threads(*(functools.partial(run, i) for i in range(2)))
    for pool in pools:
        pool.close()
    assert errors == []
    expected = [m.version for m in load_migrations()]
    assert sorted(results[0] + results[1]) == expected
    assert [] in results  # the runner that waited found nothing left to do


@pytest.mark.parametrize("schema", ["public; DROP TABLE x", '"x"', "x y", "1abc", "", "a" * 64])
def test_unsafe_schema_is_refused_before_any_sql(schema: str, postgres_dsn: str) -> None:
    """A schema that is not a plain identifier is refused by the config, the store and the
    pool before any connection is made."""
    with pytest.raises(ConfigurationError) as info:
        PostgresStore({"dsn": postgres_dsn, "schema": schema})
    assert "schema" in str(info.value)
    unchecked = PostgresConfig.model_construct(**{
        **PostgresConfig(dsn=postgres_dsn).model_dump(), "schema_": schema})
    with pytest.raises(UnsafeIdentifierError) as unsafe:
        PostgresPool(unchecked)
    assert unsafe.value.field == "schema"
    conn = psycopg2.connect(postgres_dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,))
            assert cur.fetchone() == (0,)
    finally:
        conn.close()


def test_store_without_auto_migrate_refuses_an_empty_schema(
    pg_schema: str, postgres_dsn: str
) -> None:
    """auto_migrate=False on an unmigrated schema raises SchemaError pointing at migrate."""
    store = PostgresStore({"dsn": postgres_dsn, "schema": pg_schema, "auto_migrate": False})
    with pytest.raises(SchemaError) as info:
        store.connect()
    assert "memory-resources migrate" in str(info.value)
    store.close()
