"""Promotion survived: the Redis Sentinel primary is SIGKILLed while writers loop
set_context/append_event (4 threads, or 4 coroutines on the async transport); the sentinels
promote the replica (down-after-milliseconds 1000) and every call succeeds, or raises a typed
error and succeeds on retry, within operation_timeout. Acknowledged writes missing afterwards
are counted: replication is asynchronous, so without replica acknowledgements the ones the
replica had not received when the primary died are lost (printed, see docs/scaling.md); with
``replica_acks=1`` on a primary with 2 replicas none is (asserted)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from memory_resources.stores.redis import RedisStore
from memory_resources.stores.redis.aio import AsyncRedisStore
from tests.fixtures.redis_sentinel import DATA_PASSWORD, SENTINEL_PASSWORD, sentinel_config
from tests.redis._failover_load import (
    Outcome,
    Tally,
    async_write_loop,
    outcome,
    read_back,
    write_loop,
)
from tests.servers.redis_sentinel import SentinelTopology

pytestmark = pytest.mark.topology

WRITERS = 4
OPERATION_TIMEOUT = 10.0
"""Deadline of each call: covers down-after-milliseconds (1 s) + election + promotion."""


@pytest.fixture(params=[1, 2], ids=["1-replica", "2-replicas"])
def topology(request: pytest.FixtureRequest) -> Iterator[SentinelTopology]:
    """A fresh topology per test (its primary is killed); with ``replica_acks`` a second
    replica, so that the promoted primary has one to confirm writes."""
    with SentinelTopology(replicas=request.param, password=DATA_PASSWORD,
                          sentinel_password=SENTINEL_PASSWORD) as topo:
        yield topo


def _acks(topology: SentinelTopology) -> int:
    """``replica_acks`` of the test: 1 on the 2-replica topology, else 0."""
    return 1 if len(topology.nodes) > 2 else 0


def _kill_and_wait(topology: SentinelTopology) -> float:
    """SIGKILL the primary; the seconds until every sentinel names the promoted replica."""
    old = topology.primary()
    killed = time.monotonic()
    old.kill()
    topology.wait_promoted(old, timeout=OPERATION_TIMEOUT)
    return time.monotonic() - killed


def _check(result: Outcome, promotion: float, what: str, acks: int) -> None:
    print(f"\n{what}, replica_acks={acks}: promotion {promotion:.2f} s, {result}")
    assert result.failed == 0, "a call still failed after operation_timeout"
    assert result.slowest < OPERATION_TIMEOUT + 1
    assert promotion < OPERATION_TIMEOUT
    if acks:  # a confirmed write is on a replica, and the most advanced one is promoted
        assert (result.lost_contexts, result.lost_events) == (0, 0)


def test_sigkill_primary_sync(topology: SentinelTopology) -> None:
    """4 threads write through one RedisStore while the primary is SIGKILLed: no call fails
    past its deadline, writing resumes on the promoted replica, losses are counted; with
    replica_acks=1 (2 replicas) no acknowledged write is lost."""
    acks = _acks(topology)
    store = RedisStore(sentinel_config(topology, "mrtest:failover:", replica_acks=acks,
                                       operation_timeout=OPERATION_TIMEOUT))
    tallies = [Tally(f"writer-{i}") for i in range(WRITERS)]
    stop = threading.Event()
    threads = [threading.Thread(target=write_loop, args=(store, tally, stop))
               for tally in tallies]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        promotion = _kill_and_wait(topology)
        before = sum(t.rounds for t in tallies)
        time.sleep(1.0)
        stop.set()
        for thread in threads:
            thread.join(OPERATION_TIMEOUT * 3)
        assert sum(t.rounds for t in tallies) > before, "no write after the promotion"
        _check(outcome(tallies, read_back(store, tallies)), promotion, "sync SIGKILL", acks)
    finally:
        stop.set()
        store.close()


def test_sigkill_primary_async(topology: SentinelTopology) -> None:
    """The same on the async transport: 4 coroutines on one AsyncRedisStore."""
    acks = _acks(topology)
    config = sentinel_config(topology, "mrtest:failover:", replica_acks=acks,
                             operation_timeout=OPERATION_TIMEOUT)
    tallies = [Tally(f"writer-{i}") for i in range(WRITERS)]

    async def scenario() -> tuple[float, dict[str, tuple[int, list[int]]]]:
        store = AsyncRedisStore(config)
        stop = asyncio.Event()
        try:
            tasks = [asyncio.ensure_future(async_write_loop(store, tally, stop))
                     for tally in tallies]
            await asyncio.sleep(0.5)
            promotion = await asyncio.to_thread(_kill_and_wait, topology)
            before = sum(t.rounds for t in tallies)
            await asyncio.sleep(1.0)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), OPERATION_TIMEOUT * 3)
            assert sum(t.rounds for t in tallies) > before, "no write after the promotion"
            stored: dict[str, tuple[int, list[int]]] = {}
            for tally in tallies:
                record = await store.get_context(tally.cid)
                events = [e["data"]["n"] for e in await store.get_events(tally.cid)]
                stored[tally.cid] = (0 if record is None else record["data"]["n"], events)
            return promotion, stored
        finally:
            stop.set()
            await store.close()

    promotion, stored = asyncio.run(scenario())
    _check(outcome(tallies, stored), promotion, "async SIGKILL", acks)
