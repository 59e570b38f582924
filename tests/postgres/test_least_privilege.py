"""Least privilege on PostgreSQL: the application role of docs/postgres.md (row privileges
only) connects, writes and reads with ``auto_migrate`` on; pending migrations fail typed;
partitions come from the migration role's ``migrate`` / ``maintain``.

The whole contract suite also runs as that role (backends ``postgres_app`` and
``pgvector_app`` in tests/contract/conftest.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from psycopg2 import sql
from typer.testing import CliRunner

from memory_resources.cli import app as cli
from memory_resources.clock import ManualClock
from memory_resources.errors import (
    BackendPermissionError,
    SchemaError,
    SchemaPermissionError,
)
from memory_resources.records import FlowRunWrite
from memory_resources.stores.pgvector import PgVectorIndex
from memory_resources.stores.postgres import PostgresStore
from memory_resources.stores.postgres.migrate import _lock_key
from memory_resources.stores.postgres.partitions import month_start
from tests.fixtures.pgvector import postgres_config, vector_config
from tests.fixtures.postgres import make_postgres_store
from tests.fixtures.roles import PgRoles, pg_roles

FEB_2040 = dt.datetime(2040, 2, 10, 12, tzinfo=dt.timezone.utc).timestamp()
runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def _admin(roles: PgRoles, query: str, *params: object) -> list[tuple[object, ...]]:
    conn = psycopg2.connect(roles.admin_dsn, connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL(query).format(s=sql.Identifier(roles.schema)), params)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


def partition_name(parent: str, months_ahead: int) -> str:
    """``<parent>_pYYYY_MM`` of the month ``months_ahead`` after the current one."""
    month = month_start(dt.datetime.now(dt.timezone.utc), months_ahead)
    return f"{parent}_p{month:%Y_%m}"


def _count(roles: PgRoles, table: str) -> int:
    rows = _admin(roles, f"SELECT count(*) FROM {{s}}.{table}")
    return int(str(rows[0][0]))


@pytest.fixture
def roles(postgres_dsn: str) -> Iterator[PgRoles]:
    """A schema of this test migrated by its own migration role, app role granted."""
    with pg_roles(postgres_dsn) as made:
        yield made


def test_the_contract_store_is_the_app_role_without_create(
    postgres_app_store: PostgresStore, postgres_app_roles: PgRoles
) -> None:
    """The contract suites' ``postgres_app`` store is logged in as the application role,
    which has no CREATE on the schema or database: any DDL it sent would fail."""
    def probe(cur: psycopg2.extensions.cursor) -> tuple[object, ...]:
        cur.execute("SELECT current_user, has_schema_privilege(%s, 'CREATE'),"
                    " has_database_privilege(current_database(), 'CREATE')",
                    (postgres_app_roles.schema,))
        row = cur.fetchone()
        assert row is not None
        return tuple(row)

    assert postgres_app_store.pool.run(probe) == (postgres_app_roles.app, False, False)
    with pytest.raises(BackendPermissionError, match="42501"):
        postgres_app_store.pool.run(lambda cur: cur.execute(
            f'CREATE TABLE "{postgres_app_roles.schema}".intruder (x int)'))


def test_connect_with_nothing_pending_takes_no_migration_lock(roles: PgRoles) -> None:
    """With the runner's advisory lock held elsewhere, an owner store with auto_migrate
    still connects: nothing pending means no lock and no DDL."""
    holder = psycopg2.connect(roles.admin_dsn, connect_timeout=5)
    done = threading.Event()
    errors: list[BaseException] = []

    def connect() -> None:
        try:
            make_postgres_store(roles.owner_dsn, roles.schema).close()
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            done.set()

    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (_lock_key(roles.schema),))
        worker = threading.Thread(target=connect, daemon=True)
        worker.start()
        finished = done.wait(timeout=60)
    finally:
        holder.close()  # releases the lock, so a blocked connect would end too
    assert finished, "connect waited for the migration lock although nothing was pending"
    assert errors == []


def test_app_role_with_pending_migration_fails_typed_until_the_owner_migrates(
    roles: PgRoles,
) -> None:
    """A pending migration with auto_migrate on and row privileges only raises
    SchemaPermissionError naming the file and the fix, applying nothing; once an owner
    store (auto_migrate) has connected, the app role connects again."""
    _admin(roles, "DELETE FROM {s}.schema_migrations WHERE version = 7")
    with pytest.raises(SchemaPermissionError) as info:
        make_postgres_store(roles.app_dsn, roles.schema)
    error = info.value
    assert isinstance(error, SchemaError) and isinstance(error, BackendPermissionError)
    assert error.pending == ["007_partition_maintenance"]
    assert "memory-resources migrate" in str(error) and roles.schema in str(error)
    assert _admin(roles, "SELECT version FROM {s}.schema_migrations WHERE version = 7") == []
    make_postgres_store(roles.owner_dsn, roles.schema).close()
    assert len(_admin(roles, "SELECT 1 FROM {s}.schema_migrations WHERE version = 7")) == 1
    store = make_postgres_store(roles.app_dsn, roles.schema)
    try:
        assert store.write_flow_run(FlowRunWrite("flow", "after"))["run_id"] == "after"
    finally:
        store.close()


def test_app_role_writes_into_default_and_maintain_moves_them(
    roles: PgRoles, caplog: pytest.LogCaptureFixture
) -> None:
    """In a month without partitions the app role's writes land in the default partitions
    (no DDL attempted, one warning); maintain as the migration role gives the month its
    partitions, moves the rows there, and they read back unchanged."""
    clock = ManualClock(start=FEB_2040)
    with caplog.at_level(logging.WARNING):
        app = make_postgres_store(roles.app_dsn, roles.schema, clock=clock)
    try:
        app.write_flow_run(FlowRunWrite("flow", "feb", status="running"))
        app.write_flow_run(FlowRunWrite("flow", "feb", status="completed"))
        warnings = [r for r in caplog.records if "no partition for this month" in r.getMessage()]
        assert len(warnings) == 1
        assert _count(roles, "flow_run_history_default") == 1
        assert _count(roles, "audit_log_default") == 2
        owner = make_postgres_store(roles.owner_dsn, roles.schema, clock=clock,
                                    auto_migrate=False)
        try:
            report = owner.maintain(months_ahead=1)
        finally:
            owner.close()
        assert report.moved == {"flow_run_history_p2040_02": 1, "audit_log_p2040_02": 2}
        assert set(report.created) == {"flow_run_history_p2040_03", "audit_log_p2040_03"}
        assert report.remaining == {"flow_run_history_default": 0, "audit_log_default": 0}
        row = app.read_flow_runs("flow", "feb")[0]
        assert row["status"] == "completed" and row["created_at"].startswith("2040-02-10")
        assert len(app.read_audit(operation="history.write")) == 2
    finally:
        app.close()


def test_maintain_command_as_migration_role_and_refused_for_the_app_role(
    roles: PgRoles,
) -> None:
    """`memory-resources maintain` as the migration role moves a backfilled run out of the
    default partition and reports it (text and --json); as the app role it exits 2 naming
    the fix, and the app role's prune is refused typed, dropping nothing."""
    app = make_postgres_store(roles.app_dsn, roles.schema)
    try:
        app.write_flow_run(FlowRunWrite("flow", "old", created_at="2020-03-04T05:06:07+00:00"))
    finally:
        app.close()
    later = make_postgres_store(roles.app_dsn, roles.schema, clock=ManualClock(start=FEB_2040))
    try:  # in 2040 every month partition is due: dropping them is the owner's job
        with pytest.raises(BackendPermissionError, match="42501"):
            later.prune(dt.timedelta(days=90))
    finally:
        later.close()
    assert _count(roles, partition_name("flow_run_history", 0)) == 0  # still there
    refused = runner.invoke(cli, ["maintain", "--dsn", roles.app_dsn, "--schema", roles.schema])
    assert refused.exit_code == 2
    assert "as the schema owner" in refused.output
    assert _count(roles, "flow_run_history_default") == 1
    done = runner.invoke(cli, ["maintain", "--dsn", roles.owner_dsn, "--schema", roles.schema])
    assert done.exit_code == 0, done.output
    assert "moved 1 row(s) out of the default partition into flow_run_history_p2020_03" \
        in done.output
    assert "flow_run_history_default: 0 row(s) left" in done.output
    again = runner.invoke(cli, ["maintain", "--json", "--months-ahead", "8",
                                "--dsn", roles.owner_dsn, "--schema", roles.schema])
    assert again.exit_code == 0, again.output
    report = json.loads(again.output)
    assert report["moved"] == {}
    assert len(report["created"]) == 4  # months 7 and 8 ahead, for both tables
    assert report["remaining"] == {"flow_run_history_default": 0, "audit_log_default": 0}


def test_scheduled_maintenance_deployment_runs_maintain_as_the_owner_block(
    roles: PgRoles, prefect_harness: None
) -> None:
    """prefect.yaml schedules flows/maintenance.py weekly; the flow, given a saved
    PostgresMemory block of the migration role, moves a backfilled row and reports it."""
    import yaml

    from flows.maintenance import partition_maintenance
    from memory_resources.blocks.postgres import PostgresMemory

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text(encoding="utf-8"))
    deployment = next(d for d in spec["deployments"] if d["name"] == "partition-maintenance")
    assert deployment["entrypoint"] == "flows/maintenance.py:partition_maintenance"
    assert deployment["schedules"][0]["cron"] == "17 3 * * 1"
    block_name = f"owner-{roles.schema.replace('_', '-')}"
    PostgresMemory(dsn=roles.owner_dsn, schema=roles.schema).save(block_name, overwrite=True)
    app = make_postgres_store(roles.app_dsn, roles.schema)
    try:
        app.write_flow_run(FlowRunWrite("flow", "old", created_at="2019-07-04T00:00:00+00:00"))
    finally:
        app.close()
    report = partition_maintenance(postgres=block_name)
    assert report["moved"] == {"flow_run_history_p2019_07": 1}
    assert report["remaining"]["flow_run_history_default"] == 0


def test_migrate_command_tops_up_missing_partitions_with_nothing_pending(
    roles: PgRoles,
) -> None:
    """`memory-resources migrate` as the migration role, with no migration pending, still
    re-creates a month partition ahead that had gone missing."""
    ahead = partition_name("flow_run_history", 6)
    _admin(roles, f"DROP TABLE {{s}}.{ahead}")
    result = runner.invoke(cli, ["migrate", "--dsn", roles.owner_dsn, "--schema", roles.schema])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    assert _admin(roles, "SELECT to_regclass(%s) IS NOT NULL",
                  f"{roles.schema}.{ahead}") == [(True,)]


def test_pgvector_namespace_created_by_the_owner_serves_the_app_role(
    pgvector_app_vector_index: Any, pgvector_app_roles: PgRoles
) -> None:
    """The contract's ``pgvector_app`` index is the application role on a table the
    migration role owns; it writes and queries, while bulk_load (drops and rebuilds the
    HNSW index) and a namespace the owner never created are refused with typed errors."""
    index = pgvector_app_vector_index(4, "cosine")
    index.upsert(["a", "b"], [[1, 0, 0, 0], [0, 1, 0, 0]])
    assert [hit["id"] for hit in index.query([1, 0, 0, 0], top_k=1)] == ["a"]
    rows = _admin(pgvector_app_roles, "SELECT tableowner FROM pg_tables"
                  " WHERE schemaname = %s AND tablename = %s",
                  pgvector_app_roles.schema, index.table)
    assert rows == [(pgvector_app_roles.owner,)]
    with pytest.raises(BackendPermissionError, match="42501"), index.bulk_load():
        pass
    stranger = PgVectorIndex.from_config(
        vector_config(4, "cosine", "never_created"),
        postgres_config(pgvector_app_roles.app_dsn, pgvector_app_roles.schema))
    with pytest.raises(BackendPermissionError, match="42501"):
        stranger.connect()


def test_a_write_racing_the_move_of_its_month_waits_and_succeeds(roles: PgRoles) -> None:
    """While the owner moves a month's rows out of the default partition (transaction held
    open), the app role's write of that month waits on the parent table, then succeeds into
    the new partition: maintenance never fails a concurrent insert."""
    clock = ManualClock(start=FEB_2040)
    app = make_postgres_store(roles.app_dsn, roles.schema, clock=clock)
    mover = psycopg2.connect(roles.owner_dsn, connect_timeout=5)
    outcome: dict[str, object] = {}
    try:
        app.write_flow_run(FlowRunWrite("flow", "first"))
        with mover.cursor() as cur:
            cur.execute(sql.SQL("SELECT rows_moved FROM {}.memory_attach_month("
                                "'flow_run_history', 'created_at', %s)").format(
                sql.Identifier(roles.schema)), (dt.datetime(2040, 2, 1, tzinfo=dt.timezone.utc),))
            assert cur.fetchone() == (1,)

        def write() -> None:
            try:
                outcome["row"] = app.write_flow_run(FlowRunWrite("flow", "racing"))
            except BaseException as exc:  # asserted below
                outcome["error"] = exc

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        waiting = False
        for _ in range(300):
            rows = _admin(roles, "SELECT count(*) FROM pg_stat_activity WHERE usename = %s"
                          " AND wait_event_type = 'Lock'", roles.app)
            if rows[0][0]:
                waiting = True
                break
            writer.join(0.1)
        assert waiting, f"the write did not wait for the move: {outcome}"
        mover.commit()
        writer.join(30)
        assert "error" not in outcome, outcome
        where = _admin(roles, "SELECT run_id, tableoid::regclass::text FROM {s}.flow_run_history"
                       " ORDER BY run_id")
        assert where == [("first", f"{roles.schema}.flow_run_history_p2040_02"),
                         ("racing", f"{roles.schema}.flow_run_history_p2040_02")]
    finally:
        mover.close()
        app.close()


def test_the_async_store_works_as_the_app_role(roles: PgRoles) -> None:
    """AsyncPostgresStore (asyncpg) as the application role with auto_migrate on: connects
    without DDL, writes and reads every kind of record, and in a month without partitions
    writes into the default partition. (The whole async contract suite passed as this role
    too; it is not run on every `make test` to keep the suite's time down.)"""
    from memory_resources.stores.postgres.aio import AsyncPostgresStore

    async def scenario() -> None:
        store = AsyncPostgresStore({"dsn": roles.app_dsn, "schema": roles.schema},
                                   clock=ManualClock(start=FEB_2040))
        try:
            await store.connect()
            await store.write_flow_run(FlowRunWrite("flow", "async-run", status="running"))
            assert (await store.read_flow_runs("flow"))[0]["run_id"] == "async-run"
            await store.write_task_output("task", {"answer": 42})
            assert (await store.set_context("ctx", {"k": 1}))["version"] == 1
            token = await store.try_acquire("lock", "me", 5000)
            assert token is not None and await store.release("lock", "me")
            assert len(await store.read_audit(operation="history.write")) == 1
        finally:
            await store.close()

    asyncio.run(scenario())
    assert _count(roles, "flow_run_history_default") == 1
