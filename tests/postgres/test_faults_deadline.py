"""Deadlines: a server that stops answering (the loopback proxy black-holes it) ends every
call in a typed error within the call's ``operation_timeout``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from memory_resources import MemoryAPI
from memory_resources.config import PostgresConfig
from memory_resources.errors import BackendTimeoutError, BackendUnavailableError
from memory_resources.records import FlowRunWrite
from memory_resources.stores.postgres import PostgresPool, PostgresStore
from memory_resources.stores.postgres.store import HEALTH_TIMEOUT
from tests.servers.proxy import TcpProxy

BUDGET = 1.0
SLACK = 1.0  # the watchdog tick, thread start-up and a loaded 2-core machine


def via(proxy: TcpProxy, dsn: str) -> str:
    """``dsn`` pointing at the proxy instead of the server."""
    parts = urlsplit(dsn)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


@pytest.fixture
def proxy(postgres_dsn: str) -> Iterator[TcpProxy]:
    """A proxy in front of the session's PostgreSQL."""
    port = urlsplit(postgres_dsn).port or 5432
    with TcpProxy("127.0.0.1", port) as running:
        yield running


def timed(call: object) -> tuple[BaseException | None, float]:
    """Run ``call()``; return what it raised (or None) and how long it took."""
    started = time.monotonic()
    try:
        call()  # type: ignore[operator]
    except BaseException as exc:
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


def test_black_holed_connection_ends_writes_and_health_within_the_deadline(
    proxy: TcpProxy, postgres_dsn: str, pg_schema: str
) -> None:
    """On an established connection that stops answering, write_flow_run raises
    BackendTimeoutError within operation_timeout, health_check reports unhealthy within
    HEALTH_TIMEOUT, nothing stays borrowed, and the store recovers once traffic flows."""
    store = PostgresStore({"dsn": via(proxy, postgres_dsn), "schema": pg_schema,
                           "max_connections": 2})
    try:
        store.write_flow_run(FlowRunWrite("f", "before", status="running"))
        store.config.operation_timeout = BUDGET  # after the migrations, which take longer
        proxy.blackhole()
        error, took = timed(lambda: store.write_flow_run(
            FlowRunWrite("f", "during", status="running")))
        assert isinstance(error, BackendTimeoutError), error
        assert "operation_timeout=1s" in str(error)
        assert took < BUDGET + SLACK
        started = time.monotonic()
        report = store.health_check()
        assert report["status"] == "unhealthy"
        assert time.monotonic() - started < min(HEALTH_TIMEOUT, BUDGET) + SLACK
        assert store.pool.stats()["in_use"] == 0
        proxy.pass_through()
        store.write_flow_run(FlowRunWrite("f", "after", status="completed"))
        assert {r["run_id"] for r in store.read_flow_runs("f")} >= {"before", "after"}
    finally:
        proxy.pass_through()
        store.close()


def test_black_holed_read_inside_a_transaction_is_cut_at_the_deadline(
    proxy: TcpProxy, postgres_dsn: str, pg_schema: str
) -> None:
    """A multi-statement transaction (pool.connection()) on a black-holed connection
    raises BackendTimeoutError within its timeout, and the connection is replaced."""
    pool = PostgresPool(PostgresConfig(dsn=via(proxy, postgres_dsn), schema=pg_schema,
                                       operation_timeout=BUDGET))
    try:
        def transaction() -> None:
            with pool.connection() as conn, conn.cursor() as cur:
                cur.execute("SELECT 1")
                proxy.blackhole()
                cur.execute("SELECT 2")

        error, took = timed(transaction)
        assert isinstance(error, BackendTimeoutError), error
        assert took < BUDGET + SLACK
        proxy.pass_through()
        assert pool.run(lambda cur: (cur.execute("SELECT 3"), cur.fetchone())[1]) == (3,)
        assert pool.stats()["in_use"] == 0
    finally:
        proxy.pass_through()
        pool.close()


def test_hung_server_at_connect_fails_within_the_deadline(
    proxy: TcpProxy, postgres_dsn: str, pg_schema: str
) -> None:
    """A server that accepts TCP and never answers (defaults: 120 s before) makes
    connect() raise BackendUnavailableError within operation_timeout, not
    connect_timeout x attempts."""
    proxy.blackhole()
    store = PostgresStore({"dsn": via(proxy, postgres_dsn), "schema": pg_schema,
                           "operation_timeout": BUDGET})
    error, took = timed(store.connect)
    assert isinstance(error, BackendUnavailableError), error
    assert "operation_timeout=1s" in str(error)
    assert took < BUDGET + SLACK


def test_health_check_of_a_hung_server_is_bounded_with_default_config(
    proxy: TcpProxy, postgres_dsn: str, pg_schema: str
) -> None:
    """With the default operation_timeout, MemoryAPI.health_check() on a connected API
    whose server hangs reports postgres unhealthy within HEALTH_TIMEOUT."""
    api = MemoryAPI(postgres_config={"dsn": via(proxy, postgres_dsn), "schema": pg_schema})
    try:
        api.write_flow_run_history("f", "r", {"status": "running"})
        proxy.blackhole()
        started = time.monotonic()
        report = api.health_check()
        took = time.monotonic() - started
        assert report["adapters"]["postgres"]["status"] == "unhealthy"
        assert took < HEALTH_TIMEOUT + SLACK
    finally:
        proxy.pass_through()
        api.disconnect()


def test_slow_but_answering_server_is_not_cut(
    proxy: TcpProxy, postgres_dsn: str, pg_schema: str
) -> None:
    """A server 0.1 s slow per round trip still completes calls well inside the budget
    (the deadline cuts hung calls only)."""
    store = PostgresStore({"dsn": via(proxy, postgres_dsn), "schema": pg_schema})
    try:
        store.connect()
        store.config.operation_timeout = BUDGET * 3
        proxy.delay(0.1)
        record = store.write_flow_run(FlowRunWrite("f", "slow", status="completed"))
        assert record["run_id"] == "slow"
    finally:
        proxy.pass_through()
        store.close()


def test_pgvector_health_check_of_a_hung_server_is_bounded(postgres_dsn: str) -> None:
    """The pgvector index's health_check() against a server that never answers reports
    unhealthy within HEALTH_TIMEOUT (connecting included), not operation_timeout."""
    from memory_resources.stores.pgvector.index import PgVectorIndex
    from tests.fixtures.pgvector import vector_config

    port = urlsplit(postgres_dsn).port or 5432
    with TcpProxy("127.0.0.1", port) as hung:
        hung.blackhole()
        config = PostgresConfig(dsn=via(hung, postgres_dsn), schema="pgv_hung",
                                auto_migrate=False)
        index = PgVectorIndex.from_config(vector_config(4, "cosine", "hung"), config)
        started = time.monotonic()
        report = index.health_check()
        assert report["status"] == "unhealthy"
        assert time.monotonic() - started < HEALTH_TIMEOUT + SLACK
        index.close()


def test_deadline_holds_in_a_forked_child(proxy: TcpProxy, postgres_dsn: str) -> None:
    """A process forked after the watchdog started (threads do not survive fork) still
    gets its calls on a black-holed connection cut at the deadline."""
    import os

    warm = PostgresPool(PostgresConfig(dsn=postgres_dsn, operation_timeout=BUDGET))
    warm.run(lambda cur: cur.execute("SELECT 1"))  # the parent's watchdog is running
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        code = 1
        try:
            pool = PostgresPool(PostgresConfig(dsn=via(proxy, postgres_dsn),
                                               operation_timeout=BUDGET))
            os.write(ready_w, b"r")
            os.read(go_r, 1)  # the parent (where the proxy's threads run) black-holes it
            error, took = timed(lambda: pool.run(lambda cur: cur.execute("SELECT 1")))
            code = 0 if isinstance(error, BackendTimeoutError) and took < BUDGET + SLACK else 3
        finally:
            os._exit(code)
    os.read(ready_r, 1)
    proxy.blackhole()
    os.write(go_w, b"g")
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError("the forked child's call never ended")
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        proxy.pass_through()
        warm.close()
        for fd in (ready_r, ready_w, go_r, go_w):
            os.close(fd)
