"""Redlock with fencing on real Redis servers and real processes: mutual exclusion,
crashed holders, quorum over three masters, fencing-token monotonicity and cleanup."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis

from memory_resources.errors import (
    BackendUnavailableError,
    LockLostError,
    LockNotAcquiredError,
)
from memory_resources.locking import Lock
from memory_resources.stores.redis import RedisStore
from tests.fixtures.redis import MakeRedisStore
from tests.redis import _workers
from tests.servers import RedisServer

# forkserver: children fork from a clean server process (not from pytest, whose other
# threads could hold locks at fork time); the server imports the worker module once.
SPAWN = multiprocessing.get_context("forkserver")
SPAWN.set_forkserver_preload(["tests.redis._workers"])


def _config(url: str, prefix: str, **extra: Any) -> dict[str, Any]:
    return {"url": url, "key_prefix": prefix, "socket_timeout": 2, "connection_timeout": 2,
            "retry_attempts": 1, **extra}


def test_processes_increment_exactly_under_the_lock(
    redis_url: str, redis_prefix: str, redis_client: redis.Redis
) -> None:
    """8 processes x 250 read-modify-write increments under the lock give exactly 2000, and
    the fencing tokens, ordered by the value each holder wrote, strictly increase."""
    counter = f"{redis_prefix}counter"
    config = _config(redis_url, redis_prefix)
    with SPAWN.Pool(8) as pool:
        results = pool.starmap(_workers.increment_worker,
                               [(config, "counter-lock", counter, 250)] * 8)
    assert int(redis_client.get(counter) or 0) == 2000
    rounds = sorted(pair for result in results for pair in result)
    assert [value for value, _ in rounds] == list(range(1, 2001))
    tokens = [token for _, token in rounds]
    assert all(a < b for a, b in itertools.pairwise(tokens))


def test_killed_holder_is_replaced_within_the_ttl_with_a_larger_token(
    redis_url: str, redis_prefix: str, redis_client: redis.Redis, make_redis_store: MakeRedisStore
) -> None:
    """A holder killed with SIGKILL never releases; the next acquirer gets the lock within
    the lease TTL (its blocking_timeout) and a larger fencing token."""
    ttl = 1.5
    ready = f"{redis_prefix}ready"
    child = SPAWN.Process(target=_workers.hold_forever,
                          args=(_config(redis_url, redis_prefix), "crash-lock", ttl, ready))
    child.start()
    try:
        deadline = time.monotonic() + 30
        while redis_client.get(ready) is None:
            assert child.is_alive() and time.monotonic() < deadline, "holder did not start"
            time.sleep(0.02)
        held_token = int(redis_client.get(ready) or 0)
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
        store = make_redis_store()
        with Lock(store, "crash-lock", timeout=5, blocking_timeout=ttl + 0.25,
                  retry_delay=0.01) as lock:
            assert lock.fencing_token is not None and lock.fencing_token > held_token
    finally:
        if child.is_alive():
            child.kill()
            child.join(10)


def test_body_exception_releases_the_lock(redis_store: RedisStore) -> None:
    """A lock used as a context manager is released when its body raises."""
    with pytest.raises(RuntimeError), Lock(redis_store, "boom"):
        raise RuntimeError("body failed")
    with Lock(redis_store, "boom", blocking_timeout=0) as lock:
        assert lock.held


def test_held_lock_refuses_others_until_released(redis_store: RedisStore) -> None:
    """A second handle cannot take a held lock (LockNotAcquiredError after blocking_timeout)."""
    first = Lock(redis_store, "busy", timeout=10).acquire()
    with pytest.raises(LockNotAcquiredError):
        Lock(redis_store, "busy", blocking_timeout=0.1).acquire()
    assert first.release() is True
    second = Lock(redis_store, "busy", blocking_timeout=0).acquire()
    assert second.fencing_token is not None and first.fencing_token is not None
    assert second.fencing_token > first.fencing_token
    second.release()


def test_extend_keeps_and_watchdog_loses(
    redis_store: RedisStore, redis_client: redis.Redis
) -> None:
    """extend() resets the lease; when the lease is taken away the watchdog marks the handle
    lost and a later extend raises LockLostError."""
    lock = Lock(redis_store, "ext", timeout=0.6, auto_extend=True).acquire()
    lease, _ = redis_store.keys.lock_pair("ext")
    lock.extend(30)
    assert redis_client.pttl(lease) > 20_000
    redis_client.set(lease, "someone-else")
    deadline = time.monotonic() + 5
    while not lock.lost and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lock.lost and not lock.held
    with pytest.raises(LockLostError):
        lock.extend()
    assert lock.release() is False


@pytest.fixture
def three_masters(redis_server_factory: Callable[..., RedisServer]) -> list[RedisServer]:
    """Three independent throwaway Redis masters."""
    return [redis_server_factory() for _ in range(3)]


def _redlock_store(make: MakeRedisStore, servers: list[RedisServer]) -> RedisStore:
    return make(url=servers[0].url, lock_nodes=[s.url for s in servers[1:]],
                retry_attempts=1, socket_timeout=1, connection_timeout=1)


def test_redlock_survives_one_stopped_master_and_refuses_with_two(
    three_masters: list[RedisServer], make_redis_store: MakeRedisStore
) -> None:
    """Over 3 masters the lock is taken with one master stopped (quorum 2, health degraded)
    and refused with two stopped (health unhealthy); the tokens stay strictly increasing."""
    store = _redlock_store(make_redis_store, three_masters)
    with Lock(store, "q", blocking_timeout=0) as lock:
        first = lock.fencing_token
    three_masters[2].stop()
    assert store.health_check()["status"] == "degraded"
    with Lock(store, "q", blocking_timeout=0) as lock:
        second = lock.fencing_token
    assert first is not None and second is not None and second > first
    three_masters[1].stop()
    with pytest.raises(BackendUnavailableError):
        Lock(store, "q", blocking_timeout=0.2).acquire()
    health = store.health_check()
    assert health["status"] == "unhealthy"


def test_redlock_failed_acquire_releases_partial_leases(
    three_masters: list[RedisServer], make_redis_store: MakeRedisStore
) -> None:
    """When only a minority of masters grant the lease, acquiring fails and the lease taken
    on that minority is deleted again (in the background, the caller does not wait)."""
    store = _redlock_store(make_redis_store, three_masters)
    lease, _ = store.keys.lock_pair("minority")
    for server in three_masters[1:]:
        with server.client() as client:
            client.set(lease, "other-owner", px=60_000)
    assert store.try_acquire("minority", uuid.uuid4().hex, 10_000) is None
    with three_masters[0].client() as client:
        limit = time.monotonic() + 5
        while client.exists(lease) and time.monotonic() < limit:
            time.sleep(0.01)
        assert client.exists(lease) == 0
    with pytest.raises(LockNotAcquiredError):
        Lock(store, "minority", blocking_timeout=0.1).acquire()


def test_redlock_tokens_increase_when_node_counters_disagree(
    three_masters: list[RedisServer], make_redis_store: MakeRedisStore
) -> None:
    """Counters ahead on two nodes (any quorum meets one) set the token, a node of the quorum
    that is behind is lifted to it, so a later quorum missing an ahead node still
    returns a larger token."""
    store = _redlock_store(make_redis_store, three_masters)
    _, fence = store.keys.lock_pair("skew")
    for server in three_masters[1:]:
        with server.client() as client:
            client.set(fence, 100)
    with Lock(store, "skew", blocking_timeout=0) as lock:
        assert lock.fencing_token == 101
    counters = []
    for server in three_masters:
        with server.client() as client:
            counters.append(int(client.get(fence) or 0))
    assert sum(1 for c in counters if c >= 101) >= 2  # a quorum holds the token
    three_masters[2 if counters[1] >= 101 else 1].stop()
    with Lock(store, "skew", blocking_timeout=0) as lock:
        assert lock.fencing_token == 102


def test_redlock_release_and_extend_need_a_quorum(
    three_masters: list[RedisServer], make_redis_store: MakeRedisStore
) -> None:
    """extend() and release() succeed while a quorum still holds the lease, and a handle
    whose lease survives on a minority only is reported lost."""
    store = _redlock_store(make_redis_store, three_masters)
    lock = Lock(store, "ext3", timeout=5).acquire()
    lease, _ = store.keys.lock_pair("ext3")
    for server in three_masters:  # the acquire returned on a quorum; let the third land
        with server.client() as client:
            limit = time.monotonic() + 5
            while not client.exists(lease) and time.monotonic() < limit:
                time.sleep(0.01)
    with three_masters[1].client() as client:
        client.delete(lease)
    lock.extend()
    with three_masters[2].client() as client:
        client.delete(lease)
    with pytest.raises(LockLostError):
        lock.extend()
    assert lock.release() is False


def test_redlock_reloads_scripts_flushed_from_a_node(
    three_masters: list[RedisServer], make_redis_store: MakeRedisStore
) -> None:
    """After SCRIPT FLUSH on every master (as after a restart) locking still works."""
    store = _redlock_store(make_redis_store, three_masters)
    with Lock(store, "flush", blocking_timeout=0):
        pass
    for server in three_masters:
        with server.client() as client:
            client.script_flush()
    with Lock(store, "flush", blocking_timeout=0) as lock:
        assert lock.fencing_token == 2
