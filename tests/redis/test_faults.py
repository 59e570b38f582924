"""Faults on real sockets: nothing listening, a server stopped under the store, a server
that accepts but never answers, wrong credentials and an exhausted pool. Each ends in a
typed error after the configured retries, never a hang or a silent False.

The elapsed-time bounds here are hang guards (generous multiples of
socket_timeout x attempts), not performance assertions.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest

from memory_resources.errors import (
    BackendAuthenticationError,
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
)
from memory_resources.locking import Lock
from memory_resources.stores.redis import RedisStore
from tests.fixtures.redis import MakeRedisStore
from tests.servers import RedisServer, free_port

PASSWORD = "Sup3r-Secret-Pw-9731"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts TCP connections (kernel backlog) but never replies."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def test_nothing_listening_raises_unavailable_quickly(make_redis_store: MakeRedisStore) -> None:
    """A port with nothing listening gives BackendUnavailableError after the retries, and
    health_check reports unhealthy instead of raising."""
    store = make_redis_store(url=f"redis://127.0.0.1:{free_port()}/0", retry_attempts=2,
                             socket_timeout=0.5, connection_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError) as info:
        store.set_context("c", {"a": 1})
    assert time.monotonic() - started < 0.5 * 3 * 4
    assert info.value.backend == "redis"
    with pytest.raises(BackendUnavailableError):
        store.connect()
    with pytest.raises(BackendUnavailableError):
        Lock(store, "l", blocking_timeout=0).acquire()
    assert store.health_check()["status"] == "unhealthy"


def test_silent_server_times_out_within_socket_timeout_times_attempts(
    make_redis_store: MakeRedisStore, silent_port: int
) -> None:
    """A server that accepts connections but never answers ends in BackendUnavailableError
    bounded by socket_timeout x attempts (plus backoff), not a hang."""
    store = make_redis_store(url=f"redis://127.0.0.1:{silent_port}/0", retry_attempts=2,
                             socket_timeout=0.3, connection_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError):
        store.get_context("c")
    elapsed = time.monotonic() - started
    attempts = 3  # the first try plus retry_attempts=2
    assert elapsed >= 0.3  # it really waited for the server
    assert elapsed < (0.3 + 0.3) * attempts + 1.0  # and gave up: a hang guard


def test_stopped_server_fails_typed_then_recovers(
    redis_server_factory: Callable[..., RedisServer], make_redis_store: MakeRedisStore
) -> None:
    """Stopping the server under a live store gives BackendUnavailableError (no silent
    False); after a restart the same store works again through its pool."""
    server = redis_server_factory()
    store = make_redis_store(url=server.url, retry_attempts=1, socket_timeout=1,
                             connection_timeout=1)
    store.set_context("c", {"v": 1})
    server.stop()
    for call in (lambda: store.set_context("c", {"v": 2}), lambda: store.get_context("c"),
                 lambda: store.append_event("c", {}), lambda: store.clear_context("c")):
        with pytest.raises(BackendUnavailableError):
            call()
    server.start()
    record = store.get_context("c")
    assert record is not None and record["data"] == {"v": 1}


def test_wrong_password_is_an_auth_error_without_the_password(
    redis_server_factory: Callable[..., RedisServer], make_redis_store: MakeRedisStore
) -> None:
    """A wrong or missing password raises BackendAuthenticationError whose message and
    repr never contain the configured password; the right one works."""
    server = redis_server_factory(password=PASSWORD)
    url = f"redis://127.0.0.1:{server.port}/0"
    wrong = "Wrong-" + PASSWORD
    store = make_redis_store(url=url, password=wrong, retry_attempts=1)
    with pytest.raises(BackendAuthenticationError) as info:
        store.set_context("c", {})
    assert wrong not in str(info.value) and wrong not in repr(info.value)
    assert PASSWORD not in str(info.value)
    assert wrong not in repr(store) and wrong not in str(store.health_check())
    with pytest.raises(BackendAuthenticationError):
        make_redis_store(url=url, retry_attempts=1).get_context("c")
    good = make_redis_store(url=url, password=PASSWORD)
    assert good.set_context("c", {"ok": True})["version"] == 1


def test_max_connections_is_enforced(make_redis_store: MakeRedisStore) -> None:
    """With every pooled connection in use, a call waits connection_timeout and then raises
    BackendUnavailableError instead of opening connection number max_connections + 1."""
    store = make_redis_store(max_connections=1, connection_timeout=0.2)
    pool = store.client.connection_pool
    held = pool.get_connection()
    try:
        with pytest.raises(BackendUnavailableError):
            store.get_context("c")
    finally:
        pool.release(held)
    assert store.get_context("c") is None


def test_server_errors_are_backend_errors(make_redis_store: MakeRedisStore) -> None:
    """A server-side error reply (here: the stream key holds a string) is a BackendError."""
    store = make_redis_store()
    store.client.set(store.keys.events("c"), "not a stream")
    with pytest.raises(BackendError) as info:
        store.append_event("c", {"e": 1})
    assert not isinstance(info.value, BackendUnavailableError)


def test_corrupt_stored_values_are_backend_errors(make_redis_store: MakeRedisStore) -> None:
    """A context key or stream entry not written by the store (not an envelope) gives a
    BackendError, not a raw JSON or KeyError."""
    store = make_redis_store()
    store.client.set(store.keys.context("c"), "{not json")
    store.client.xadd(store.keys.events("c"), {"other": "field"})
    with pytest.raises(BackendError):
        store.get_context("c")
    with pytest.raises(BackendError):
        store.get_events("c")


def test_unusable_urls_are_configuration_errors() -> None:
    """A lock node URL redis-py cannot use is a ConfigurationError naming it, without the
    password it carries, as soon as the store is built."""
    with pytest.raises(ConfigurationError) as info:
        RedisStore({"lock_nodes": ["http://user:Pw-In-Url-77@127.0.0.1:1/0"]})
    assert "lock_nodes" in str(info.value)
    assert "Pw-In-Url-77" not in str(info.value)


def test_unreachable_cluster_is_unavailable(make_redis_store: MakeRedisStore) -> None:
    """cluster=True with no reachable startup node raises BackendUnavailableError."""
    store = make_redis_store(url=f"redis://127.0.0.1:{free_port()}/0", cluster=True,
                             retry_attempts=0, connection_timeout=0.5, socket_timeout=0.5)
    with pytest.raises(BackendUnavailableError):
        store.get_context("c")
    assert store.health_check()["status"] == "unhealthy"


def test_acl_username_and_password(
    redis_server_factory: Callable[..., RedisServer], make_redis_store: MakeRedisStore
) -> None:
    """An ACL user (username + password) works; the same user with a wrong password is a
    BackendAuthenticationError that does not show the password."""
    server = redis_server_factory()
    with server.client() as admin:
        admin.execute_command("ACL", "SETUSER", "agent", "on", f">{PASSWORD}", "~*", "+@all")
    url = f"redis://127.0.0.1:{server.port}/0"
    good = make_redis_store(url=url, username="agent", password=PASSWORD)
    assert good.set_context("acl", {"ok": 1})["version"] == 1
    bad = make_redis_store(url=url, username="agent", password="nope-" + PASSWORD,
                           retry_attempts=0)
    with pytest.raises(BackendAuthenticationError) as info:
        bad.get_context("acl")
    assert PASSWORD not in str(info.value)
