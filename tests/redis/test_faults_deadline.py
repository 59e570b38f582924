"""Deadlines, retries across a restart, and transient vs permanent errors, on real servers.

Restarts use throwaway servers (SIGKILL and start again on the same port); hangs use the
loopback TCP proxy black-holing a throwaway server. Elapsed-time bounds are hang guards
with generous slack, not benchmarks.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from memory_resources.errors import BackendAuthenticationError, BackendUnavailableError
from memory_resources.stores.redis.aio import AsyncRedisStore
from tests.fixtures.redis import MakeRedisStore
from tests.servers import RedisServer
from tests.servers.proxy import TcpProxy

PASSWORD = "Fault-Test-Pw-4471"


@pytest.fixture
def server(redis_server_factory: Callable[..., RedisServer]) -> RedisServer:
    """A throwaway Redis this test may kill, stop and restart."""
    return redis_server_factory()


@pytest.fixture
def proxy(server: RedisServer) -> Iterator[TcpProxy]:
    """A TCP proxy in front of the throwaway server, passing traffic."""
    with TcpProxy("127.0.0.1", server.port) as tcp:
        yield tcp


def _connections_received(server: RedisServer) -> int:
    with server.client() as admin:
        return int(admin.info("stats")["total_connections_received"])


def test_restart_loses_no_call_with_the_default_config(
    server: RedisServer, make_redis_store: MakeRedisStore
) -> None:
    """set_context / get_context called in a loop while the server is SIGKILLed and started
    again 0.5 s later on the same port: every call succeeds (the outage is retried)."""
    store = make_redis_store(url=server.url)
    store.set_context("c", {"i": -1})
    failures: list[BaseException] = []
    calls = [0]
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                store.set_context("c", {"i": calls[0]})
                store.get_context("c")
            except Exception as exc:  # counted, the assertion below shows them
                failures.append(exc)
            calls[0] += 1

    worker = threading.Thread(target=loop)
    worker.start()
    try:
        time.sleep(0.2)
        before = calls[0]
        server.kill()
        time.sleep(0.5)
        server.start()
        after = calls[0]
        limit = time.monotonic() + 10
        while calls[0] < after + 5 and time.monotonic() < limit:
            time.sleep(0.01)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert failures == []
    assert calls[0] >= after + 5 > before  # calls ran across and after the restart
    record = store.get_context("c")
    assert record is not None and record["data"]["i"] >= before


def test_append_event_waiting_on_a_restart_is_stored_once(
    server: RedisServer, make_redis_store: MakeRedisStore
) -> None:
    """append_event issued while the server is down (connection refused: provably never
    sent) is retried and stored exactly once after the restart."""
    store = make_redis_store(url=server.url)
    store.append_event("c", {"n": 1})
    server.stop()  # SHUTDOWN SAVE: the first event survives
    outcome: list[object] = []
    caller = threading.Thread(target=lambda: outcome.append(store.append_event("c", {"n": 2})))
    caller.start()
    time.sleep(0.5)
    server.start()
    caller.join(timeout=15)
    assert len(outcome) == 1
    assert [e["data"]["n"] for e in store.get_events("c")] == [1, 2]


def test_hung_server_ends_within_operation_timeout(
    proxy: TcpProxy, make_redis_store: MakeRedisStore
) -> None:
    """A server that stops answering mid-connection (black-holed): get_context raises
    BackendUnavailableError after operation_timeout, though socket_timeout is longer."""
    store = make_redis_store(url=f"redis://127.0.0.1:{proxy.port}/0", operation_timeout=1.0,
                             socket_timeout=5, connection_timeout=5)
    store.set_context("c", {"v": 1})
    proxy.blackhole()
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="operation_timeout=1"):
        store.get_context("c")
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 1.6
    proxy.pass_through()
    proxy.cut()  # the black-holed connection is dropped; the next call reconnects
    assert store.get_context("c") is not None


def test_connect_and_health_check_to_a_hung_server_are_bounded(
    proxy: TcpProxy, make_redis_store: MakeRedisStore
) -> None:
    """Black-holed before the first connection: connect() fails after operation_timeout and
    health_check() reports unhealthy within 3 s even with the default 10 s budget."""
    proxy.blackhole()
    url = f"redis://127.0.0.1:{proxy.port}/0"
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError):
        make_redis_store(url=url, operation_timeout=0.8).connect()
    assert time.monotonic() - started < 1.5
    started = time.monotonic()
    report = make_redis_store(url=url, socket_timeout=5, connection_timeout=5).health_check()
    assert time.monotonic() - started <= 3.0
    assert report["status"] == "unhealthy" and "health_check" in str(report["error"])


def test_append_event_is_not_retried_once_sent(
    proxy: TcpProxy, make_redis_store: MakeRedisStore
) -> None:
    """A connection that goes silent after append_event was sent: raised after one
    socket_timeout (not the whole operation_timeout), saying it may have been applied."""
    store = make_redis_store(url=f"redis://127.0.0.1:{proxy.port}/0", socket_timeout=0.3,
                             operation_timeout=5)
    store.append_event("c", {"n": 1})
    proxy.blackhole()
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="may or may not have been applied"):
        store.append_event("c", {"n": 2})
    assert time.monotonic() - started < 1.5


def test_wrong_password_raises_at_once_without_retry(
    redis_server_factory: Callable[..., RedisServer], make_redis_store: MakeRedisStore
) -> None:
    """A wrong password with the default retry settings: BackendAuthenticationError in
    under 1 s after exactly one connection, naming what to fix, never the password."""
    server = redis_server_factory(password=PASSWORD)
    wrong = "Not-" + PASSWORD
    store = make_redis_store(url=f"redis://127.0.0.1:{server.port}/0", password=wrong)
    before = _connections_received(server)
    started = time.monotonic()
    with pytest.raises(BackendAuthenticationError, match="check password") as info:
        store.set_context("c", {})
    assert time.monotonic() - started < 1.0
    assert _connections_received(server) - before == 2  # the store's one and this probe
    assert wrong not in str(info.value) and PASSWORD not in str(info.value)


def test_acl_user_without_permission_raises_at_once(
    server: RedisServer, make_redis_store: MakeRedisStore
) -> None:
    """An ACL user denied scripting (NOPERM) gets BackendAuthenticationError for
    set_context in under 1 s with no retry, naming the missing permission; reads work."""
    with server.client() as admin:
        admin.execute_command("ACL", "SETUSER", "reader", "on", f">{PASSWORD}", "~*",
                              "+@all", "-@scripting")
    store = make_redis_store(url=f"redis://127.0.0.1:{server.port}/0", username="reader",
                             password=PASSWORD)
    assert store.get_context("c") is None
    started = time.monotonic()
    with pytest.raises(BackendAuthenticationError, match="lacks a permission") as info:
        store.set_context("c", {"v": 1})
    assert time.monotonic() - started < 1.0
    assert "NoPermissionError" in str(info.value) and "ACL SETUSER" in str(info.value)


def test_read_only_replica_is_retried_until_promoted(
    redis_server_factory: Callable[..., RedisServer], make_redis_store: MakeRedisStore
) -> None:
    """Writes to a replica (READONLY, as during a failover) are retried with backoff: they
    fail after operation_timeout while it stays a replica, and succeed once it is promoted
    during the call."""
    primary = redis_server_factory()
    replica = redis_server_factory(extra_args=("--replicaof", "127.0.0.1", str(primary.port)))
    with replica.client(decode_responses=True) as admin:  # wait for the initial sync
        limit = time.monotonic() + 10
        while admin.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < limit, "the replica never synced"
            time.sleep(0.05)
    store = make_redis_store(url=replica.url, operation_timeout=0.6)
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="ReadOnlyError"):
        store.set_context("c", {"v": 1})
    assert time.monotonic() - started >= 0.5  # retried until the deadline, not raised at once
    patient = make_redis_store(url=replica.url)
    outcome: list[object] = []
    caller = threading.Thread(target=lambda: outcome.append(patient.set_context("c", {"v": 2})))
    caller.start()
    time.sleep(0.4)
    with replica.client() as admin:
        admin.execute_command("REPLICAOF", "NO", "ONE")
    caller.join(timeout=15)
    assert len(outcome) == 1
    with replica.client(decode_responses=True) as admin:
        assert admin.exists(patient.keys.context("c")) == 1


def test_pool_connections_survive_a_restart_without_redis_py_retries(
    server: RedisServer, make_redis_store: MakeRedisStore
) -> None:
    """redis-py's own Retry is off on every pooled connection (the store's policy is the only
    loop), and a stale pooled connection after a restart is replaced, not reported."""
    store = make_redis_store(url=server.url)
    store.get_context("c")
    conn = store.client.connection_pool.get_connection()
    try:
        assert conn.retry.get_retries() == 0
    finally:
        store.client.connection_pool.release(conn)
    server.kill()
    server.start()
    assert store.get_context("c") is None


def test_async_store_wrong_password_is_not_retried(
    redis_server_factory: Callable[..., RedisServer], redis_prefix: str
) -> None:
    """The asyncio transport classifies errors the same way: a wrong password raises
    BackendAuthenticationError in under 1 s with the default retry_attempts."""
    server = redis_server_factory(password=PASSWORD)
    store = AsyncRedisStore({"url": f"redis://127.0.0.1:{server.port}/0",
                             "password": "Not-" + PASSWORD, "key_prefix": redis_prefix})

    async def call() -> float:
        started = time.monotonic()
        try:
            with pytest.raises(BackendAuthenticationError):
                await store.get_context("c")
        finally:
            await store.close()
        return time.monotonic() - started

    assert asyncio.run(call()) < 1.0
