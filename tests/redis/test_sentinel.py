"""Redis Sentinel on a throwaway topology (primary + replica + 3 sentinels, passwords on both):
health reports the topology, wrong credentials fail at once, a silent sentinel is skipped,
a sentinel-managed primary can be a Redlock node, and a manual fail-over (the primary demoted:
READONLY, killed connections) is ridden out by retries within operation_timeout."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memory_resources import AsyncMemoryAPI, MemoryAPI
from memory_resources.errors import (
    BackendAuthenticationError,
    BackendUnavailableError,
    LockNotAcquiredError,
)
from memory_resources.locking import Lock
from memory_resources.stores.redis import RedisStore
from memory_resources.stores.redis.aio import AsyncRedisStore
from tests.fixtures.redis_sentinel import DATA_PASSWORD, SENTINEL_PASSWORD, sentinel_config
from tests.fixtures.roles import acl_setuser_args, doc_block
from tests.redis._failover_load import Tally, outcome, read_back, write_loop
from tests.servers.redis_sentinel import SentinelTopology

pytestmark = pytest.mark.topology


@pytest.fixture(scope="module")
def topology() -> Iterator[SentinelTopology]:
    """A topology of this module's own (its primary is demoted by a test)."""
    with SentinelTopology(password=DATA_PASSWORD, sentinel_password=SENTINEL_PASSWORD) as topo:
        yield topo


@pytest.fixture
def make_store(topology: SentinelTopology) -> Iterator[Any]:
    """``make(**overrides)``: RedisStores on the topology (prefix ``sentinel:``), closed after."""
    stores: list[RedisStore] = []

    def make(**overrides: Any) -> RedisStore:
        store = RedisStore(sentinel_config(topology, "mrtest:sentinel:", **overrides))
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def test_health_reports_the_sentinel_topology(topology: SentinelTopology,
                                              make_store: Any) -> None:
    """health_check names the mode, service, primary address, live replicas, quorum and how
    many sentinels answered (stats works too); with one sentinel stopped it is degraded but
    calls still work."""
    store = make_store()
    report = store.health_check()
    details = report["details"]
    assert report["status"] == "healthy" and details["mode"] == "sentinel"
    assert details["role"] == "master" and details["sentinel_service"] == topology.service
    assert details["primary"] == f"127.0.0.1:{topology.master_port()}"
    assert (details["sentinels"], details["sentinels_up"], details["replicas"],
            details["sentinel_quorum"]) == (3, 3, 1, 2)
    store.set_context("counted", {"n": 1})
    assert store.stats()["keys_under_prefix"] >= 1
    silent = topology.sentinels[0]
    silent.stop()
    try:
        fresh = make_store(sentinel_timeout=0.3)
        fresh.set_context("one-sentinel-down", {"ok": True})
        assert fresh.get_context("one-sentinel-down") is not None
        degraded = fresh.health_check()
        assert degraded["status"] == "degraded"
        assert degraded["details"]["sentinels_up"] == 2
    finally:
        silent.start()


@pytest.mark.parametrize("wrong", ["sentinel_password", "data_password"])
def test_wrong_password_is_permanent(topology: SentinelTopology, make_store: Any,
                                     wrong: str) -> None:
    """A wrong sentinel password or data node password raises BackendAuthenticationError
    at once (not after operation_timeout), naming what to check, never the password."""
    bad = "Wr0ng-pa55word"
    if wrong == "sentinel_password":
        store = make_store(sentinel_password=bad, operation_timeout=5)
    else:
        store = make_store(url=topology.url().replace(DATA_PASSWORD, bad), operation_timeout=5)
    started = time.monotonic()
    with pytest.raises(BackendAuthenticationError) as info:
        store.get_context("x")
    assert time.monotonic() - started < 2
    text = str(info.value)
    assert bad not in text and DATA_PASSWORD not in text and SENTINEL_PASSWORD not in text
    if wrong == "sentinel_password":
        assert "sentinel_username/sentinel_password" in text


def test_least_privilege_users(topology: SentinelTopology, make_store: Any) -> None:
    """The documented ACL users (docs/redis.md: ``acl:user`` on the data nodes, plus
    ``+info`` for monitoring, and ``acl:sentinel`` on the sentinels) are all the store needs:
    writes, reads, a lock and health_check work as them."""
    prefix = "mrtest:sentinel:acl:"
    data_user = [*acl_setuser_args("mrtest_sentinel_app", "app-pw", prefix), "+info"]
    sentinel_words = doc_block("redis.md", "acl:sentinel").split()
    assert sentinel_words[:3] == ["ACL", "SETUSER", "memory_sentinel"]
    sentinel_user = [w if not w.startswith(">") else ">sent-pw" for w in sentinel_words[3:]]
    for node in topology.nodes:
        with node.client() as admin:
            admin.execute_command("ACL", "SETUSER", *data_user)
    for sentinel in topology.sentinels:
        with topology.sentinel_client(sentinel) as admin:
            admin.execute_command("ACL", "SETUSER", "memory_sentinel", *sentinel_user)
    url = topology.url(with_password=False).replace("://", "://mrtest_sentinel_app:app-pw@")
    store = make_store(url=url, key_prefix=prefix, sentinel_username="memory_sentinel",
                       sentinel_password="sent-pw")
    store.set_context("acl", {"ok": 1})
    store.append_event("acl", {"e": 1})
    assert store.get_context("acl") is not None and len(store.get_events("acl")) == 1
    with Lock(store, "acl-lock", blocking_timeout=0) as lock:
        assert lock.fencing_token is not None
    report = store.health_check()
    assert report["details"]["sentinels_up"] == 3, report
    assert store.clear_context("acl")


def test_memory_api_on_sentinel(topology: SentinelTopology, tmp_path: Path) -> None:
    """The seed's API takes a sentinel:// redis_config as is, sync and async: context and
    lock on the sentinels' primary, health_check names the sentinel topology."""
    redis_config = {"url": topology.url(), "sentinel_password": SENTINEL_PASSWORD,
                    "key_prefix": "mrtest:sentinel:api:"}
    others = {"vector_config": {"dimension": 8},
              "embedded_config": {"path": str(tmp_path / "m.db")}}
    with MemoryAPI(redis_config=redis_config, **others) as api:
        assert api.set_context("s1", {"user": "u1"})
        assert api.get_context("s1")["data"] == {"user": "u1"}
        redis_health = api.health_check()["adapters"]["redis"]
        assert redis_health["details"]["mode"] == "sentinel", redis_health

    async def scenario() -> Any:
        async with AsyncMemoryAPI(redis_config=redis_config, **others) as api:
            assert (await api.get_context("s1"))["data"] == {"user": "u1"}
            return (await api.health_check())["adapters"]["redis"]

    assert asyncio.run(scenario())["details"]["sentinels_up"] == 3


def test_sentinel_primary_as_a_redlock_node(topology: SentinelTopology, make_store: Any,
                                            redis_url: str) -> None:
    """lock_nodes may hold sentinel:// URLs: Redlock over the shared Redis plus the
    sentinels' primary (quorum 2 of 2) excludes a second holder and releases."""
    # lock_node_timeout bounds a sentinel lookup plus a connect: generous on a loaded host
    store = make_store(url=redis_url, lock_nodes=[topology.url()], lock_node_timeout=3)
    with Lock(store, "sentinel-node", blocking_timeout=0) as lock:
        assert lock.fencing_token is not None
        with pytest.raises(LockNotAcquiredError):
            Lock(store, "sentinel-node", blocking_timeout=0).acquire()
        with topology.primary().client() as admin:
            assert admin.exists(store.keys.lock_pair("sentinel-node")[0]) == 1
    assert not store.is_held("sentinel-node")


def test_manual_failover_is_ridden_out(topology: SentinelTopology, make_store: Any) -> None:
    """SENTINEL FAILOVER while 3 threads write: the primary is demoted (READONLY, its
    clients killed), the replica promoted; no call fails past its deadline, and within
    sentinel_check_interval of the promotion the pooled connections write to the new
    primary (not to the old one, which takes writes until the sentinels demote it)."""
    store = make_store(operation_timeout=8, sentinel_check_interval=0.2)
    old = topology.primary()
    stop = threading.Event()
    tallies = [Tally(f"manual-{i}") for i in range(3)]
    threads = [threading.Thread(target=write_loop, args=(store, tally, stop))
               for tally in tallies]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    with topology.sentinel_client(topology.sentinels[1]) as admin:
        admin.execute_command("SENTINEL", "FAILOVER", topology.service)
    new = topology.wait_promoted(old)
    time.sleep(0.3)
    stop.set()
    for thread in threads:
        thread.join(30)
    result = outcome(tallies, read_back(store, tallies))
    print(f"manual fail-over: {result}")
    assert result.failed == 0 and result.rounds > len(tallies)
    with new.client() as admin:
        assert admin.info("replication")["role"] == "master"
    store.set_context("after-failover", {"ok": 1})
    with new.client() as admin:
        assert admin.exists(store.keys.context("after-failover")) == 1


def test_async_store_follows_the_failover(topology: SentinelTopology) -> None:
    """The async transport finds the current primary through the sentinels and writes
    there, and survives a manual fail-over of its own."""
    config = sentinel_config(topology, "mrtest:sentinel:async:", operation_timeout=8)

    async def scenario() -> tuple[int, int]:
        store = AsyncRedisStore(config)
        try:
            await store.set_context("a", {"n": 0})
            old = topology.primary()
            failed = 0

            async def loop(stop: asyncio.Event) -> int:
                nonlocal failed
                n = 0
                while not stop.is_set():
                    n += 1
                    try:
                        await store.set_context("a", {"n": n})
                    except BackendUnavailableError:
                        failed += 1
                return n

            stop = asyncio.Event()
            task = asyncio.ensure_future(loop(stop))
            await asyncio.sleep(0.2)
            with topology.sentinel_client(topology.sentinels[2]) as admin:
                admin.execute_command("SENTINEL", "FAILOVER", topology.service)
            await asyncio.to_thread(topology.wait_promoted, old)
            await asyncio.sleep(0.3)
            stop.set()
            written = await task
            stored = await store.get_context("a")
            assert stored is not None and stored["data"]["n"] == written
            return written, failed
        finally:
            await store.close()

    written, failed = asyncio.run(scenario())
    assert written > 0 and failed == 0
