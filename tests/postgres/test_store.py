"""PostgresStore behaviour beyond the contract suites: NUL handling, codec errors, audit
attribution, bulk writes, statement_timeout, read-replica routing, pool reuse."""

from __future__ import annotations

import random
import socket
import threading
from typing import Any

import psycopg2
import pytest

from memory_resources.errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    MemoryValidationError,
    SerializationError,
)
from memory_resources.records import FlowRunWrite
from memory_resources.runinfo import acting_as
from memory_resources.stores.postgres import PostgresStore
from memory_resources.stores.postgres.pool import Backoff
from tests.concurrency import run_in_threads


def test_nul_in_json_is_refused_naming_the_path_and_nothing_is_written(
    postgres_store: PostgresStore,
) -> None:
    """JSONB cannot hold \\u0000: every JSON write refuses it with SerializationError naming
    where it sits, before any SQL, and neither the row nor an audit row is written."""
    with pytest.raises(SerializationError) as info:
        postgres_store.set_context("c", {"notes": ["ok", "bad\x00text"]})
    assert info.value.path == "data['notes'][1]"
    assert "NUL" in str(info.value)
    with pytest.raises(SerializationError):
        postgres_store.write_task_output("t", {"k": "\x00"})
    with pytest.raises(SerializationError):
        postgres_store.append_event("c", {"\x00key": 1})
    with pytest.raises(SerializationError) as history:
        postgres_store.write_flow_run(FlowRunWrite("f", "r", data={"x": "a\x00"}))
    assert history.value.path == "data['x']"
    assert postgres_store.get_context("c") is None
    assert postgres_store.read_task_output("t") is None
    assert postgres_store.read_flow_runs("f") == []
    assert postgres_store.read_audit() == []


def test_nul_in_a_text_column_is_refused(postgres_store: PostgresStore) -> None:
    """A NUL in a text field (e.g. error_message) is a validation error naming the field."""
    with pytest.raises(Exception) as info:
        postgres_store.write_flow_run(FlowRunWrite("f", "r", error_message="boom\x00"))
    assert getattr(info.value, "field", None) == "error_message"
    assert postgres_store.read_flow_runs("f") == []


def test_non_serialisable_output_raises_the_codec_error(postgres_store: PostgresStore) -> None:
    """An output holding a socket raises SerializationError with its path; nothing stored."""
    with socket.socket() as sock, pytest.raises(SerializationError) as info:
        postgres_store.write_task_output("t", {"items": [1, 2, 3, sock]})
    assert info.value.path == "output['items'][3]"
    assert "socket" in str(info.value)
    assert postgres_store.list_task_outputs("t") == []


def test_audit_rows_carry_the_acting_run_ids(postgres_store: PostgresStore) -> None:
    """Writes made while acting as a run are attributed to it in the audit log."""
    with acting_as("flow-run-1", "task-run-9"):
        postgres_store.write_flow_run(FlowRunWrite("f", "r1", status="running"))
        postgres_store.write_task_output("t", 42)
    rows = postgres_store.read_audit(flow_run_id="flow-run-1")
    assert {r["operation"] for r in rows} == {"history.write", "output.write"}
    assert {r["task_run_id"] for r in rows} == {"task-run-9"}


def test_bulk_write_equals_the_same_writes_one_by_one(postgres_store: PostgresStore) -> None:
    """write_flow_runs with repeated runs in one batch merges them exactly like sequential
    write_flow_run calls would, and audits every run."""
    writes = [FlowRunWrite("f", f"r{i}", status="running", data={"i": i}, tags=["a"])
              for i in range(1500)]
    writes += [FlowRunWrite("f", "r7", status="completed", data={"done": True}, duration=2.5),
               FlowRunWrite("f", "r7", error_message="late note")]
    assert postgres_store.write_flow_runs(writes) == len(writes)
    row = postgres_store.read_flow_runs("f", "r7")[0]
    assert row["status"] == "completed"
    assert row["data"] == {"i": 7, "done": True}
    assert row["tags"] == ["a"]
    assert row["duration"] == 2.5
    assert row["error_message"] == "late note"
    assert len(postgres_store.read_flow_runs("f", limit=10_000)) == 1500
    assert len(postgres_store.read_audit(operation="history.write", limit=10_000)) == 1500


def test_history_filters_by_status_and_time(postgres_store: PostgresStore) -> None:
    """read_flow_runs filters by status and by a created_at range (since incl., until excl.)."""
    for i, status in enumerate(["completed", "failed", "completed"]):
        postgres_store.write_flow_run(FlowRunWrite(
            "f", f"r{i}", status=status, created_at=f"2026-0{i + 1}-15T00:00:00+00:00"))
    assert [r["run_id"] for r in postgres_store.read_flow_runs("f", status="completed")] == [
        "r2", "r0"]
    window = postgres_store.read_flow_runs(None, since="2026-02-15T00:00:00Z",
                                           until="2026-03-15T00:00:00Z")
    assert [r["run_id"] for r in window] == ["r1"]


def test_statement_timeout_is_enforced(postgres_dsn: str, pg_schema: str) -> None:
    """A statement running longer than statement_timeout is cancelled with a typed error,
    not retried, and the connection goes back to the pool healthy."""
    store = PostgresStore({"dsn": postgres_dsn, "schema": pg_schema, "statement_timeout": 200,
                           "max_connections": 1})
    try:
        with pytest.raises(BackendTimeoutError) as info:
            store.pool.run(lambda cur: cur.execute("SELECT pg_sleep(2)"))
        assert "statement timeout" in str(info.value)
        assert isinstance(info.value, TimeoutError)
        assert store.health_check()["status"] == "healthy"
        assert store.pool.stats()["in_use"] == 0
    finally:
        store.close()


def _application_name(cur: Any) -> str:
    cur.execute("SELECT current_setting('application_name')")
    return str(cur.fetchone()[0])


def test_reads_go_to_the_read_replica_when_configured(postgres_dsn: str, pg_schema: str) -> None:
    """With read_replica_dsn set, read_only work runs on the replica connections (seen by
    their application_name) and writes on the primary; store reads use the replica."""
    store = PostgresStore({"dsn": postgres_dsn, "schema": pg_schema,
                           "read_replica_dsn": postgres_dsn, "application_name": "mr_probe"})
    try:
        assert store.pool.run(_application_name) == "mr_probe"
        assert store.pool.run(_application_name, read_only=True) == "mr_probe[replica]"
        store.write_flow_run(FlowRunWrite("f", "r", status="running"))
        before = store.pool.stats()["replica"]["free"]
        assert store.read_flow_runs("f")[0]["status"] == "running"
        assert store.pool.stats()["replica"]["free"] >= max(1, before)
    finally:
        store.close()


def test_pool_wait_ends_in_a_typed_error_after_connection_timeout(
    postgres_dsn: str, pg_schema: str
) -> None:
    """With the only connection held, another call waits connection_timeout, then raises
    BackendUnavailableError naming max_connections; after release the pool works."""
    store = PostgresStore({"dsn": postgres_dsn, "schema": pg_schema, "max_connections": 1,
                           "connection_timeout": 0.3, "retry_attempts": 0})
    try:
        with store.pool.connection(), pytest.raises(BackendUnavailableError,
                                                    match="max_connections=1"):
            store.read_flow_runs("f")
        assert store.read_flow_runs("f") == []
        assert store.pool.stats()["in_use"] == 0
    finally:
        store.close()


def test_closing_the_pool_wakes_its_waiters(postgres_dsn: str, pg_schema: str) -> None:
    """A caller waiting for the only connection (connection_timeout 30 s) raises
    BackendUnavailableError as soon as the store is closed, not after the timeout."""
    store = PostgresStore({"dsn": postgres_dsn, "schema": pg_schema, "max_connections": 1,
                           "connection_timeout": 30, "retry_attempts": 0})
    raised: list[BaseException] = []

    def wait_for_a_connection() -> None:
        try:
            store.read_flow_runs("f")
        except BackendUnavailableError as exc:
            raised.append(exc)

    waiter = threading.Thread(target=wait_for_a_connection)
    # The holder's own transaction fails too: close() closes borrowed connections.
    with pytest.raises(BackendUnavailableError), store.pool.connection():
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive()  # waiting: the only connection is held
        store.close()
        waiter.join(5)
    assert not waiter.is_alive()
    assert len(raised) == 1 and "closed" in str(raised[0])


def test_many_threads_share_a_small_pool_without_lost_wakeups(
    postgres_dsn: str, pg_schema: str
) -> None:
    """8 threads x 40 writes through 2 connections: every waiter is woken by a returned
    connection (a lost wake-up would surface as a timeout), all rows land, none in use."""
    store = PostgresStore({"dsn": postgres_dsn, "schema": pg_schema, "max_connections": 2,
                           "connection_timeout": 5})
    try:
        def writer(worker: int) -> None:
            for i in range(40):
                store.write_flow_run(FlowRunWrite("pool", f"w{worker}-{i}", status="ok"))

        errors = run_in_threads(*[lambda w=w: writer(w) for w in range(8)])
        assert errors == []
        assert len(store.read_flow_runs("pool", limit=1000)) == 320
        assert store.pool.stats()["in_use"] == 0
    finally:
        store.close()


def test_pool_waits_for_a_free_connection_instead_of_failing(
    postgres_dsn: str, pg_schema: str
) -> None:
    """With every connection borrowed, another caller waits and proceeds on release."""
    store = PostgresStore({"dsn": postgres_dsn, "schema": pg_schema, "max_connections": 2})
    try:
        release = threading.Event()
        holding = threading.Barrier(3)

        def hold() -> None:
            with store.pool.connection():
                holding.wait()
                release.wait(10)

        holders = [threading.Thread(target=hold) for _ in range(2)]
        for thread in holders:
            thread.start()
        holding.wait()
        assert store.pool.stats()["in_use"] == 2
        result: list[int] = []

        def select_seven(cur: Any) -> int:
            cur.execute("SELECT 7")
            return int(cur.fetchone()[0])

        waiter = threading.Thread(target=lambda: result.append(store.pool.run(select_seven)))
        waiter.start()
        waiter.join(0.3)
        assert result == []  # still waiting: no connection free
        release.set()
        waiter.join(10)
        for thread in holders:
            thread.join(10)
        assert result == [7]
        assert store.pool.stats()["in_use"] == 0
    finally:
        store.close()


def test_a_terminated_connection_is_replaced_transparently(
    postgres_dsn: str, pg_schema: str
) -> None:
    """When the server kills pooled connections, the next idempotent call retries on a
    fresh connection and succeeds; the broken ones are not returned to the pool."""
    store = PostgresStore({"dsn": postgres_dsn, "schema": pg_schema, "max_connections": 2,
                           "application_name": f"mr_kill_{pg_schema}"})
    try:
        store.write_flow_run(FlowRunWrite("f", "r", status="running"))
        admin = psycopg2.connect(postgres_dsn)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE application_name = %s", (f"mr_kill_{pg_schema}",))
            killed = cur.fetchone()
            assert killed is not None and killed[0] >= 1
        admin.close()
        assert store.read_flow_runs("f")[0]["status"] == "running"
        assert store.pool.stats()["in_use"] == 0
    finally:
        store.close()


def test_driver_errors_never_escape_raw(postgres_store: PostgresStore) -> None:
    """A SQL error inside pool.connection() surfaces as BackendError with the SQLSTATE."""
    with pytest.raises(BackendError) as info, postgres_store.pool.connection() as conn, \
            conn.cursor() as cur:
        cur.execute("SELECT * FROM no_such_table_here")
    assert "42P01" in str(info.value)
    assert not isinstance(info.value, psycopg2.Error)


def test_expired_contexts_are_swept_after_a_later_write_without_cron(
    postgres_store_factory: Any,
) -> None:
    """An expired context is invisible at once and its rows (with its events) are deleted
    by the periodic sweep that a later context write triggers."""
    from memory_resources.clock import ManualClock
    from memory_resources.stores.postgres.store import PURGE_INTERVAL

    clock = ManualClock()
    store = postgres_store_factory(clock=clock)
    store.set_context("short", {"v": 1}, ttl=10)
    store.append_event("short", {"e": 1})
    clock.advance(11)
    assert store.get_context("short") is None
    assert store.get_events("short") == []

    def count(cur: Any) -> tuple[int, int]:
        cur.execute(f'SELECT (SELECT count(*) FROM "{store.schema}".memory_context),'
                    f' (SELECT count(*) FROM "{store.schema}".memory_events)')
        row = cur.fetchone()
        return int(row[0]), int(row[1])

    assert store.pool.run(count) == (1, 1)  # invisible, not yet deleted
    clock.advance(PURGE_INTERVAL)
    store.set_context("other", {"v": 2})
    assert store.pool.run(count) == (1, 0)  # only "other" is left


@pytest.mark.parametrize("prepared", [True, False])
def test_history_write_with_and_without_server_prepared_statements(
    postgres_store_factory: Any, prepared: bool
) -> None:
    """The single history write gives the same rows either way; only with
    prepared_statements on does the connection hold a server-side prepared statement
    (off is for PgBouncer in transaction-pooling mode)."""
    store = postgres_store_factory(prepared_statements=prepared, max_connections=1)
    store.write_flow_run(FlowRunWrite("f", "r", status="running", tags=["t"]))
    row = store.write_flow_run(FlowRunWrite("f", "r", status="completed", data={"k": 1}))
    assert (row["status"], row["tags"], row["data"]) == ("completed", ["t"], {"k": 1})

    def statements(cur: Any) -> int:
        cur.execute("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'mr_%%'")
        return int(cur.fetchone()[0])

    assert store.pool.run(statements) == (1 if prepared else 0)


def test_health_and_stats_report_the_server_pool_tables_and_partitions(
    postgres_store: PostgresStore,
) -> None:
    """health_check gives the server version; stats give active_connections, pool usage,
    database size, every table's row estimate and size, and the month partitions."""
    health = postgres_store.health_check()
    assert health["status"] == "healthy"
    assert health["details"]["server_version"]
    stats = postgres_store.stats()
    assert stats["active_connections"] >= 1
    assert stats["database_size_bytes"] > 0
    assert stats["pool"]["in_use"] == 0 and stats["pool"]["free"] >= 1
    for table in ("flow_run_history", "task_outputs", "audit_log", "memory_context",
                  "memory_events", "vector_embeddings", "schema_migrations"):
        assert {"rows_estimate", "size_bytes"} <= set(stats["tables"][table])
    for parent in ("flow_run_history", "audit_log"):
        names = [p["name"] for p in stats["partitions"][parent]]
        assert f"{parent}_default" in names
        assert any(name.startswith(f"{parent}_p") for name in names)


def test_single_statement_operations_send_no_begin_and_restore_transactions(
    postgres_store: PostgresStore,
) -> None:
    """single_statement=True runs in autocommit mode: the statement starts its own
    transaction (no BEGIN round trip before it: now() equals statement_timestamp()). The
    connection goes back to the pool transactional, also after a failing statement."""
    pool = postgres_store.pool

    def same_start(cur: Any) -> bool:
        cur.execute("SELECT now() = statement_timestamp()")
        return bool(cur.fetchone()[0])

    assert pool.run(same_start, single_statement=True) is True
    assert pool.run(same_start) is False
    with pytest.raises(BackendError):
        pool.run(lambda cur: cur.execute("SELECT 1 / 0"), single_statement=True)

    def create_then_fail(cur: Any) -> None:
        cur.execute("CREATE TABLE single_statement_probe (x int)")
        cur.execute("SELECT 1 / 0")

    with pytest.raises(BackendError):
        pool.run(create_then_fail, idempotent=False)

    def probe_exists(cur: Any) -> bool:
        cur.execute("SELECT to_regclass('single_statement_probe') IS NOT NULL")
        return bool(cur.fetchone()[0])

    assert pool.run(probe_exists) is False  # the CREATE was rolled back with the failure
    assert pool.run(same_start) is False


def test_bulk_write_in_chunks_is_one_transaction(
    postgres_store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows travel as JSON in chunks of BULK_CHUNK_ROWS; quotes, backslashes, unicode, tags,
    parameters and times survive, and a failure in a later chunk rolls back the earlier
    ones."""
    from memory_resources.stores.postgres import history, plan
    from memory_resources.stores.postgres import pool as pg_pool

    monkeypatch.setattr(history, "BULK_CHUNK_ROWS", 3)
    odd = 'q"uo\\te ünï \u2028 {}'
    writes = [FlowRunWrite("f", f"r{i}", flow_name=odd, status="ok", tags=[odd, "t"],
                           parameters={"p": odd}, data={"i": i, odd: [odd]},
                           started_at="2026-01-02T03:04:05.123456+00:00", duration=1.5,
                           run_count=i) for i in range(7)]
    assert postgres_store.write_flow_runs(writes) == 7
    rows = {r["run_id"]: r for r in postgres_store.read_flow_runs("f", limit=100)}
    assert len(rows) == 7
    row = rows["r4"]
    assert (row["flow_name"], row["tags"], row["parameters"]) == (odd, [odd, "t"], {"p": odd})
    assert row["data"] == {"i": 4, odd: [odd]}
    assert row["started_at"] == "2026-01-02T03:04:05.123456+00:00"
    assert (row["duration"], row["run_count"]) == (1.5, 4)

    real = pg_pool.execute_prepared
    calls: list[int] = []
    fault: list[type[psycopg2.Error]] = [psycopg2.DataError]

    def fail_second_chunk(cur: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise fault[0]("injected failure in the second chunk")
        real(cur, *args, **kwargs)

    monkeypatch.setattr(plan, "execute_prepared", fail_second_chunk)
    with pytest.raises(BackendError):
        postgres_store.write_flow_runs([FlowRunWrite("g", f"g{i}") for i in range(7)])
    assert postgres_store.read_flow_runs("g") == []
    assert postgres_store.read_audit(operation="history.write", target="g0") == []

    # A transient fault is retried as a whole: every row once, one audit row each.
    calls.clear()
    fault[0] = psycopg2.OperationalError
    assert postgres_store.write_flow_runs([FlowRunWrite("h", f"s{i}") for i in range(7)]) == 7
    assert len(calls) == 2 + 3  # failed at the second of three chunks, then all three
    assert len(postgres_store.read_flow_runs("h")) == 7
    assert len(postgres_store.read_audit(operation="history.write", target="s3")) == 1


def test_run_count_beyond_int4_is_a_validation_error(postgres_store: PostgresStore) -> None:
    """run_count must fit PostgreSQL's integer column: refused before any SQL."""
    with pytest.raises(MemoryValidationError, match="run_count"):
        postgres_store.write_flow_run(FlowRunWrite("f", "r", run_count=2**31))
    assert postgres_store.read_flow_runs("f") == []


def test_retry_backoff_leaves_the_global_random_state_alone() -> None:
    """The pool's backoff jitter uses a private generator."""
    state = random.getstate()
    delays = [Backoff(base=0.1, cap=1.0).compute(failures) for failures in range(1, 6)]
    assert random.getstate() == state
    assert all(0 <= delay <= 1.0 for delay in delays)
