"""AsyncMemoryAPI: every MemoryAPI method awaitable, same records and typed errors, on the
embedded default and on Redis; locks, handles, automatic pipelining, and a loop that keeps
running while a backend hangs."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from memory_resources import AsyncMemoryAPI
from memory_resources.api import MemoryAPI
from memory_resources.errors import (
    BackendError,
    BackendUnavailableError,
    LockNotAcquiredError,
    MemoryValidationError,
)
from memory_resources.stores.redis.aio import AsyncRedisStore
from tests.concurrency import lag_while
from tests.servers.proxy import TcpProxy

from .conftest import DIMENSION, unit

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def run(coro: Awaitable[Any]) -> Any:
    """Run one coroutine on a fresh event loop."""
    async def main() -> Any:
        return await coro
    return asyncio.run(main())


@pytest.fixture(params=["embedded", "redis", "postgres"])
def configs(request: pytest.FixtureRequest, embedded_config: dict[str, object]
            ) -> dict[str, Any]:
    """The API's configs: the embedded default alone, Redis for context/events/locks, or
    PostgreSQL for history/outputs/audit (and, through from_stores, the rest)."""
    configs: dict[str, Any] = {"embedded_config": embedded_config,
                               "vector_config": {"dimension": DIMENSION}}
    if request.param == "redis":
        configs["redis_config"] = {"url": request.getfixturevalue("redis_url"),
                                   "key_prefix": request.getfixturevalue("redis_prefix")}
    if request.param == "postgres":
        configs["postgres_config"] = {"dsn": request.getfixturevalue("postgres_dsn"),
                                      "schema": request.getfixturevalue("pg_schema")}
    return configs


def assert_loop_free(scenario: Callable[[], Awaitable[tuple[float, Any]]],
                     expected: type[BaseException]) -> None:
    """``scenario()`` ends with ``expected`` and its ticker is never more than 50 ms late.

    A blocking call would stall the loop for its whole timeout (>= 300 ms here) every time;
    on a loaded 2-core machine the OS alone can delay one tick past 50 ms, so one reading
    over the limit is measured again before failing.
    """
    lags = []
    for _ in range(2):
        lag, outcome = run(scenario())
        assert isinstance(outcome, expected), outcome
        lags.append(lag)
        if lag <= 0.05:
            return
    pytest.fail(f"the event loop stalled {[round(x * 1000) for x in lags]} ms")


def test_every_method_round_trips_like_the_sync_api(configs: dict[str, Any]) -> None:
    """Each AsyncMemoryAPI method returns what the MemoryAPI returns for the same data."""
    async def scenario() -> None:
        async with AsyncMemoryAPI(**configs) as api:
            assert await api.set_context("s1", {"user": "ada"}, ttl=60) is True
            record = await api.get_context("s1")
            assert record is not None and record["data"] == {"user": "ada"}
            assert record["ttl"] == 60 and record["version"] == 1
            assert await api.append_event("s1", {"type": "goal"}) is True
            event = await api.append_event_record("s1", {"type": "step"})
            events = await api.get_events("s1")
            assert [e["data"] for e in events] == [{"type": "goal"}, {"type": "step"}]
            assert await api.get_events("s1", since=events[0]["id"]) == [event]
            assert await api.write_flow_run_history("flow", "run-1", {"status": "RUNNING"})
            assert await api.write_flow_run_history("flow", "run-1", {"status": "completed"})
            rows = await api.read_flow_run_history("flow", status="completed")
            assert [(r["run_id"], r["status"]) for r in rows] == [("run-1", "completed")]
            assert await api.write_task_output("task", {"answer": 42}, {"m": 1})
            output = await api.write_task_output_record("task", [1, 2])
            assert output["version"] == 2
            assert (await api.read_task_output("task")) == output
            assert len(await api.list_task_outputs("task")) == 2
            assert await api.read_audit_log(operation="output.write", limit=1)
            assert await api.index_embedding("v", unit(1.0), {"k": "x"}) is True
            matches = await api.query_embeddings(unit(1.0), top_k=1, filter_metadata={"k": "x"})
            assert [m["id"] for m in matches] == ["v"]
            assert await api.delete_embedding("v") is True
            assert await api.delete_embedding("v") is False
            assert await api.clear_context("s1") is True
            assert await api.get_context("s1") is None
            health = await api.health_check()
            assert health["overall_status"] == "healthy"
            stats = await api.get_memory_stats()
            assert set(stats["adapters"]) == {"redis", "postgres", "vector"}

    run(scenario())
    with MemoryAPI(**configs) as sync:  # the same stores, read back through the sync API
        assert sync.read_task_output("task")["output"] == [1, 2]  # type: ignore[index]
        assert sync.read_flow_run_history("flow")[0]["status"] == "completed"


BAD_CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any], str]] = [
    ("set_context", ("", {}), {}, "context_id"),
    ("set_context", ("c", [1]), {}, "context_data"),
    ("set_context", ("c", {"x": float("nan")}), {}, "context_data"),
    ("set_context", ("c", {}), {"ttl": -1}, "ttl"),
    ("append_event", ("c", "text"), {}, "event"),
    ("get_events", ("c",), {"limit": 0}, "limit"),
    ("write_flow_run_history", ("f", "r", {"duration": -1}), {}, 'data["duration"]'),
    ("read_flow_run_history", ("f",), {"since": "yesterday"}, "since"),
    ("write_task_output", ("t", object()), {}, "output"),
    ("read_audit_log", (), {"limit": 10**9}, "limit"),
    ("index_embedding", ("v", [1.0]), {}, "embedding"),
    ("query_embeddings", (unit(1.0),), {"top_k": 0}, "top_k"),
]


@pytest.mark.parametrize(("method", "args", "kwargs", "field"), BAD_CALLS,
                         ids=[f"{c[0]}-{c[3]}" for c in BAD_CALLS])
def test_bad_input_raises_the_sync_apis_typed_error(
        embedded_config: dict[str, object], method: str, args: tuple[Any, ...],
        kwargs: dict[str, Any], field: str) -> None:
    """Bad input raises the MemoryValidationError the sync API raises, naming the field."""
    configs = {"embedded_config": embedded_config, "vector_config": {"dimension": DIMENSION}}
    with MemoryAPI(**configs) as sync, pytest.raises(MemoryValidationError) as expected:
        getattr(sync, method)(*args, **kwargs)

    async def call() -> None:
        async with AsyncMemoryAPI(**configs) as api:
            await getattr(api, method)(*args, **kwargs)

    with pytest.raises(MemoryValidationError) as raised:
        run(call())
    assert type(raised.value) is type(expected.value)
    assert raised.value.field == expected.value.field
    assert raised.value.field.startswith(field)


def test_lock_is_exclusive_and_auto_extends(configs: dict[str, Any]) -> None:
    """A held lock makes a second acquire fail after blocking_timeout; auto_extend keeps a
    0.3 s lease alive for 0.6 s; tokens increase; the lease is free after release."""
    name = f"lock-{uuid.uuid4().hex}"

    async def scenario() -> None:
        async with AsyncMemoryAPI(**configs) as api:
            lock = api.lock(name, timeout=0.3, auto_extend=True)
            async with lock:
                first = lock.fencing_token
                await asyncio.sleep(0.6)
                assert lock.held and not lock.lost
                with pytest.raises(LockNotAcquiredError):
                    async with api.acquire_lock(name, timeout=1, blocking_timeout=0.1):
                        pass
            async with api.acquire_lock(name, blocking_timeout=0) as again:
                assert again.fencing_token is not None and first is not None
                assert again.fencing_token > first

    run(scenario())


def test_context_handle_reads_and_merges(configs: dict[str, Any]) -> None:
    """api.context(id) gives awaitable get/set/update/append_event/events/clear."""
    async def scenario() -> None:
        async with AsyncMemoryAPI(**configs) as api:
            handle = api.context(f"s-{uuid.uuid4().hex}", ttl=60)
            await handle.set({"a": 1})
            assert await handle.update(b=2) == {"a": 1, "b": 2}
            await handle.append_event({"e": 1})
            assert [e["data"] for e in await handle.events()] == [{"e": 1}]
            assert (await handle.get())["ttl"] == 60  # type: ignore[index]
            assert await handle.clear() is True
            assert await handle.data() == {}

    run(scenario())


def test_concurrent_calls_are_pipelined_with_their_own_replies(
        redis_url: str, redis_prefix: str, embedded_config: dict[str, object]) -> None:
    """64 concurrent get_context calls each get their own context; a command that fails on
    the server (WRONGTYPE) fails only its caller, the rest of the pipeline succeeds."""
    config = {"url": redis_url, "key_prefix": redis_prefix}

    async def scenario() -> None:
        store = AsyncRedisStore(config, auto_pipeline=True)
        async with AsyncMemoryAPI.from_stores(context=store, events=store, locks=store,
                                              embedded_config=embedded_config) as api:
            await asyncio.gather(*(api.set_context(f"c{i}", {"i": i}) for i in range(64)))
            assert store.auto_pipeline and store._pipe is not None
            client = redis.Redis.from_url(redis_url)
            client.xadd(store.keys.context("broken"), {"x": "1"})
            client.close()
            results = await asyncio.gather(
                *(api.get_context(f"c{i}") for i in range(64)), api.get_context("broken"),
                return_exceptions=True)
            assert [r["data"]["i"] for r in results[:64]] == list(range(64))  # type: ignore[index]
            assert isinstance(results[64], BackendError)
            assert "WRONGTYPE" in str(results[64])

    run(scenario())


@pytest.fixture
def blackholed_redis(redis_url: str, redis_prefix: str) -> Iterator[dict[str, Any]]:
    """A Redis config through a loopback proxy (black-holed by the test), short timeouts."""
    target = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs
    with TcpProxy("127.0.0.1", int(target["port"])) as proxy:
        yield {"proxy": proxy, "config": {
            "url": f"redis://127.0.0.1:{proxy.port}/{target.get('db', 0)}",
            "key_prefix": redis_prefix, "socket_timeout": 0.3, "connection_timeout": 0.3,
            "retry_attempts": 1}}


def test_black_holed_redis_never_blocks_the_loop(
        blackholed_redis: dict[str, Any], embedded_config: dict[str, object]) -> None:
    """While Redis swallows every byte, set_context raises BackendUnavailableError after its
    timeouts and a 10 ms ticker on the same loop is never late by more than 50 ms."""
    async def scenario() -> tuple[float, Any]:
        blackholed_redis["proxy"].pass_through()
        async with AsyncMemoryAPI(redis_config=blackholed_redis["config"],
                                  embedded_config=embedded_config) as api:
            blackholed_redis["proxy"].blackhole()
            return await lag_while(lambda: api.set_context("c", {"x": 1}))

    assert_loop_free(scenario, BackendUnavailableError)


def test_black_holed_postgres_never_blocks_the_loop(
        postgres_dsn: str, pg_schema: str, embedded_config: dict[str, object]) -> None:
    """While PostgreSQL swallows every byte, a history write on asyncpg fails with a typed
    error after its timeouts and the loop's 10 ms ticker is never more than 50 ms late."""
    import psycopg2.extensions

    target = psycopg2.extensions.parse_dsn(postgres_dsn)

    async def scenario() -> tuple[float, Any]:
        proxy.pass_through()
        dsn = (f"postgresql://{target.get('user', 'postgres')}@127.0.0.1:{proxy.port}/"
               f"{target.get('dbname', 'test')}")
        config = {"dsn": dsn, "schema": pg_schema, "connection_timeout": 1.0,
                  "retry_attempts": 1, "operation_timeout": 1.5}
        async with AsyncMemoryAPI(postgres_config=config,
                                  embedded_config=embedded_config) as api:
            await api.write_flow_run_history("f", "r0", {"status": "running"})
            proxy.blackhole()
            return await lag_while(
                lambda: api.write_flow_run_history("f", "r1", {"status": "running"}))

    with TcpProxy("127.0.0.1", int(target.get("port", 5432))) as proxy:
        assert_loop_free(scenario, BackendError)


def test_locked_sqlite_file_never_blocks_the_loop(tmp_path: Path) -> None:
    """While another connection holds the SQLite write lock, a write waits on a worker
    thread (busy_timeout) and the loop's ticker stays within 50 ms."""
    path = tmp_path / "memory.db"

    async def scenario() -> tuple[float, Any]:
        async with AsyncMemoryAPI(embedded_config={"path": str(path), "busy_timeout": 0.4}
                                  ) as api:
            holder = sqlite3.connect(path, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
            try:
                return await lag_while(lambda: api.set_context("c", {"x": 1}))
            finally:
                holder.execute("ROLLBACK")
                holder.close()

    assert_loop_free(scenario, BackendError)


def test_batch_calls_match_the_sync_api(configs: dict[str, Any]) -> None:
    """set_contexts/get_contexts, append_events, write_task_outputs,
    write_flow_run_histories and index_embeddings return what their single calls store,
    and a bad item raises the sync API's error naming the item, writing nothing."""
    async def scenario() -> None:
        async with AsyncMemoryAPI(**configs) as api:
            written = await api.set_contexts({"b1": {"n": 1}, "b2": {"n": 2}}, ttl=60)
            assert [r["version"] for r in written] == [1, 1]
            assert await api.get_contexts(["b2", "absent", "b1"]) == [written[1], None,
                                                                       written[0]]
            events = await api.append_events("b1", [{"i": 1}, {"i": 2}])
            assert await api.get_events("b1") == events
            outputs = await api.write_task_outputs([
                {"task_id": "bt", "output": 1, "task_run_id": "tr-1"},
                {"task_id": "bt", "output": 2}])
            assert [o["version"] for o in outputs] == [1, 2]
            assert await api.write_flow_run_histories([
                {"flow_id": "bf", "run_id": "r1", "data": {"status": "running"}},
                {"flow_id": "bf", "run_id": "r1", "data": {"status": "completed"}}]) == 2
            assert [r["status"] for r in await api.read_flow_run_history("bf")] == ["completed"]
            assert await api.index_embeddings(["e1", "e2"], [unit(1.0), unit(0.0, 1.0)],
                                              [{"k": 1}, None]) == 2
            top = await api.query_embeddings(unit(0.0, 1.0), top_k=1)
            assert top[0]["id"] == "e2"
            with pytest.raises(MemoryValidationError) as bad:
                await api.set_contexts({"b3": {"n": 3}, "b4": [4]})  # type: ignore[dict-item]
            assert bad.value.field.startswith("contexts[1]")
            assert await api.get_contexts(["b3"]) == [None]

    run(scenario())
