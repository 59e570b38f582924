"""Faults on a throwaway PostgreSQL the test starts, stops and kills."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psutil
import pytest

from memory_resources.clock import ManualClock
from memory_resources.config import PostgresConfig
from memory_resources.errors import (
    BackendAuthenticationError,
    BackendUnavailableError,
)
from memory_resources.records import FlowRunWrite
from memory_resources.stores.postgres import PostgresPool, PostgresStore

POOL_SIZE = 3


def test_server_down_gives_typed_errors_without_leaking_the_pool(
    postgres_server_factory: Callable[..., Any],
) -> None:
    """With the server stopped, 3x pool-size calls each fail with BackendUnavailableError
    after retries and never leave a connection borrowed; once the server is back the same
    store serves calls again."""
    server = postgres_server_factory()
    clock = ManualClock()  # backoff sleeps advance it instead of blocking
    store = PostgresStore({"dsn": server.dsn, "schema": "fault_test", "retry_attempts": 2,
                           "max_connections": POOL_SIZE, "connection_timeout": 2},
                          clock=clock)
    try:
        store.write_flow_run(FlowRunWrite("f", "before", status="completed"))
        server.stop()
        for i in range(3 * POOL_SIZE):
            with pytest.raises(BackendUnavailableError) as info:
                store.write_flow_run(FlowRunWrite("f", f"during-{i}", status="running"))
            assert "after 3 attempts" in str(info.value)
            assert store.pool.stats()["in_use"] == 0
        assert store.health_check()["status"] == "unhealthy"
        server.start()
        store.write_flow_run(FlowRunWrite("f", "after", status="completed"))
        runs = {r["run_id"] for r in store.read_flow_runs("f")}
        assert runs == {"before", "after"}
        assert store.pool.stats()["in_use"] == 0
        assert store.health_check()["status"] == "healthy"
    finally:
        store.close()


def test_killed_server_is_reported_and_recovered_from(
    postgres_server_factory: Callable[..., Any],
) -> None:
    """After the postmaster is SIGKILLed (and its orphaned backend gone: until then it may
    still answer) a call fails with BackendUnavailableError; once it is restarted, pooled
    (now dead) connections are detected and replaced on the next call."""
    server = postgres_server_factory()
    store = PostgresStore({"dsn": server.dsn, "schema": "kill_test",
                           "max_connections": POOL_SIZE, "connection_timeout": 2},
                          clock=ManualClock())
    try:
        store.set_context("c", {"v": 1})
        def backend_pid(cur: Any) -> int:
            cur.execute("SELECT pg_backend_pid()")
            return int(cur.fetchone()[0])

        backend = store.pool.run(backend_pid)
        server.kill()
        deadline = time.monotonic() + 10  # an orphaned backend exits once it notices
        while psutil.pid_exists(backend) and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(BackendUnavailableError):
            store.get_context("c")
        server.start()
        assert store.get_context("c")["data"] == {"v": 1}  # type: ignore[index]
        assert store.pool.stats()["in_use"] == 0
    finally:
        store.close()


def test_unreachable_server_at_connect_is_a_typed_error(
    postgres_server_factory: Callable[..., Any],
) -> None:
    """Connecting to a stopped server raises BackendUnavailableError after the retries."""
    server = postgres_server_factory()
    dsn = server.dsn
    server.stop()
    with pytest.raises(BackendUnavailableError) as info:
        PostgresPool(PostgresConfig(dsn=dsn, retry_attempts=1, connection_timeout=2),
                     clock=ManualClock())
    assert "after 2 attempts" in str(info.value)


def test_refused_login_is_an_authentication_error_without_the_password(
    postgres_dsn: str,
) -> None:
    """A login the server refuses raises BackendAuthenticationError, whose message never
    contains the password, and is not retried."""
    secret = "hunter2-very-secret"
    config = PostgresConfig(host="127.0.0.1", port=int(postgres_dsn.rsplit(":", 1)[1]
                                                         .split("/")[0]),
                            database="postgres", user="mr_no_such_role_x",
                            password=secret, retry_attempts=3)
    with pytest.raises(BackendAuthenticationError) as info:
        PostgresPool(config, clock=ManualClock())
    assert secret not in str(info.value)
    assert secret not in repr(info.value.args)


def test_refused_login_by_dsn_never_shows_the_dsn_password(postgres_dsn: str) -> None:
    """With the password inside the DSN, neither the DSN nor the password appears in the
    error raised for a refused login."""
    secret = "dsn-pass-7731"
    port = postgres_dsn.rsplit(":", 1)[1].split("/")[0]
    dsn = f"postgresql://mr_no_such_role_y:{secret}@127.0.0.1:{port}/postgres"
    with pytest.raises(BackendAuthenticationError) as info:
        PostgresPool(PostgresConfig(dsn=dsn), clock=ManualClock())
    assert secret not in str(info.value)
    assert dsn not in str(info.value)
