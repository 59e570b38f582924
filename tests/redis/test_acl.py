"""The least-privilege Redis ACL user of docs/redis.md, on a throwaway server.

The ContextStore, EventLog and LockManager contracts run as this user (backend
``redis_acl`` in tests/contract/conftest.py); here: what it may not do fails typed."""

from __future__ import annotations

import asyncio

import pytest

from memory_resources.errors import BackendError, MemoryResourcesError
from tests.fixtures.redis import MakeRedisStore
from tests.fixtures.roles import create_acl_user
from tests.servers import RedisServer


def test_a_command_outside_the_set_raises_a_typed_error(
    make_redis_acl_store: MakeRedisStore,
) -> None:
    """stats() needs INFO and SCAN, which the minimal user lacks: a typed BackendError
    carrying NOPERM; health_check() reports unhealthy instead of raising."""
    store = make_redis_acl_store()
    store.set_context("c", {"x": 1})
    with pytest.raises(BackendError) as info:
        store.stats()
    assert isinstance(info.value, MemoryResourcesError)
    assert isinstance(info.value, PermissionError)
    assert "no permissions to run the 'info' command" in str(info.value)
    report = store.health_check()
    assert report["status"] == "unhealthy"


def test_keys_outside_the_pattern_are_refused_and_nothing_is_written(
    make_redis_acl_store: MakeRedisStore, redis_acl_server: RedisServer
) -> None:
    """A store whose key_prefix lies outside the user's ~pattern gets typed errors on
    writes (the script's keys) and reads, and no key appears under that prefix."""
    allowed = "mrtest:aclok:"
    with redis_acl_server.client() as admin:
        user = create_acl_user(admin, allowed)
        try:
            store = make_redis_acl_store(prefix="mrtest:other:", user=user)
            for call in (lambda: store.set_context("c", {"x": 1}),
                         lambda: store.append_event("c", {"e": 1}),
                         lambda: store.get_context("c"),
                         lambda: store.try_acquire("lock", "me", 1000)):
                with pytest.raises(BackendError, match="no permissions") as info:
                    call()
                assert isinstance(info.value, PermissionError)
            assert admin.keys("mrtest:other:*") == []
            inside = make_redis_acl_store(prefix=allowed, user=user)
            assert inside.set_context("c", {"x": 1})["version"] == 1
        finally:
            admin.execute_command("ACL", "DELUSER", user[0])


def test_monitoring_commands_make_stats_work(
    make_redis_acl_store: MakeRedisStore, redis_acl_server: RedisServer
) -> None:
    """With the documented optional +info +scan, stats() and health_check() work."""
    prefix = "mrtest:aclmon:"
    with redis_acl_server.client() as admin:
        user = create_acl_user(admin, prefix)
        try:
            admin.execute_command("ACL", "SETUSER", user[0], "+info", "+scan")
            store = make_redis_acl_store(prefix=prefix, user=user)
            store.set_context("c", {"x": 1})
            assert store.stats()["keys_under_prefix"] == 1
            assert store.health_check()["status"] == "healthy"
        finally:
            admin.execute_command("ACL", "DELUSER", user[0])


def test_scripts_reload_after_script_flush(
    make_redis_acl_store: MakeRedisStore, redis_acl_server: RedisServer
) -> None:
    """After SCRIPT FLUSH the user's next write loads its script again (SCRIPT LOAD is in
    the set), for single and batch writes."""
    store = make_redis_acl_store()
    store.set_context("c", {"x": 1})
    with redis_acl_server.client() as admin:
        admin.script_flush()
        assert store.set_context("c", {"x": 2})["version"] == 2
        admin.script_flush()
    records = store.set_contexts({"a": {"n": 1}, "b": {"n": 2}})
    assert [r["version"] for r in records] == [1, 1]
    assert store.append_event("c", {"e": 1})["data"] == {"e": 1}


def test_the_async_store_works_as_the_acl_user_also_after_script_flush(
    redis_acl_server: RedisServer,
) -> None:
    """AsyncRedisStore as the documented user: context, events and a lock round-trip, and
    after SCRIPT FLUSH its EVAL fallback is allowed; a key outside the pattern is refused."""
    from memory_resources.stores.redis.aio import AsyncRedisStore

    prefix = "mrtest:aclasync:"
    with redis_acl_server.client() as admin:
        user, password = create_acl_user(admin, prefix)

        async def scenario() -> None:
            base = {"host": redis_acl_server.host, "port": redis_acl_server.port,
                    "username": user, "password": password, "socket_timeout": 5}
            store = AsyncRedisStore({**base, "key_prefix": prefix})
            outside = AsyncRedisStore({**base, "key_prefix": "mrtest:elsewhere:"})
            try:
                await store.connect()
                assert (await store.set_context("c", {"x": 1}))["version"] == 1
                admin.script_flush()
                assert (await store.set_context("c", {"x": 2}))["version"] == 2
                await store.append_event("c", {"e": 1})
                assert [e["data"] for e in await store.get_events("c")] == [{"e": 1}]
                token = await store.try_acquire("lock", "me", 5000)
                assert token is not None and await store.release("lock", "me")
                with pytest.raises(BackendError):
                    await outside.set_context("c", {"x": 1})
            finally:
                await store.close()
                await outside.close()

        try:
            asyncio.run(scenario())
        finally:
            admin.execute_command("ACL", "DELUSER", user)
