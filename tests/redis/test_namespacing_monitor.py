"""Namespacing and monitoring: after a run of every operation a dedicated server holds no
key outside key_prefix; health_check and stats report what the spec names."""

from __future__ import annotations

from collections.abc import Callable

from memory_resources.locking import Lock
from memory_resources.stores.redis import RedisStore
from tests.fixtures.redis import MakeRedisStore
from tests.servers import RedisServer


def _exercise(store: RedisStore) -> None:
    for i in range(5):
        cid = f"odd id {i} *{{}}\n"
        store.set_context(cid, {"i": i}, ttl=60 if i % 2 else None)
        store.append_event(cid, {"e": i})
        store.get_events(cid, limit=1)
    store.set_contexts({f"batch{i}": {"i": i} for i in range(5)})
    store.get_contexts(["batch0", "nope"])
    store.clear_context("odd id 0 *{}\n")
    with Lock(store, "ns-lock", auto_extend=True, timeout=1) as lock:
        lock.extend()
    store.stats()
    store.health_check()


def test_every_key_is_under_the_prefix(
    redis_server_factory: Callable[..., RedisServer], make_redis_store: MakeRedisStore
) -> None:
    """On servers used by nothing else, SCAN after a run of every operation (including
    Redlock over an extra node) shows only keys that start with key_prefix."""
    primary, node = redis_server_factory(), redis_server_factory()
    store = make_redis_store(url=primary.url, lock_nodes=[node.url], key_prefix="tenant-a:")
    _exercise(store)
    for server in (primary, node):
        with server.client() as client:
            keys = [k.decode() for k in client.scan_iter(count=1000)]
        assert keys, "the run wrote nothing"
        assert all(k.startswith("tenant-a:") for k in keys), keys


def test_stores_with_different_prefixes_do_not_see_each_other(
    make_redis_store: MakeRedisStore, redis_prefix: str
) -> None:
    """Two stores on one server with different prefixes keep separate contexts and locks."""
    a = make_redis_store(key_prefix=redis_prefix + "a:")
    b = make_redis_store(key_prefix=redis_prefix + "b:")
    a.set_context("same", {"owner": "a"})
    assert b.get_context("same") is None
    with Lock(a, "same", blocking_timeout=0), Lock(b, "same", blocking_timeout=0) as lock:
        assert lock.fencing_token == 1


def test_health_check_reports_version_role_and_latency(redis_store: RedisStore) -> None:
    """health_check() PINGs and reports the server version and role."""
    report = redis_store.health_check()
    assert report["status"] == "healthy" and report["backend"] == "redis"
    assert report["latency_ms"] >= 0
    assert report["details"]["role"] == "master"
    assert str(report["details"]["server_version"])[0].isdigit()


def test_stats_report_spec_keys_and_prefix_count(redis_store: RedisStore) -> None:
    """stats() has used_memory (the spec's key) and counts the keys under the prefix."""
    redis_store.set_contexts({f"s{i}": {} for i in range(7)})
    redis_store.append_event("s0", {})
    stats = redis_store.stats()
    assert stats["used_memory"] > 0
    for key in ("used_memory_human", "connected_clients", "instantaneous_ops_per_sec"):
        assert key in stats
    assert stats["keys_under_prefix"] == 8
    assert stats["keys_under_prefix_truncated"] is False
    assert stats["lock_nodes"] == 1 and stats["lock_quorum"] == 1
