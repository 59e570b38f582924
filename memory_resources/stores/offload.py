"""Async access to a blocking store through worker threads: the async transport of the
embedded SQLite store, the numpy index and any third-party store without async I/O.

:class:`ThreadOffload` wraps one sync store. Each awaited call runs the store's own method
(same validation, codec, SQL and errors: nothing is re-implemented) on a small thread pool
owned by the wrapper, with the caller's context variables (so audit rows keep the acting
flow/task run ids). The event loop only waits on a future: a store that blocks (a locked
SQLite file, a slow disk, a silent server) blocks a worker thread, never the loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..records import (
    AuditRecord,
    ContextRecord,
    EventRecord,
    FlowRunRecord,
    FlowRunWrite,
    HealthReport,
    JSONDict,
    TaskOutputRecord,
    VectorMatch,
)

T = TypeVar("T")

DEFAULT_WORKERS = 4
"""Worker threads per wrapped store (SQLite keeps one connection per thread)."""


async def within(work: Awaitable[T], seconds: float | None) -> T:
    """Await ``work``, cancelled with :class:`TimeoutError` after ``seconds`` (None: no
    limit). ``asyncio.timeout`` where available: unlike ``wait_for`` it does not wrap
    ``work`` in a task, which is most of the cost of a deadline on a fast call."""
    if seconds is None:
        return await work
    seconds = max(0.001, seconds)
    if _timeout is None:  # Python 3.10
        return await asyncio.wait_for(work, seconds)
    async with _timeout(seconds):
        return await work


_timeout: Any = getattr(asyncio, "timeout", None)


class ThreadOffload:
    """The async form of a sync ``store``: every method is a coroutine that runs the
    store's method on a worker thread. Attributes that are not methods (``backend_name``,
    ``dimension``, ``config`` ...) are the store's own; any other store method is
    reachable the same way (``await offload.purge_expired()``)."""

    def __init__(self, store: Any, *, max_workers: int = DEFAULT_WORKERS) -> None:
        self.store = store
        self.max_workers = max_workers
        self._executor: ThreadPoolExecutor | None = None
        self._guard = threading.Lock()

    @property
    def backend_name(self) -> str:
        return str(getattr(self.store, "backend_name", type(self.store).__name__))

    def _pool(self) -> ThreadPoolExecutor:
        executor = self._executor
        if executor is None:
            with self._guard:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        self.max_workers, thread_name_prefix=f"memory-{self.backend_name}")
                executor = self._executor
        return executor

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on a worker thread, in a copy of the caller's context."""
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool(), call)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        value = getattr(self.store, name)
        if not callable(value):
            return value

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self.run(value, *args, **kwargs)

        call.__name__ = name
        return call

    # -- lifecycle -----------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect the wrapped store (on a worker thread)."""
        connect = getattr(self.store, "connect", None)
        if connect is not None:
            await self.run(connect)

    async def close(self) -> None:
        """Close the wrapped store, then stop the worker threads (restarted on next use)."""
        close = getattr(self.store, "close", None)
        try:
            if close is not None:
                await self.run(close)
        finally:
            with self._guard:
                executor, self._executor = self._executor, None
            if executor is not None:
                executor.shutdown(wait=False)

    async def health_check(self) -> HealthReport:
        result: HealthReport = await self.run(self.store.health_check)
        return result

    async def stats(self) -> JSONDict:
        result: JSONDict = await self.run(self.store.stats)
        return result

    # -- ContextStore / EventLog -----------------------------------------------------------

    async def set_context(self, context_id: str, data: JSONDict, ttl: int | None = None
                          ) -> ContextRecord:
        return await self.run(self.store.set_context, context_id, data, ttl)

    async def get_context(self, context_id: str) -> ContextRecord | None:
        return await self.run(self.store.get_context, context_id)

    async def clear_context(self, context_id: str) -> bool:
        return bool(await self.run(self.store.clear_context, context_id))

    async def append_event(self, context_id: str, event: JSONDict) -> EventRecord:
        return await self.run(self.store.append_event, context_id, event)

    async def get_events(self, context_id: str, since: str | None = None,
                         limit: int | None = None) -> list[EventRecord]:
        return await self.run(self.store.get_events, context_id, since, limit)

    # -- LockManager -----------------------------------------------------------------------

    async def try_acquire(self, name: str, owner: str, ttl_ms: int) -> int | None:
        return await self.run(self.store.try_acquire, name, owner, ttl_ms)

    async def release(self, name: str, owner: str) -> bool:
        return bool(await self.run(self.store.release, name, owner))

    async def extend(self, name: str, owner: str, ttl_ms: int) -> bool:
        return bool(await self.run(self.store.extend, name, owner, ttl_ms))

    # -- RunHistory / TaskOutputs / AuditLog ---------------------------------------------------

    async def write_flow_run(self, record: FlowRunWrite) -> FlowRunRecord:
        return await self.run(self.store.write_flow_run, record)

    async def write_flow_runs(self, records: Sequence[FlowRunWrite]) -> int:
        return int(await self.run(self.store.write_flow_runs, records))

    async def read_flow_runs(self, flow_id: str | None, run_id: str | None = None,
                             limit: int = 100, **filters: Any) -> list[FlowRunRecord]:
        return await self.run(self.store.read_flow_runs, flow_id, run_id, limit, **filters)

    async def write_task_output(self, task_id: str, output: Any,
                                metadata: JSONDict | None = None, **ids: Any
                                ) -> TaskOutputRecord:
        return await self.run(self.store.write_task_output, task_id, output, metadata, **ids)

    async def read_task_output(self, task_id: str) -> TaskOutputRecord | None:
        return await self.run(self.store.read_task_output, task_id)

    async def list_task_outputs(self, task_id: str, limit: int = 100
                                ) -> list[TaskOutputRecord]:
        return await self.run(self.store.list_task_outputs, task_id, limit)

    async def read_audit(self, **filters: Any) -> list[AuditRecord]:
        return await self.run(self.store.read_audit, **filters)

    # -- VectorIndex -----------------------------------------------------------------------

    async def upsert(self, ids: Sequence[str], vectors: Any,
                     metadata: Sequence[JSONDict | None] | None = None) -> int:
        return int(await self.run(self.store.upsert, ids, vectors, metadata))

    async def query(self, vector: Any, top_k: int = 10, filter: Any = None
                    ) -> list[VectorMatch]:
        return await self.run(self.store.query, vector, top_k, filter)

    async def query_batch(self, vectors: Any, top_k: int = 10, filter: Any = None
                          ) -> list[list[VectorMatch]]:
        return await self.run(self.store.query_batch, vectors, top_k, filter)

    async def delete(self, ids: Sequence[str]) -> int:
        return int(await self.run(self.store.delete, ids))

    async def count(self) -> int:
        return int(await self.run(self.store.count))

    async def get(self, id: str) -> Any:
        return await self.run(self.store.get, id)

    def __repr__(self) -> str:
        return f"ThreadOffload({self.store!r})"


__all__ = ["DEFAULT_WORKERS", "ThreadOffload", "within"]
