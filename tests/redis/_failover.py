"""Write through a Redis Cluster fail-over and count what was lost (shared by
tests/redis/test_cluster_failover.py and benchmarks/bench_redis_cluster.py).

:func:`failover_round`: writer threads (sync store) and one thread running coroutines (async
store) loop over ``set_context`` / ``append_event`` on contexts spread over every master;
one master is SIGKILLed, its replica is promoted, the killed node is restarted (it rejoins
as a replica) and the writers go on until the cluster is whole again. A call that raises a
typed error (:class:`MemoryResourcesError`) is retried by the writer with the same
arguments until it succeeds or ``retry_for`` seconds pass. Afterwards every acknowledged
write is read back: an event acknowledged but absent, or a context whose value is older
than the last acknowledged one, counts as lost.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from memory_resources.errors import MemoryResourcesError
from memory_resources.stores.redis import RedisStore
from memory_resources.stores.redis.aio import AsyncRedisStore
from tests.servers import RedisCluster, RedisServer

T = TypeVar("T")


@dataclass
class Tally:
    """What the writers saw in one round."""

    acked_sets: dict[str, int] = field(default_factory=dict)
    """Last acknowledged value per context id."""
    acked_events: dict[str, list[int]] = field(default_factory=dict)
    """Acknowledged event sequence numbers per context id."""
    calls: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    """Typed errors raised (and retried), by class name."""
    unrecovered: list[str] = field(default_factory=list)
    """Calls still failing after ``retry_for`` seconds, or raising an untyped error."""
    samples: dict[str, str] = field(default_factory=dict)
    """The first message of each error class (for a failing assertion)."""
    longest: float = 0.0
    """Longest call including the writer's retries, seconds."""
    guard: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, exc: BaseException) -> str:
        """Note ``exc`` and return its class name."""
        name = type(exc).__name__
        with self.guard:
            self.samples.setdefault(name, str(exc)[:300])
        return name

    def record(self, elapsed: float, errors: list[str]) -> None:
        with self.guard:
            self.calls += 1
            self.errors.update(errors)
            self.longest = max(self.longest, elapsed)


@dataclass
class Round:
    """The outcome of one fail-over."""

    tally: Tally
    failover_s: float
    """SIGKILL to the replica answering ``ROLE`` as master."""
    whole_s: float
    """SIGKILL to every master having its replica back in sync."""
    lost_sets: int
    lost_events: int
    acked: int

    @property
    def lost(self) -> int:
        return self.lost_sets + self.lost_events


def _retry_sync(tally: Tally, retry_for: float, call: Callable[[], T]) -> T | None:
    started = time.monotonic()
    errors: list[str] = []
    while True:
        try:
            result = call()
        except MemoryResourcesError as exc:
            errors.append(tally.saw(exc))
            if time.monotonic() - started > retry_for:
                tally.unrecovered.append(f"{type(exc).__name__}: {exc}")
                tally.record(time.monotonic() - started, errors)
                return None
            time.sleep(0.05)
            continue
        except Exception as exc:  # untyped: a bug the test reports
            tally.unrecovered.append(f"untyped {type(exc).__name__}: {exc}")
            tally.record(time.monotonic() - started, errors)
            return None
        tally.record(time.monotonic() - started, errors)
        return result


async def _retry_async(tally: Tally, retry_for: float,
                       call: Callable[[], Awaitable[T]]) -> T | None:
    started = time.monotonic()
    errors: list[str] = []
    while True:
        try:
            result = await call()
        except MemoryResourcesError as exc:
            errors.append(tally.saw(exc))
            if time.monotonic() - started > retry_for:
                tally.unrecovered.append(f"async {type(exc).__name__}: {exc}")
                tally.record(time.monotonic() - started, errors)
                return None
            await asyncio.sleep(0.05)
            continue
        except Exception as exc:
            tally.unrecovered.append(f"async untyped {type(exc).__name__}: {exc}")
            tally.record(time.monotonic() - started, errors)
            return None
        tally.record(time.monotonic() - started, errors)
        return result


def _ack_set(tally: Tally, cid: str, value: int) -> None:
    with tally.guard:
        tally.acked_sets[cid] = value


def _ack_event(tally: Tally, cid: str, value: int) -> None:
    with tally.guard:
        tally.acked_events.setdefault(cid, []).append(value)


def _sync_writer(store: RedisStore, ids: list[str], tally: Tally, stop: threading.Event,
                 retry_for: float) -> None:
    for n in itertools.count():
        if stop.is_set():
            return
        cid = ids[n % len(ids)]
        if _retry_sync(tally, retry_for,
                       lambda c=cid, v=n: store.set_context(c, {"n": v})):
            _ack_set(tally, cid, n)
        if _retry_sync(tally, retry_for,
                       lambda c=cid, v=n: store.append_event(c, {"n": v})):
            _ack_event(tally, cid, n)


async def _async_writers(store: AsyncRedisStore, groups: list[list[str]], tally: Tally,
                         stop: threading.Event, retry_for: float) -> None:
    async def writer(ids: list[str]) -> None:
        for n in itertools.count():
            if stop.is_set():
                return
            cid = ids[n % len(ids)]
            if await _retry_async(tally, retry_for, lambda c=cid, v=n: store.set_context(
                    c, {"n": v})):
                _ack_set(tally, cid, n)
            if await _retry_async(tally, retry_for, lambda c=cid, v=n: store.append_event(
                    c, {"n": v})):
                _ack_event(tally, cid, n)

    try:
        await asyncio.gather(*(writer(ids) for ids in groups))
    finally:
        await store.close()


def _replica_of(cluster: RedisCluster, master: RedisServer) -> RedisServer:
    for node in cluster.nodes:
        if node is master or not node.running:
            continue
        with node.admin_client() as conn:
            role = conn.execute_command("ROLE")
        if role[0] in (b"slave", "slave") and int(role[2]) == master.port:
            return node
    raise AssertionError(f"no replica of {master}")


def _wait_master(cluster: RedisCluster, node: RedisServer, timeout: float) -> None:
    limit = time.monotonic() + timeout
    while cluster.role(node) != "master":
        if time.monotonic() > limit:
            raise AssertionError(f"{node} was not promoted within {timeout} s")
        time.sleep(0.02)


FILL_MB = 24
"""Filler sent to a master whose replica is frozen: more than loopback's socket buffers."""


def _fill(cluster: RedisCluster, victim: RedisServer, prefix: str) -> None:
    """``FILL_MB`` one-megabyte values under ``prefix`` on keys ``victim`` serves."""
    with cluster.client() as client:
        tag = next(f"{prefix}fill{{{i}}}" for i in itertools.count()
                   if client.get_node_from_key(f"{prefix}fill{{{i}}}").port == victim.port)
    blob = b"x" * (1 << 20)
    with victim.client(socket_timeout=30) as conn, conn.pipeline(transaction=False) as pipe:
        for i in range(FILL_MB):
            pipe.set(f"{tag}:{i}", blob)
        pipe.execute()


def count_lost(store: RedisStore, tally: Tally) -> tuple[int, int, int]:
    """``(lost contexts, lost events, acknowledged writes)`` read back through ``store``."""
    lost_sets = lost_events = 0
    for cid, value in tally.acked_sets.items():
        record = store.get_context(cid)
        if record is None or record["data"]["n"] < value:
            lost_sets += 1
    for cid, values in tally.acked_events.items():
        stored = {event["data"]["n"] for event in store.get_events(cid)}
        lost_events += sum(1 for value in values if value not in stored)
    acked = len(tally.acked_sets) + sum(len(v) for v in tally.acked_events.values())
    return lost_sets, lost_events, acked


def failover_round(cluster: RedisCluster, config: dict[str, Any], victim: RedisServer, *,
                   prefix: str, threads: int = 3, coroutines: int = 4, before: float = 0.5,
                   after: float = 0.5, retry_for: float = 10.0, lag: float = 0.0) -> Round:
    """One fail-over of ``victim`` (a master) under writers; see the module docstring.
    ``config`` is the store configuration (``url``/``cluster`` and e.g. ``replica_acks``).
    ``lag`` > 0: the replica lags behind for that many seconds (at least the filler's time)
    before the master is killed,
    as a slow or partitioned replica would: it is frozen (SIGSTOP) and the master is sent
    ``FILL_MB`` of filler, so the kernel's socket buffers between them are full and what the
    master acknowledges meanwhile stays in its own output buffer, lost with the process. (A
    SIGKILL alone loses nothing on loopback: the kernel still delivers what the master had
    written to the replica's socket.)"""
    tally = Tally()
    stop = threading.Event()
    fields = {**config, "key_prefix": prefix}
    stores = [RedisStore(fields) for _ in range(threads)]
    groups = [[f"t{t}-c{i}" for i in range(12)] for t in range(threads + coroutines)]
    workers = [threading.Thread(target=_sync_writer, args=(store, groups[t], tally, stop,
                                                           retry_for))
               for t, store in enumerate(stores)]
    workers.append(threading.Thread(target=lambda: asyncio.run(_async_writers(
        AsyncRedisStore(fields), groups[threads:], tally, stop, retry_for))))
    replica = _replica_of(cluster, victim)
    for worker in workers:
        worker.start()
    try:
        time.sleep(before)
        if lag > 0:
            assert replica.pid is not None
            frozen = time.monotonic()
            os.kill(replica.pid, signal.SIGSTOP)
            _fill(cluster, victim, prefix)
            time.sleep(max(0.0, lag - (time.monotonic() - frozen)))
        killed = time.monotonic()
        try:
            victim.kill()
        finally:
            if lag > 0 and replica.pid is not None:
                os.kill(replica.pid, signal.SIGCONT)
        _wait_master(cluster, replica, timeout=30)
        failover = time.monotonic() - killed
        victim.start()  # rejoins as a replica of the promoted node
        cluster.wait_ok(timeout=30)
        whole = time.monotonic() - killed
        time.sleep(after)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=retry_for + 30)
    checker = RedisStore({**fields})
    try:
        lost_sets, lost_events, acked = count_lost(checker, tally)
    finally:
        checker.close()
        for store in stores:
            store.close()
    return Round(tally, failover, whole, lost_sets, lost_events, acked)
