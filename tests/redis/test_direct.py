"""The direct command path (``stores/redis/direct.py``) keeps redis-py's retry and pool
behaviour: a timed-out attempt is retried on a fresh connection, a server error is not
retried, and the borrowed connection always goes back to the pool."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from memory_resources.errors import BackendError, BackendUnavailableError
from memory_resources.stores.redis import RedisStore
from memory_resources.stores.redis.direct import execute
from tests.fixtures.redis import MakeRedisStore
from tests.servers import RedisServer


@contextlib.contextmanager
def paused(url: str, milliseconds: int) -> Iterator[None]:
    """Every client of the server at ``url`` paused for ``milliseconds`` (ended on exit)."""
    admin = redis.Redis.from_url(url)
    try:
        admin.execute_command("CLIENT", "PAUSE", milliseconds, "ALL")
        yield
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()


def one_connection_store(server_factory: Callable[..., RedisServer],
                         make_store: MakeRedisStore, *, retry_attempts: int,
                         timeout: float) -> tuple[RedisStore, str]:
    """A store with max_connections=1 on its own throwaway server (so pausing it disturbs
    no other test), holding context "c" = {"v": 1}; and the server's URL."""
    server = server_factory()
    store = make_store(url=server.url, max_connections=1, retry_attempts=retry_attempts,
                       socket_timeout=timeout, connection_timeout=timeout)
    store.set_context("c", {"v": 1})
    return store, server.url


def test_a_timed_out_attempt_is_retried_on_a_new_connection(
    redis_server_factory: Callable[..., RedisServer], make_redis_store: MakeRedisStore
) -> None:
    """While the server pauses every client for 0.8 s, reads time out after 0.25 s; the
    retries reconnect and the call succeeds once the pause ends, on the one pooled
    connection (max_connections=1), which is back in the pool afterwards."""
    store, url = one_connection_store(redis_server_factory, make_redis_store,
                                      retry_attempts=8, timeout=0.25)
    with paused(url, 800):
        started = time.monotonic()
        record = store.get_context("c")
        elapsed = time.monotonic() - started
    assert record is not None and record["data"] == {"v": 1}
    assert elapsed >= 0.25  # the first attempt really timed out
    assert store.set_context("c", {"v": 2})["version"] == 2  # the connection came back


def test_retries_run_out_into_a_typed_error(
    redis_server_factory: Callable[..., RedisServer], make_redis_store: MakeRedisStore
) -> None:
    """A pause longer than every attempt ends in BackendUnavailableError, bounded by the
    attempts (a hang guard, not a timing assertion); the pool is not leaked."""
    store, url = one_connection_store(redis_server_factory, make_redis_store,
                                      retry_attempts=1, timeout=0.2)
    with paused(url, 3000):
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError):
            store.append_event("c", {"e": 1})
        assert time.monotonic() - started < 2.5
    assert store.append_event("c", {"e": 2})["data"] == {"e": 2}


def test_a_server_error_is_not_retried_and_returns_the_connection(
    make_redis_store: MakeRedisStore
) -> None:
    """A script that counts its runs and then fails: the ResponseError propagates after one
    run (no retry), and the single pooled connection serves the next call."""
    store = make_redis_store(max_connections=1, connection_timeout=0.5)
    client = store.client
    key = store.keys.prefix + "runs"
    failing = "redis.call('INCR', KEYS[1]) return redis.error_reply('boom')"
    with pytest.raises(BackendError, match="boom"):
        execute(client, store._policy, "eval", "EVAL", failing, 1, key)
    assert execute(client, store._policy, "get", "GET", key) == "1"
    store.client.set(store.keys.events("c"), "not a stream")
    with pytest.raises(BackendError):
        store.append_event("c", {"e": 1})
    assert store.get_context("c") is None
