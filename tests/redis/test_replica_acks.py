"""replica_acks on a primary with one replica: every write is confirmed by WAIT in the same
round trip, and a write fewer replicas confirmed raises ReplicaAckError (sync and async)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from memory_resources.config import RedisConfig
from memory_resources.errors import BackendTimeoutError, BackendUnavailableError, ReplicaAckError
from memory_resources.locking import Lock
from memory_resources.stores.redis import RedisStore
from memory_resources.stores.redis.aio import AsyncRedisStore
from tests.fixtures.redis import MakeRedisStore
from tests.servers import RedisServer


def _wait_in_sync(primary: RedisServer) -> None:
    """Until a write on ``primary`` is confirmed by its replica (WAIT 1)."""
    limit = time.monotonic() + 20
    with primary.admin_client() as conn:
        while time.monotonic() < limit:
            conn.set("sync-probe", 1)
            if conn.execute_command("WAIT", 1, 200) >= 1:
                conn.delete("sync-probe")
                return
    raise AssertionError("the replica did not come online")


@pytest.fixture(scope="module")
def primary() -> Iterator[RedisServer]:
    """A throwaway primary with one replica in sync (the replica is ``primary.replica``)."""
    main = RedisServer().start()
    replica = RedisServer().start()
    with replica.admin_client() as conn:
        conn.execute_command("REPLICAOF", main.host, main.port)
    _wait_in_sync(main)
    main.replica = replica  # type: ignore[attr-defined]
    try:
        yield main
    finally:
        replica.close()
        main.close()


def _store(make: MakeRedisStore, server: RedisServer, **overrides: Any) -> RedisStore:
    """A store on ``server``: 2 s for confirmations (a loaded machine), 0.3 s when the
    test expects too few replicas (``replica_acks=2``)."""
    timeout = 0.3 if overrides.get("replica_acks") == 2 else 2.0
    return make(url=server.url, replica_ack_timeout=timeout, **overrides)


def test_confirmed_writes_reach_the_replica(primary: RedisServer,
                                            make_redis_store: MakeRedisStore) -> None:
    """With replica_acks=1 every kind of write returns normally and is already on the
    replica when the call returns (WAIT confirmed it)."""
    store = _store(make_redis_store, primary, replica_acks=1)
    replica: RedisServer = primary.replica  # type: ignore[attr-defined]
    store.set_context("c", {"v": 1})
    event = store.append_event("c", {"e": 1})
    store.append_events("c", [{"e": 2}, {"e": 3}])
    store.set_contexts({"d": {"v": 2}, "e": {"v": 3}})
    store.write_blob("path/x", b"\x00bytes")
    with Lock(store, "acked", blocking_timeout=0) as lock:
        assert lock.fencing_token is not None
    with replica.client(decode_responses=True) as direct:
        assert direct.exists(store.keys.context("c"), store.keys.context("d"),
                             store.keys.context("e")) == 3
        assert direct.xlen(store.keys.events("c")) == 3
        assert direct.xrange(store.keys.events("c"))[0][0] == event["id"]
    assert store.delete_blob("path/x") is True
    assert store.clear_context("c") is True


def test_too_few_replicas_raise_replica_ack_error(primary: RedisServer,
                                                  make_redis_store: MakeRedisStore) -> None:
    """Asking for 2 replicas where 1 exists: each write raises ReplicaAckError (a
    BackendTimeoutError) after replica_ack_timeout, naming 1 of 2, and is not retried."""
    store = _store(make_redis_store, primary, replica_acks=2)
    writes = [lambda: store.set_context("c", {"v": 1}),
              lambda: store.append_event("c", {"e": 1}),
              lambda: store.set_contexts({"c": {"v": 2}}),
              lambda: store.write_blob("p", b"x")]
    for write in writes:
        started = time.monotonic()
        with pytest.raises(ReplicaAckError) as info:
            write()
        assert 0.25 < time.monotonic() - started < 2.0
        assert (info.value.acknowledged, info.value.required) == (1, 2)
        assert isinstance(info.value, BackendTimeoutError)
        assert "replica_acks" in str(info.value)
    assert len(store.get_events("c")) == 1  # the append ran once: applied, not confirmed


def test_async_store_waits_for_replicas(primary: RedisServer, redis_prefix: str) -> None:
    """AsyncRedisStore: writes confirmed with replica_acks=1; 2 raise ReplicaAckError."""
    async def scenario() -> None:
        good = AsyncRedisStore(RedisConfig(url=primary.url, key_prefix=redis_prefix,
                                           replica_acks=1, replica_ack_timeout=2.0))
        bad = AsyncRedisStore(RedisConfig(url=primary.url, key_prefix=redis_prefix,
                                          replica_acks=2, replica_ack_timeout=0.3))
        try:
            records = await asyncio.gather(*(good.set_context(f"a{i}", {"i": i})
                                             for i in range(8)))
            assert [r["version"] for r in records] == [1] * 8
            assert (await good.append_event("a0", {"e": 1}))["data"] == {"e": 1}
            assert await good.try_acquire("lk", "me", 5000) is not None
            assert await good.release("lk", "me") is True
            with pytest.raises(ReplicaAckError) as info:
                await bad.append_event("a0", {"e": 2})
            assert info.value.acknowledged == 1
            assert len(await good.get_events("a0")) == 2
        finally:
            await good.close()
            await bad.close()

    asyncio.run(scenario())


def test_lost_replica_fails_writes_until_it_is_back(make_redis_store: MakeRedisStore) -> None:
    """A replica that dies makes replica_acks=1 writes raise ReplicaAckError (0 of 1);
    once a replica is attached again they succeed."""
    main = RedisServer().start()
    replica = RedisServer().start()
    try:
        with replica.admin_client() as conn:
            conn.execute_command("REPLICAOF", main.host, main.port)
        _wait_in_sync(main)
        store = _store(make_redis_store, main, replica_acks=1)
        store.set_context("c", {"v": 1})
        replica.kill()
        with pytest.raises(ReplicaAckError) as info:
            store.set_context("c", {"v": 2})
        assert info.value.acknowledged == 0
        replica.start()
        with replica.admin_client() as conn:
            conn.execute_command("REPLICAOF", main.host, main.port)
        _wait_in_sync(main)
        assert store.set_context("c", {"v": 3})["data"] == {"v": 3}
    finally:
        replica.close()
        main.close()


def test_write_sent_to_a_replica_is_retried_as_not_run(primary: RedisServer,
                                                       make_redis_store: MakeRedisStore) -> None:
    """A write with its WAIT reaching a replica (a demoted master before the client learns
    it): the script's READONLY, not WAIT's refusal on a replica, decides, so the call is
    retried as "not run" until its deadline and ends in BackendUnavailableError."""
    replica: RedisServer = primary.replica  # type: ignore[attr-defined]
    store = make_redis_store(url=replica.url, replica_acks=1, operation_timeout=0.6)
    with pytest.raises(BackendUnavailableError) as info:
        store.set_context("c", {"v": 1})
    assert "ReadOnlyError" in str(info.value)
