"""Stale pooled connections: closed by the server (pg_terminate_backend, as proxies and
cloud idle timeouts do) or by a restart; no call fails, non-idempotent ones included."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg2

from memory_resources.stores.postgres import PostgresStore

POOL_SIZE = 3
CALLS = 30


def _terminate_own(dsn: str, application_name: str) -> int:
    """pg_terminate_backend every idle connection of ``application_name`` (this test's
    own pool) and wait until they are gone; returns how many were terminated."""
    conn = psycopg2.connect(dsn, connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE application_name = %s AND pid <> pg_backend_pid()",
                        (application_name,))
            terminated = int(cur.fetchone()[0])  # type: ignore[index]
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                            (application_name,))
                if cur.fetchone()[0] == 0:  # type: ignore[index]
                    break
                time.sleep(0.02)
    finally:
        conn.close()
    return terminated


def _fill_pool(store: PostgresStore) -> None:
    """Make the pool hold POOL_SIZE idle connections."""
    holders: list[Any] = []
    for _ in range(POOL_SIZE):
        context = store.pool.connection()
        context.__enter__()
        holders.append(context)
    for context in holders:
        context.__exit__(None, None, None)
    assert store.pool.stats()["free"] == POOL_SIZE


def _non_idempotent_calls(store: PostgresStore, tag: str) -> list[BaseException]:
    """CALLS non-idempotent writes (append_event, write_task_output, set_context), each
    checked; returns the errors raised."""
    errors: list[BaseException] = []
    for i in range(CALLS):
        try:
            kind = i % 3
            if kind == 0:
                store.append_event(f"ctx-{tag}", {"i": i})
            elif kind == 1:
                store.write_task_output(f"task-{tag}", {"i": i})
            else:
                store.set_context(f"ctx-{tag}", {"i": i})
        except BaseException as exc:
            errors.append(exc)
    return errors


def test_connections_terminated_by_the_server_are_replaced_before_use(
    postgres_dsn: str, pg_schema: str
) -> None:
    """After pg_terminate_backend of every idle pooled connection, 30 non-idempotent
    writes all succeed (was 3 of 30 failing), each written exactly once."""
    name = f"mr_stale_{uuid.uuid4().hex[:8]}"
    store = PostgresStore({"dsn": postgres_dsn, "schema": pg_schema, "application_name": name,
                           "max_connections": POOL_SIZE, "retry_attempts": 0})
    try:
        store.connect()
        _fill_pool(store)
        assert _terminate_own(postgres_dsn, name) == POOL_SIZE
        assert _non_idempotent_calls(store, "t") == []
        assert len(store.get_events("ctx-t")) == CALLS // 3
        assert len(store.list_task_outputs("task-t")) == CALLS // 3
        assert store.pool.stats()["in_use"] == 0
    finally:
        store.close()


def test_restarted_server_costs_no_call(postgres_server_factory: Callable[..., Any]) -> None:
    """After a restart, the pool's dead connections are replaced before use: 30
    non-idempotent writes succeed; with the default retries (connects span >= 1.75 s),
    calls made while the server is still down wait for it and succeed too."""
    server = postgres_server_factory()
    store = PostgresStore({"dsn": server.dsn, "schema": "restart_test",
                           "max_connections": POOL_SIZE})
    try:
        store.connect()
        _fill_pool(store)
        server.restart()
        assert _non_idempotent_calls(store, "a") == []
        _fill_pool(store)
        server.stop()
        started = time.monotonic()
        restarter = threading.Timer(0.2, server.start)
        restarter.start()
        try:
            assert _non_idempotent_calls(store, "b") == []
        finally:
            restarter.join()
        assert time.monotonic() - started < store.config.operation_timeout
        assert len(store.get_events("ctx-a")) == CALLS // 3
        assert len(store.get_events("ctx-b")) == CALLS // 3
        assert store.pool.stats()["in_use"] == 0
    finally:
        store.close()


def test_idle_and_old_connections_are_replaced(postgres_dsn: str, pg_schema: str) -> None:
    """A connection idle longer than max_idle, or older than max_lifetime, is closed and
    replaced when next borrowed (a new backend pid serves the call)."""
    store = PostgresStore({"dsn": postgres_dsn, "schema": pg_schema, "max_connections": 1,
                           "max_idle": 0.2, "max_lifetime": 3600})

    def pid() -> int:
        return int(store.pool.run(lambda cur: (cur.execute("SELECT pg_backend_pid()"),
                                               cur.fetchone())[1][0]))

    try:
        first = pid()
        assert pid() == first  # reused while fresh
        time.sleep(0.3)
        second = pid()
        assert second != first
        store.pool.config.max_idle = 3600
        store.pool.config.max_lifetime = 0.2
        time.sleep(0.25)
        assert pid() != second
    finally:
        store.close()
