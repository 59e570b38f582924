"""Async capture: ``@remember(memory)`` on an ``async def`` flow writes history and task
outputs through async hooks on every backend, in-flow calls use ``memory.aapi`` /
``acontext`` / ``alock``, and the run's event loop keeps ticking while a backend hangs."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from prefect import flow, task

from memory_resources.blocks import MemoryStore, PostgresMemory, RedisMemory
from memory_resources.errors import BackendUnavailableError, ConfigurationError
from memory_resources.prefect import remember
from memory_resources.prefect.hooks import FlowCaptureHook, TaskCaptureHook
from tests.concurrency import lag_while
from tests.servers.proxy import TcpProxy

pytestmark = [pytest.mark.prefect, pytest.mark.usefixtures("prefect_harness")]


@task
async def plan(goal: str) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"goal": goal, "steps": ["search", "answer"]}


@pytest.fixture(params=["embedded", "redis", "postgres"])
def memory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MemoryStore]:
    """A MemoryStore on the embedded default, with Redis, or with PostgreSQL."""
    fields: dict[str, Any] = {"embedded_path": str(tmp_path / "memory.db"),
                              "outbox_path": str(tmp_path / "outbox.db")}
    if request.param == "redis":
        fields["redis"] = RedisMemory(url=request.getfixturevalue("redis_url"),
                                      key_prefix=request.getfixturevalue("redis_prefix"))
    if request.param == "postgres":
        fields["postgres"] = PostgresMemory(dsn=request.getfixturevalue("postgres_dsn"),
                                            schema=request.getfixturevalue("pg_schema"))
    store = MemoryStore(**fields)
    yield store
    store.close()


def test_async_flow_is_captured_through_async_hooks(memory: MemoryStore) -> None:
    """An async captured flow gets coroutine hooks; its history row ends completed, its
    async task's output is stored, and acontext/alock/aapi work inside the run."""
    session = f"s-{uuid.uuid4().hex[:8]}"

    @remember(memory)
    @flow(name="async-capture")
    async def agent(session_id: str, goal: str) -> dict[str, Any]:
        ctx = memory.acontext(session_id)
        await ctx.append_event({"type": "goal", "goal": goal})
        async with memory.alock(f"session:{session_id}") as lock:
            assert lock.fencing_token is not None
            result = await plan(goal)
        await memory.aapi.set_context(session_id, {"last": goal})
        return result

    hook = next(h for h in agent.on_running_hooks if isinstance(h, FlowCaptureHook))
    pending = hook(agent, None, None)
    assert asyncio.iscoroutine(pending)
    pending.close()  # the engine awaits it; here only its kind is checked
    assert any(isinstance(h, TaskCaptureHook) for h in plan.on_completion_hooks)

    async def main() -> dict[str, Any]:
        try:
            return await agent(session, "write a haiku")
        finally:
            await memory.aapi.disconnect()

    assert asyncio.run(main())["goal"] == "write a haiku"
    rows = memory.api.read_flow_run_history(None, flow_name="async-capture")
    assert [r["status"] for r in rows] == ["completed"]
    outputs = memory.api.read_audit_log(operation="output.write",
                                        flow_run_id=rows[0]["run_id"])
    stored = memory.api.read_task_output(outputs[0]["target"])
    assert stored is not None and stored["output"]["steps"] == ["search", "answer"]
    assert [e["data"]["type"] for e in memory.api.get_events(session)] == ["goal"]
    assert memory.api.get_context(session)["data"] == {"last": "write a haiku"}  # type: ignore[index]


def test_aapi_outside_a_loop_names_the_fix(memory_store: MemoryStore) -> None:
    """memory.aapi without a running event loop raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match="running event loop"):
        memory_store.aapi  # noqa: B018


def test_loop_keeps_ticking_while_redis_is_black_holed(
        tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    """A captured async flow writes its context to a black-holed Redis: each write fails
    with BackendUnavailableError after operation_timeout while a 10 ms ticker on the
    flow's loop is never more than 50 ms late, and history and outputs are still captured.

    The ticker runs while our calls are awaited: Prefect's engine itself holds an async
    flow's loop for up to ~130 ms between steps on this machine (measured without
    memory_resources), so the whole run cannot be the window.
    """
    target = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs

    @task
    async def step(i: int) -> int:
        return i * 2

    with TcpProxy("127.0.0.1", int(target["port"])) as proxy:
        memory = MemoryStore(
            embedded_path=str(tmp_path / "memory.db"), outbox_path=str(tmp_path / "ob.db"),
            redis=RedisMemory(url=f"redis://127.0.0.1:{proxy.port}/{target.get('db', 0)}",
                              key_prefix=redis_prefix, socket_timeout=0.3,
                              connection_timeout=0.3, operation_timeout=0.6))
        lags: list[float] = []
        outcomes: list[Any] = []

        @remember(memory)
        @flow(name="async-blackhole")
        async def agent() -> int:
            total = 0
            for i in range(3):
                lag, outcome = await lag_while(
                    lambda i=i: memory.acontext("s").set({"i": i}))
                lags.append(lag)
                outcomes.append(outcome)
                total += await step(i)
            return total

        async def main() -> int:
            try:
                proxy.blackhole()
                return await agent()
            finally:
                await memory.aapi.disconnect()

        try:
            result = asyncio.run(main())
        finally:
            memory.close()
    assert result == 6
    assert all(isinstance(o, BackendUnavailableError) for o in outcomes), outcomes
    rows = memory.api.read_flow_run_history(None, flow_name="async-blackhole")
    assert [r["status"] for r in rows] == ["completed"]
    audit = memory.api.read_audit_log(operation="output.write", flow_run_id=rows[0]["run_id"])
    assert len(audit) == 3
    # a blocked loop would be late by the whole operation_timeout (600 ms) every time; one
    # window in three may meet an OS scheduling hiccup on a loaded 2-core machine
    assert sum(lag > 0.05 for lag in lags) <= 1, f"the flow's event loop stalled {lags} s"


def test_capture_hooks_never_block_the_loop_while_postgres_is_black_holed(
        tmp_path: Path, postgres_dsn: str, pg_schema: str) -> None:
    """With the history store (PostgreSQL) black-holed, the capture hook of an async flow
    waits on a worker thread (operation_timeout) and keeps the record in the outbox, while
    a 10 ms ticker on the flow's loop is never more than 50 ms late during the hooks."""
    import psycopg2.extensions

    target = psycopg2.extensions.parse_dsn(postgres_dsn)
    ticks: list[tuple[float, float]] = []
    windows: list[tuple[float, float]] = []

    with TcpProxy("127.0.0.1", int(target.get("port", 5432))) as proxy:
        memory = MemoryStore(
            embedded_path=str(tmp_path / "memory.db"), outbox_path=str(tmp_path / "ob.db"),
            postgres=PostgresMemory(
                dsn=f"postgresql://{target.get('user', 'postgres')}@127.0.0.1:{proxy.port}/"
                    f"{target.get('dbname', 'test')}",
                schema=pg_schema, operation_timeout=1.0, connection_timeout=1.0,
                retry_attempts=0))
        memory.api.connect()  # schema migrated while the proxy still passes traffic

        @remember(memory)
        @flow(name="async-pg-blackhole")
        async def agent() -> int:
            return 42

        def timed(hook: Any) -> Any:
            def call(*args: Any) -> Any:
                pending = hook(*args)

                async def measured() -> None:
                    started = time.perf_counter()
                    try:
                        await pending
                    finally:
                        windows.append((started, time.perf_counter()))
                return measured()
            return call

        for hooks in (agent.on_running_hooks, agent.on_completion_hooks):
            hooks[:] = [timed(h) if isinstance(h, FlowCaptureHook) else h for h in hooks]

        async def main() -> int:
            done = asyncio.Event()

            async def ticker() -> None:
                while not done.is_set():
                    started = time.perf_counter()
                    await asyncio.sleep(0.01)
                    ticks.append((started, time.perf_counter() - started - 0.01))

            ticking = asyncio.create_task(ticker())
            try:
                proxy.blackhole()
                return await agent()
            finally:
                done.set()
                await ticking

        try:
            assert asyncio.run(main()) == 42
        finally:
            memory.close()
    # the running-state hook waits for the black-holed write (operation_timeout); the
    # completed-state one goes straight to the outbox (the writer's retry_after)
    assert len(windows) == 2 and windows[0][1] - windows[0][0] >= 0.9, windows
    during = [lag for start, lag in ticks
              if any(w0 <= start <= w1 - 0.06 for w0, w1 in windows)]
    assert len(during) >= 50, "the ticker ran while the hooks waited"
    late = [lag for lag in during if lag > 0.05]
    assert len(late) <= 1, f"the loop stalled during capture: {sorted(during)[-3:]} s"
    assert memory.capture_writer().outbox.pending(), "the history writes wait in the outbox"
