"""AsyncMemoryAPI: :class:`~memory_resources.api.MemoryAPI` for coroutines.

Every MemoryAPI method with the same name, arguments, return shapes and typed errors,
awaitable; ``async with``; context handles and locks (``async with
api.acquire_lock(name)``, auto-extension as an asyncio task). Arguments are checked by the
same functions as the sync API's (:mod:`memory_resources.api_inputs`, validation, codec)
and the stores are the same code on an async transport (:mod:`memory_resources.api_async_build`):
``redis.asyncio`` for Redis, asyncpg for PostgreSQL, worker threads for SQLite, the numpy
index and pgvector. No call blocks the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from types import TracebackType
from typing import Any

from .api import (
    _CONTEXT_NAMES,
    _EVENT_NAMES,
    _HISTORY_NAMES,
    _INDEX_NAMES,
    _QUERY_NAMES,
    _optional_limit,
)
from .api_async_batch import AsyncBatchCalls
from .api_async_build import AsyncStoreConnections, async_composition
from .api_build import (
    BackendsConfig,
    Composition,
    compose_from_configs,
    compose_from_stores,
    distinct_stores,
)
from .api_inputs import (
    MAX_LIMIT,
    audit_query,
    flow_run_write,
    history_query,
    lock_options,
    task_output_ids,
)
from .api_monitor import (
    HEALTH_TIMEOUT,
    backend_name,
    failed_report,
    finish_report,
    health_of,
    stats_of,
    stats_stores,
    timed_out_report,
)
from .api_roles import RoleStores
from .clock import SYSTEM_CLOCK, Clock, utc_iso
from .config import EmbeddedConfig, PostgresConfig, RedisConfig, VectorConfig
from .embedding import as_vector
from .handles_async import AsyncContextHandle
from .locking_async import AsyncLock
from .records import (
    AuditRecord,
    ContextRecord,
    EventRecord,
    FlowRunRecord,
    HealthReport,
    JSONDict,
    TaskOutputRecord,
    VectorMatch,
)
from .validation import (
    optional_dict,
    optional_id,
    require_dict,
    require_id,
    require_positive_int,
    require_positive_seconds,
    require_ttl,
)


class AsyncMemoryAPI(RoleStores, AsyncBatchCalls):
    """The unified memory interface for async code.

    ``AsyncMemoryAPI(redis_config=..., postgres_config=..., vector_config=...)`` takes the
    same configs as :class:`~memory_resources.api.MemoryAPI` (validated at construction);
    connections open on :meth:`connect` (or ``async with``) or lazily on first use.
    """

    def __init__(
        self,
        redis_config: dict[str, Any] | RedisConfig | None = None,
        postgres_config: dict[str, Any] | PostgresConfig | None = None,
        vector_config: dict[str, Any] | VectorConfig | None = None,
        *,
        embedded_config: dict[str, Any] | EmbeddedConfig | None = None,
        backends: BackendsConfig | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        composition = compose_from_configs(
            redis_config, postgres_config, vector_config, embedded_config, clock, backends,
            asynchronous=True)
        self._setup(async_composition(composition, clock), clock)

    @classmethod
    def from_stores(
        cls,
        *,
        context: object | None = None,
        events: object | None = None,
        locks: object | None = None,
        history: object | None = None,
        outputs: object | None = None,
        audit: object | None = None,
        vectors: object | None = None,
        embedded_config: dict[str, Any] | EmbeddedConfig | None = None,
        vector_config: dict[str, Any] | VectorConfig | None = None,
        owns_stores: bool = True,
        clock: Clock = SYSTEM_CLOCK,
    ) -> AsyncMemoryAPI:
        """As :meth:`MemoryAPI.from_stores`; sync stores are given their async transport
        (async stores are used as they are)."""
        given = {"context": context, "events": events, "locks": locks, "history": history,
                 "outputs": outputs, "audit": audit, "vectors": vectors}
        composition = compose_from_stores(
            given, embedded_config=embedded_config, vector_config=vector_config,
            clock=clock, owns_stores=owns_stores)
        api = cls.__new__(cls)
        api._setup(async_composition(composition, clock), clock)
        return api

    @classmethod
    def over(cls, api: Any) -> AsyncMemoryAPI:
        """The async twin of a sync :class:`~memory_resources.api.MemoryAPI` for the running
        event loop: SQLite and vector stores are the sync API's own (on worker threads),
        Redis and PostgreSQL get async pools of their own, closed by :meth:`disconnect`."""
        composition = Composition(roles=dict(api._roles), owned=[])
        twin = cls.__new__(cls)
        twin._setup(async_composition(composition, api._clock, shared=True), api._clock)
        return twin

    def _setup(self, composition: Composition, clock: Clock) -> None:
        self._set_roles(composition, clock)
        self._connections = AsyncStoreConnections(composition)
        self._ensure = self._connections.ensure

    # -- lifecycle -------------------------------------------------------------------------

    async def store(self, role: str) -> Any:
        """The connected async store serving ``role``."""
        return await self._ensure(self._role_store(role))

    async def connect(self) -> bool:
        """Connect every backend; ``True``, or raise the first backend's typed error."""
        await self._connections.connect_all()
        return True

    async def disconnect(self) -> None:
        """Close the stores this API owns. Idempotent; later calls reconnect lazily."""
        await self._connections.close_owned()

    async def __aenter__(self) -> AsyncMemoryAPI:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.disconnect()

    # -- context and events ----------------------------------------------------------------

    async def set_context(self, context_id: str, context_data: JSONDict,
                          ttl: int | None = None) -> bool:
        """Store ``context_data`` under ``context_id`` for ``ttl`` seconds (None: no expiry)."""
        await self.set_context_record(context_id, context_data, ttl)
        return True

    async def set_context_record(self, context_id: str, context_data: JSONDict,
                                 ttl: int | None = None) -> ContextRecord:
        """:meth:`set_context`, returning the stored envelope (version, timestamps)."""
        context_id = require_id(context_id, "context_id")
        context_data = require_dict(context_data, "context_data")
        ttl = require_ttl(ttl, "ttl")
        store = await self._ensure(self._context)
        with _CONTEXT_NAMES:
            record: ContextRecord = await store.set_context(context_id, context_data, ttl)
        return record

    async def get_context(self, context_id: str) -> ContextRecord | None:
        """The envelope ``{"context_id", "data", "created_at", ...}``, or None."""
        context_id = require_id(context_id, "context_id")
        store = await self._ensure(self._context)
        record: ContextRecord | None = await store.get_context(context_id)
        return record

    async def clear_context(self, context_id: str) -> bool:
        """Remove the context and its events; False when there was nothing."""
        context_id = require_id(context_id, "context_id")
        store = await self._ensure(self._context)
        return bool(await store.clear_context(context_id))

    async def append_event(self, context_id: str, event: JSONDict) -> bool:
        """Append ``event`` to the context's stream."""
        await self.append_event_record(context_id, event)
        return True

    async def append_event_record(self, context_id: str, event: JSONDict) -> EventRecord:
        """:meth:`append_event`, returning the stored event with its id and timestamp."""
        context_id = require_id(context_id, "context_id")
        event = require_dict(event, "event")
        store = await self._ensure(self._events)
        with _EVENT_NAMES:
            record: EventRecord = await store.append_event(context_id, event)
        return record

    async def get_events(self, context_id: str, since: str | None = None,
                         limit: int | None = None) -> list[EventRecord]:
        """Events in append order; ``since`` is an exclusive event-id cursor."""
        context_id = require_id(context_id, "context_id")
        since = optional_id(since, "since")
        limit = _optional_limit(limit)
        store = await self._ensure(self._events)
        return list(await store.get_events(context_id, since=since, limit=limit))

    # -- flow run history, task outputs, audit ---------------------------------------------

    async def write_flow_run_history(self, flow_id: str, run_id: str, data: JSONDict
                                     ) -> bool:
        """Upsert the run's history row (see :meth:`MemoryAPI.write_flow_run_history`)."""
        write = flow_run_write(flow_id, run_id, data)
        store = await self._ensure(self._history)
        with _HISTORY_NAMES:
            await store.write_flow_run(write)
        return True

    async def read_flow_run_history(
        self,
        flow_id: str | None,
        run_id: str | None = None,
        limit: int = 100,
        *,
        status: str | None = None,
        since: str | dt.datetime | None = None,
        until: str | dt.datetime | None = None,
        flow_name: str | None = None,
    ) -> list[FlowRunRecord]:
        """History rows newest first (filters as :meth:`MemoryAPI.read_flow_run_history`)."""
        args, filters = history_query(flow_id, run_id, limit, status, since, until, flow_name)
        store = await self._ensure(self._history)
        return list(await store.read_flow_runs(*args, **filters))

    async def write_task_output(
        self,
        task_id: str,
        output: Any,
        metadata: JSONDict | None = None,
        *,
        task_run_id: str | None = None,
        flow_run_id: str | None = None,
    ) -> bool:
        """Store a new version of the task's output."""
        await self.write_task_output_record(task_id, output, metadata,
                                            task_run_id=task_run_id, flow_run_id=flow_run_id)
        return True

    async def write_task_output_record(
        self,
        task_id: str,
        output: Any,
        metadata: JSONDict | None = None,
        *,
        task_run_id: str | None = None,
        flow_run_id: str | None = None,
    ) -> TaskOutputRecord:
        """:meth:`write_task_output`, returning the stored version."""
        task_id, metadata, ids = task_output_ids(task_id, metadata, task_run_id, flow_run_id)
        store = await self._ensure(self._outputs)
        record: TaskOutputRecord = await store.write_task_output(task_id, output, metadata,
                                                                 **ids)
        return record

    async def read_task_output(self, task_id: str) -> TaskOutputRecord | None:
        """The latest version, or None."""
        task_id = require_id(task_id, "task_id")
        store = await self._ensure(self._outputs)
        record: TaskOutputRecord | None = await store.read_task_output(task_id)
        return record

    async def list_task_outputs(self, task_id: str, limit: int = 100
                                ) -> list[TaskOutputRecord]:
        """Every stored version of the task's output, newest first."""
        task_id = require_id(task_id, "task_id")
        limit = require_positive_int(limit, "limit", maximum=MAX_LIMIT)
        store = await self._ensure(self._outputs)
        return list(await store.list_task_outputs(task_id, limit))

    async def read_audit_log(
        self,
        *,
        operation: str | None = None,
        target: str | None = None,
        flow_run_id: str | None = None,
        since: str | dt.datetime | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """Audit rows newest first, filtered by operation, target, acting run and time."""
        query = audit_query(operation, target, flow_run_id, since, limit)
        store = await self._ensure(self._audit)
        return list(await store.read_audit(**query))

    # -- vectors ---------------------------------------------------------------------------

    async def index_embedding(self, id: str, embedding: Any,
                              metadata: JSONDict | None = None) -> bool:
        """Insert or replace the embedding ``id``."""
        id = require_id(id, "id")
        vector = as_vector(embedding, self.vector_dimension, self._vectors.metric,
                           field="embedding")
        metadata = optional_dict(metadata, "metadata")
        store = await self._ensure(self._vectors)
        with _INDEX_NAMES:
            await store.upsert([id], vector[None, :], [metadata])
        return True

    async def query_embeddings(self, query_embedding: Any, top_k: int = 10,
                               filter_metadata: JSONDict | None = None) -> list[VectorMatch]:
        """The ``top_k`` nearest embeddings, best first, as ``{"id", "score", "metadata"}``."""
        vector = as_vector(query_embedding, self.vector_dimension, self._vectors.metric,
                           field="query_embedding")
        top_k = require_positive_int(top_k, "top_k", maximum=MAX_LIMIT)
        flt = None if filter_metadata is None else require_dict(filter_metadata,
                                                                "filter_metadata")
        store = await self._ensure(self._vectors)
        with _QUERY_NAMES:
            return list(await store.query(vector, top_k=top_k, filter=flt))

    async def delete_embedding(self, id: str) -> bool:
        """Remove the embedding ``id``: True if it existed."""
        id = require_id(id, "id")
        store = await self._ensure(self._vectors)
        return bool(await store.delete([id]))

    # -- locks -----------------------------------------------------------------------------

    def acquire_lock(self, lock_name: str, timeout: float = 10,
                     blocking_timeout: float | None = 5) -> AsyncLock:
        """A lock to use as ``async with api.acquire_lock(name) as lock:`` (see
        :meth:`MemoryAPI.acquire_lock`)."""
        return self.lock(lock_name, timeout=timeout, blocking_timeout=blocking_timeout)

    def lock(self, name: str, *, timeout: float = 10, blocking_timeout: float | None = 5,
             auto_extend: bool = False) -> AsyncLock:
        """An :class:`~memory_resources.locking_async.AsyncLock` on ``name`` (not acquired
        yet); with ``auto_extend`` a task keeps the lease alive while it is held."""
        return AsyncLock(_Connecting(self, self._locks), clock=self._clock,
                         **lock_options(name, timeout, blocking_timeout, auto_extend))

    def context(self, session_id: str, *, ttl: int | None = None) -> AsyncContextHandle:
        """A handle bound to one context id (awaitable ``get``, ``set``, ``update``,
        ``append_event``, ``events``, ``clear``)."""
        return AsyncContextHandle(self, session_id, ttl=ttl)

    # -- monitoring ------------------------------------------------------------------------

    async def _health(self, store: Any) -> HealthReport:
        started = time.perf_counter()
        try:
            await self._ensure(store)
            check = getattr(store, "health_check", None)
            if check is None:
                report: HealthReport = {"status": "healthy"}
            else:
                report = dict(await check())  # type: ignore[assignment]
        except Exception as exc:
            report = failed_report(exc)
        return finish_report(report, store, started)

    async def _health_within(self, store: Any, timeout: float) -> HealthReport:
        try:
            return await asyncio.wait_for(self._health(store), timeout)
        except asyncio.TimeoutError:
            return timed_out_report(store, timeout)

    async def health_check(self, timeout: float = HEALTH_TIMEOUT) -> JSONDict:
        """As :meth:`MemoryAPI.health_check`: every store checked concurrently, a store
        without an answer within ``timeout`` seconds (default 3) reported unhealthy."""
        limit = require_positive_seconds(timeout, "timeout")
        stores = distinct_stores(self._roles)
        reports = await asyncio.gather(*(self._health_within(store, limit)
                                         for store in stores))
        return health_of(self._roles, {id(s): r for s, r in zip(stores, reports, strict=True)},
                         utc_iso(self._clock.time()))

    async def _stats(self, store: Any) -> JSONDict:
        try:
            await self._ensure(store)
            getter = getattr(store, "stats", None)
            stats = dict(await getter()) if getter is not None else {}
            if store is self._vectors and "total_embeddings" not in stats:
                stats["total_embeddings"] = int(await store.count())
            return stats
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}

    async def get_memory_stats(self) -> JSONDict:
        """As :meth:`MemoryAPI.get_memory_stats`."""
        stores = stats_stores(self._roles)
        found = await asyncio.gather(*(self._stats(store) for store in stores))
        return stats_of(self._roles, {id(s): r for s, r in zip(stores, found, strict=True)},
                        utc_iso(self._clock.time()))


class _Connecting:
    """The lock store of an API, connected on first use (what ``_ensure`` does for the
    other roles)."""

    def __init__(self, api: AsyncMemoryAPI, store: Any) -> None:
        self._api = api
        self._store = store
        self.backend_name = backend_name(store)

    async def try_acquire(self, name: str, owner: str, ttl_ms: int) -> int | None:
        store = await self._api._ensure(self._store)
        token: int | None = await store.try_acquire(name, owner, ttl_ms)
        return token

    async def release(self, name: str, owner: str) -> bool:
        store = await self._api._ensure(self._store)
        return bool(await store.release(name, owner))

    async def extend(self, name: str, owner: str, ttl_ms: int) -> bool:
        store = await self._api._ensure(self._store)
        return bool(await store.extend(name, owner, ttl_ms))


__all__ = ["AsyncMemoryAPI"]
