"""Redlock over three throwaway masters with one or two of them hung.

A hung master is black-holed by the loopback TCP proxy (connections accepted, bytes never
answered) or frozen with SIGSTOP. The time bounds are hang guards with generous slack
(an acquire that waited for the dead master would take lock_node_timeout or more), not
benchmarks.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest

from memory_resources.errors import BackendUnavailableError, LockNotAcquiredError
from memory_resources.locking import Lock
from memory_resources.stores.redis import RedisStore
from tests.fixtures.redis import MakeRedisStore
from tests.servers import RedisServer
from tests.servers.proxy import TcpProxy

CYCLES = 30
NODE_TIMEOUT = 2.0
"""lock_node_timeout of the quorum-first tests: an acquire that waited for the hung master
would take at least this long; one that returns on the quorum takes milliseconds."""


@pytest.fixture
def masters(redis_server_factory: Callable[..., RedisServer]) -> list[RedisServer]:
    """Three independent throwaway Redis masters."""
    return [redis_server_factory() for _ in range(3)]


@pytest.fixture
def proxy(masters: list[RedisServer]) -> Iterator[TcpProxy]:
    """A proxy in front of the third master."""
    with TcpProxy("127.0.0.1", masters[2].port) as tcp:
        yield tcp


def _store(make: MakeRedisStore, urls: list[str], **overrides: object) -> RedisStore:
    return make(url=urls[0], lock_nodes=urls[1:], **overrides)


def _cycles(store: RedisStore, name: str) -> tuple[list[float], list[int]]:
    """CYCLES acquire+release rounds: the time of each and the fencing tokens."""
    times: list[float] = []
    tokens: list[int] = []
    for _ in range(CYCLES):
        started = time.monotonic()
        lock = Lock(store, name, blocking_timeout=0).acquire()
        lock.release()
        times.append(time.monotonic() - started)
        assert lock.fencing_token is not None
        tokens.append(lock.fencing_token)
    return times, tokens


def test_one_black_holed_master_does_not_delay_acquire_or_release(
    masters: list[RedisServer], proxy: TcpProxy, make_redis_store: MakeRedisStore
) -> None:
    """With one of three masters black-holed, every acquire+release still succeeds on the
    quorum in well under lock_node_timeout (waiting for the dead master would take all of
    it: 2 s here, so a busy machine's jitter cannot pass for the bug), and fencing tokens
    keep increasing strictly across the healthy and the degraded rounds."""
    urls = [masters[0].url, masters[1].url, f"redis://127.0.0.1:{proxy.port}/0"]
    store = _store(make_redis_store, urls, lock_node_timeout=NODE_TIMEOUT)
    healthy, tokens_before = _cycles(store, "bh")
    proxy.blackhole()
    degraded, tokens_after = _cycles(store, "bh")
    tokens = tokens_before + tokens_after
    assert all(b > a for a, b in itertools.pairwise(tokens))
    assert max(degraded) < NODE_TIMEOUT / 2, (sorted(healthy)[-1], sorted(degraded)[-3:])
    report = store.health_check()
    assert report["status"] == "degraded" and report["details"]["lock_nodes_down"] == ["#2"]
    proxy.pass_through()
    proxy.cut()


def test_stopped_master_with_sigstop_is_outvoted(
    masters: list[RedisServer], make_redis_store: MakeRedisStore
) -> None:
    """A master frozen with SIGSTOP (its kernel still accepts connections) counts as
    failed after lock_node_timeout at most; acquire and release return on the quorum."""
    store = _store(make_redis_store, [m.url for m in masters], lock_node_timeout=NODE_TIMEOUT)
    pid = masters[1].pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        times, tokens = _cycles(store, "stop")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert max(times) < NODE_TIMEOUT / 2
    assert tokens == sorted(set(tokens))


def test_quorum_impossible_fails_fast_with_unavailable(
    masters: list[RedisServer], make_redis_store: MakeRedisStore
) -> None:
    """Two of three masters hung: acquire raises BackendUnavailableError after about
    lock_node_timeout (not LockNotAcquiredError after a long wait), naming the nodes;
    once they answer again the lock works."""
    with TcpProxy("127.0.0.1", masters[1].port) as one, \
            TcpProxy("127.0.0.1", masters[2].port) as two:
        urls = [masters[0].url, f"redis://127.0.0.1:{one.port}/0",
                f"redis://127.0.0.1:{two.port}/0"]
        store = _store(make_redis_store, urls, lock_node_timeout=0.3)
        with Lock(store, "q2", blocking_timeout=0):
            pass
        one.blackhole()
        two.blackhole()
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError, match="quorum 2 impossible"):
            Lock(store, "q2", blocking_timeout=0).acquire()
        assert time.monotonic() - started < 1.0
        assert store.health_check()["status"] == "unhealthy"
        one.pass_through()
        two.pass_through()
        one.cut()
        two.cut()
        with Lock(store, "q2", blocking_timeout=2) as lock:
            assert lock.held


def test_refusal_decides_while_a_slow_master_is_still_answering(
    masters: list[RedisServer], make_redis_store: MakeRedisStore
) -> None:
    """Two masters (quorum 2), the second 0.2 s slow: while the lock is held, the first
    master's refusal decides a second acquire at once; the slow master not waited for is
    not a fault (LockNotAcquiredError, not BackendUnavailableError), and so for release
    and is_held by a stranger."""
    with TcpProxy("127.0.0.1", masters[1].port) as slow:
        store = _store(make_redis_store, [masters[0].url, f"redis://127.0.0.1:{slow.port}/0"],
                       lock_node_timeout=NODE_TIMEOUT)
        with Lock(store, "slow", blocking_timeout=0) as lock:
            slow.delay(0.2)
            for _ in range(3):
                started = time.monotonic()
                with pytest.raises(LockNotAcquiredError):
                    Lock(store, "slow", blocking_timeout=0).acquire()
                assert time.monotonic() - started < NODE_TIMEOUT / 2
                assert store.release("slow", "a-stranger") is False
            slow.pass_through()
            assert lock.held
        assert not store.is_held("slow")
