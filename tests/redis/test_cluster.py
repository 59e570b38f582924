"""The store on a real Redis Cluster (3 masters + 3 replicas): contexts spread over slots,
each context's keys in one slot, batch and locks across nodes, stats summed over the
primaries."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from memory_resources.config import RedisConfig
from memory_resources.errors import LockNotAcquiredError
from memory_resources.locking import Lock
from memory_resources.stores.redis import RedisStore
from tests.servers import RedisServer


@pytest.fixture
def cluster_store(redis_cluster: Any) -> Iterator[RedisStore]:
    """A RedisStore with cluster=True under a unique prefix; its keys deleted afterwards."""
    prefix = f"mrtest:{uuid.uuid4().hex[:8]}:"
    store = RedisStore(RedisConfig(url=redis_cluster.url, cluster=True, key_prefix=prefix))
    store.connect()
    yield store
    client = store.client
    for key in list(client.scan_iter(match=prefix + "*", count=1000)):
        client.delete(key)
    store.close()


def test_context_and_events_on_the_cluster(cluster_store: RedisStore) -> None:
    """set/get/append/get_events/clear work for many ids spread over the cluster's slots,
    and both keys of each context hash to one slot."""
    ids = [f"session {i} {{odd}}" for i in range(30)]
    for cid in ids:
        cluster_store.set_context(cid, {"cid": cid}, ttl=120)
        cluster_store.append_event(cid, {"n": 1})
    slots = set()
    for cid in ids:
        ctx_key, evt_key = cluster_store.keys.context_pair(cid)
        assert key_slot(ctx_key.encode()) == key_slot(evt_key.encode())
        slots.add(key_slot(ctx_key.encode()))
        record = cluster_store.get_context(cid)
        assert record is not None and record["data"] == {"cid": cid}
        assert [e["data"] for e in cluster_store.get_events(cid)] == [{"n": 1}]
    assert len(slots) > 1
    owners = {cluster_store.client.get_node_from_key(cluster_store.keys.context(cid)).name
              for cid in ids}
    assert len(owners) == 3
    assert cluster_store.clear_context(ids[0]) is True
    assert cluster_store.get_context(ids[0]) is None
    assert cluster_store.get_events(ids[0]) == []


def test_batch_on_the_cluster(cluster_store: RedisStore) -> None:
    """set_contexts / get_contexts spread over all three masters keep order and versions."""
    items = {f"b{i}": {"i": i} for i in range(60)}
    assert [r["version"] for r in cluster_store.set_contexts(items)] == [1] * 60
    assert [r["version"] for r in cluster_store.set_contexts(items)] == [2] * 60
    got = cluster_store.get_contexts([*items, "absent"])
    assert [r["data"]["i"] for r in got[:-1] if r is not None] == list(range(60))
    assert got[-1] is None


def test_locks_on_the_cluster(cluster_store: RedisStore) -> None:
    """Locks on a cluster exclude a second holder and their tokens increase."""
    tokens = []
    for name in ("alpha", "beta", "alpha"):
        with Lock(cluster_store, name, blocking_timeout=0) as lock:
            with pytest.raises(LockNotAcquiredError):
                Lock(cluster_store, name, blocking_timeout=0).acquire()
            tokens.append((name, lock.fencing_token))
    assert tokens[0][1] is not None and tokens[2][1] is not None
    assert tokens[2][1] > tokens[0][1]


def test_stats_and_health_on_the_cluster(cluster_store: RedisStore) -> None:
    """stats() sums used_memory over the primaries and counts keys under the prefix on
    every node; health_check reports cluster mode."""
    cluster_store.set_contexts({f"k{i}": {} for i in range(12)})
    stats = cluster_store.stats()
    assert stats["keys_under_prefix"] == 12
    assert stats["used_memory"] > 0 and isinstance(stats["used_memory_human"], str)
    health = cluster_store.health_check()
    assert health["status"] == "healthy"
    assert health["details"]["mode"] == "cluster"
    assert health["details"]["cluster_primaries"] == 3


def test_redlock_with_a_cluster_primary_and_two_lock_nodes(
    redis_cluster: Any, redis_server_factory: Callable[..., RedisServer]
) -> None:
    """Redlock over a cluster (as one member, reached at the lock's slot) plus two
    independent masters excludes a second holder and keeps tokens increasing; it still
    locks with one independent master stopped."""
    prefix = f"mrtest:{uuid.uuid4().hex[:8]}:"
    nodes = [redis_server_factory(), redis_server_factory()]
    store = RedisStore(RedisConfig(url=redis_cluster.url, cluster=True, key_prefix=prefix,
                                   lock_nodes=[n.url for n in nodes], retry_attempts=0))
    try:
        with Lock(store, "multi", blocking_timeout=0) as lock:
            first = lock.fencing_token
            with pytest.raises(LockNotAcquiredError):
                Lock(store, "multi", blocking_timeout=0).acquire()
        nodes[1].stop()
        with Lock(store, "multi", blocking_timeout=0) as lock:
            assert first is not None and lock.fencing_token is not None
            assert lock.fencing_token > first
    finally:
        client = store.client
        for key in list(client.scan_iter(match=prefix + "*", count=1000)):
            client.delete(key)
        store.close()


def _move_slot(redis_cluster: Any, slot: int) -> str:
    """Reassign ``slot`` (holding no keys) to another master (on every master; replicas
    follow); returns the new owner's address. Clients that cached the old layout get MOVED
    for it."""
    clients = {f"{n.host}:{n.port}": n.client() for n in redis_cluster.masters()}
    try:
        ids = {addr: c.execute_command("CLUSTER MYID") for addr, c in clients.items()}
        ids = {a: (i.decode() if isinstance(i, bytes) else i) for a, i in ids.items()}
        any_client = next(iter(clients.values()))
        owner = None
        for start, end, *nodes in any_client.execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                host, port = nodes[0][0], nodes[0][1]
                owner = f"{host.decode() if isinstance(host, bytes) else host}:{port}"
        assert owner is not None
        target = next(addr for addr in clients if addr != owner)
        assert clients[owner].execute_command("CLUSTER COUNTKEYSINSLOT", slot) == 0
        for client in clients.values():
            client.execute_command("CLUSTER SETSLOT", slot, "NODE", ids[target])
        return target
    finally:
        for client in clients.values():
            client.close()


def test_batch_follows_a_slot_moved_after_connecting(
    redis_cluster: Any, cluster_store: RedisStore
) -> None:
    """A batch item whose slot moved to another master after the store cached the layout
    is refused with MOVED by the old owner, re-sent through the cluster client, and lands
    on the new owner; the other items are unaffected."""
    if not hasattr(redis_cluster, "nodes"):
        pytest.skip("needs the throwaway cluster to reassign a slot")
    cluster_store.set_contexts({"warm": {}})  # the store has now cached the slot layout
    moving = "slot-moving"
    slot = key_slot(cluster_store.keys.context(moving).encode())
    new_owner = _move_slot(redis_cluster, slot)
    records = cluster_store.set_contexts({moving: {"m": 1}, "stay": {"s": 1}})
    assert [r["version"] for r in records] == [1, 1]
    got = cluster_store.get_contexts([moving, "stay"])
    assert got[0] is not None and got[0]["data"] == {"m": 1}
    host, port = new_owner.split(":")
    with redis.Redis(host=host, port=int(port)) as direct:
        assert direct.exists(cluster_store.keys.context(moving)) == 1


def test_async_store_on_the_cluster(cluster_store: RedisStore) -> None:
    """AsyncRedisStore with cluster=True: contexts, events, batch and a lock over ids spread
    across the cluster's slots read back like the sync store's."""
    import asyncio

    from memory_resources.stores.redis.aio import AsyncRedisStore

    ids = [f"async {i} {{odd}}" for i in range(12)]

    async def scenario() -> None:
        store = AsyncRedisStore(cluster_store.config)
        try:
            await store.connect()
            await asyncio.gather(*(store.set_context(cid, {"cid": cid}, ttl=120)
                                   for cid in ids))
            await asyncio.gather(*(store.append_event(cid, {"n": 1}) for cid in ids))
            records = await store.get_contexts(ids)
            assert [r["data"]["cid"] for r in records] == ids  # type: ignore[index]
            assert [len(await store.get_events(cid)) for cid in ids] == [1] * len(ids)
            token = await store.try_acquire("async-lock", "owner-a", 5000)
            assert token is not None and await store.try_acquire("async-lock", "b", 5000) is None
            assert await store.release("async-lock", "owner-a") is True
            assert all([await store.clear_context(cid) for cid in ids])
        finally:
            await store.close()

    asyncio.run(scenario())
    assert cluster_store.get_context(ids[0]) is None
