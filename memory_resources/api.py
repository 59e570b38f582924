"""MemoryAPI: the spec's unified interface over context, events, locks, history, outputs,
audit and vectors.

``MemoryAPI()`` runs everything on the embedded default (one SQLite file plus the exact
numpy index). ``redis_config`` moves context, events and locks to Redis; ``postgres_config``
moves run history, task outputs and the audit trail to PostgreSQL; ``vector_config`` picks
the vector backend; ``backends={role: {"backend": name, ...options}}`` gives any role any
registered backend, third-party ones included (:mod:`memory_resources.backends`).
Writes return ``True``; failures raise typed errors, never ``False``.
"""

from __future__ import annotations

import datetime as dt
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .api_batch import BatchCalls
from .api_build import (
    BackendsConfig,
    Composition,
    compose_from_configs,
    compose_from_stores,
)
from .api_inputs import (
    MAX_LIMIT,
    argument_names,
    audit_query,
    flow_run_write,
    history_query,
    lock_options,
    task_output_ids,
)
from .api_lifecycle import StoreConnections
from .api_monitor import HEALTH_TIMEOUT, health, memory_stats
from .api_roles import RoleStores
from .clock import SYSTEM_CLOCK, Clock, utc_iso
from .config import EmbeddedConfig, PostgresConfig, RedisConfig, VectorConfig
from .embedding import as_vector
from .locking import Lock
from .log import get_logger
from .protocols import (
    AuditLog,
    ContextStore,
    EventLog,
    LockManager,
    RunHistory,
    TaskOutputs,
    VectorIndex,
)
from .records import (
    AuditRecord,
    ContextRecord,
    EventRecord,
    FlowRunRecord,
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

if TYPE_CHECKING:
    from .handles import ContextHandle

_log = get_logger(__name__)
_CONTEXT_NAMES = argument_names(data="context_data")
_EVENT_NAMES = argument_names(data="event")
_HISTORY_NAMES = argument_names(record="data")
_INDEX_NAMES = argument_names(vectors="embedding", vector="embedding")
_QUERY_NAMES = argument_names(vector="query_embedding", filter="filter_metadata")


def _optional_limit(value: Any, field: str = "limit") -> int | None:
    return None if value is None else require_positive_int(value, field, maximum=MAX_LIMIT)


class MemoryAPI(RoleStores, BatchCalls):
    """The unified memory interface of the spec (``memory.api.MemoryAPI``).

    Config dicts are validated at construction (``ConfigurationError`` naming the dict and
    key); connections open on :meth:`connect` or lazily on first use, one store at a time,
    so a backend that is down only affects the methods it serves. The batch methods
    (``set_contexts``, ``get_contexts``, ``append_events``, ``write_task_outputs``,
    ``write_flow_run_histories``, ``index_embeddings``) come from
    :class:`~memory_resources.api_batch.BatchCalls`.
    """

    _context: ContextStore
    _events: EventLog
    _locks: LockManager
    _history: RunHistory
    _outputs: TaskOutputs
    _audit: AuditLog
    _vectors: VectorIndex

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
            redis_config, postgres_config, vector_config, embedded_config, clock, backends)
        self._setup(composition, clock)

    @classmethod
    def from_stores(
        cls,
        *,
        context: ContextStore | None = None,
        events: EventLog | None = None,
        locks: LockManager | None = None,
        history: RunHistory | None = None,
        outputs: TaskOutputs | None = None,
        audit: AuditLog | None = None,
        vectors: VectorIndex | None = None,
        embedded_config: dict[str, Any] | EmbeddedConfig | None = None,
        vector_config: dict[str, Any] | VectorConfig | None = None,
        owns_stores: bool = True,
        clock: Clock = SYSTEM_CLOCK,
    ) -> MemoryAPI:
        """Compose given store objects (each implementing its role's Protocol); roles left
        out run on the embedded default. With ``owns_stores=False`` :meth:`disconnect`
        leaves the given stores open (their owner, e.g. a Prefect block, closes them)."""
        given = {"context": context, "events": events, "locks": locks, "history": history,
                 "outputs": outputs, "audit": audit, "vectors": vectors}
        composition = compose_from_stores(
            given, embedded_config=embedded_config, vector_config=vector_config,
            clock=clock, owns_stores=owns_stores,
        )
        api = cls.__new__(cls)
        api._setup(composition, clock)
        return api

    def _setup(self, composition: Composition, clock: Clock) -> None:
        self._set_roles(composition, clock)
        self._connections = StoreConnections(composition)
        self._ensure = self._connections.ensure

    # -- lifecycle -------------------------------------------------------------------------

    def store(self, role: str) -> Any:
        """The connected store serving ``role`` (``context``, ``events``, ``locks``,
        ``history``, ``outputs``, ``audit`` or ``vectors``), for backend-specific calls."""
        return self._ensure(self._role_store(role))

    def connect(self) -> bool:
        """Connect every backend; ``True``, or raise the first backend's typed error."""
        self._connections.connect_all()
        _log.debug("memory api connected", backends=self.backends)
        return True

    def disconnect(self) -> None:
        """Close the connections of the stores this API owns (all of them, even when one
        close fails; that error is raised afterwards). Idempotent; any later call
        reconnects lazily."""
        self._connections.close_owned()

    def __enter__(self) -> MemoryAPI:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect()

    # -- context and events ----------------------------------------------------------------

    def set_context(self, context_id: str, context_data: JSONDict, ttl: int | None = None
                    ) -> bool:
        """Store ``context_data`` under ``context_id`` for ``ttl`` seconds (None: no expiry)."""
        context_id = require_id(context_id, "context_id")  # set_context_record's body,
        context_data = require_dict(context_data, "context_data")  # inlined: a hot path
        ttl = require_ttl(ttl, "ttl")
        with _CONTEXT_NAMES:
            self._ensure(self._context).set_context(context_id, context_data, ttl)
        return True

    def set_context_record(self, context_id: str, context_data: JSONDict,
                           ttl: int | None = None) -> ContextRecord:
        """:meth:`set_context`, returning the stored envelope (version, timestamps)."""
        context_id = require_id(context_id, "context_id")
        context_data = require_dict(context_data, "context_data")
        ttl = require_ttl(ttl, "ttl")
        with _CONTEXT_NAMES:
            record: ContextRecord = self._ensure(self._context).set_context(
                context_id, context_data, ttl)
        return record

    def get_context(self, context_id: str) -> ContextRecord | None:
        """The envelope ``{"context_id", "data", "created_at", "updated_at", "version",
        "ttl", "expires_at"}``, or None when absent or expired."""
        context_id = require_id(context_id, "context_id")
        record: ContextRecord | None = self._ensure(self._context).get_context(context_id)
        return record

    def clear_context(self, context_id: str) -> bool:
        """Remove the context and its events. ``True`` if anything was removed, ``False`` if
        there was nothing under ``context_id`` (not an error)."""
        context_id = require_id(context_id, "context_id")
        return bool(self._ensure(self._context).clear_context(context_id))

    def append_event(self, context_id: str, event: JSONDict) -> bool:
        """Append ``event`` to the context's stream."""
        context_id = require_id(context_id, "context_id")  # append_event_record's body,
        event = require_dict(event, "event")  # inlined: a hot path
        with _EVENT_NAMES:
            self._ensure(self._events).append_event(context_id, event)
        return True

    def append_event_record(self, context_id: str, event: JSONDict) -> EventRecord:
        """:meth:`append_event`, returning the stored event with its id and timestamp."""
        context_id = require_id(context_id, "context_id")
        event = require_dict(event, "event")
        with _EVENT_NAMES:
            record: EventRecord = self._ensure(self._events).append_event(context_id, event)
        return record

    def get_events(self, context_id: str, since: str | None = None,
                   limit: int | None = None) -> list[EventRecord]:
        """Events in append order, each ``{"id", "context_id", "timestamp", "data"}``;
        ``since`` is an exclusive event-id cursor, ``limit`` caps the count."""
        context_id = require_id(context_id, "context_id")
        since = optional_id(since, "since")
        limit = _optional_limit(limit)
        return list(self._ensure(self._events).get_events(context_id, since=since, limit=limit))

    # -- flow run history, task outputs, audit ---------------------------------------------

    def write_flow_run_history(self, flow_id: str, run_id: str, data: JSONDict) -> bool:
        """Upsert the run's history row; known keys of ``data`` (status, flow_name,
        started_at, ended_at, duration, parameters, tags, error, …) fill its columns and the
        whole dict is kept (merged) in its ``data``."""
        write = flow_run_write(flow_id, run_id, data)
        with _HISTORY_NAMES:
            self._ensure(self._history).write_flow_run(write)
        return True

    def read_flow_run_history(
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
        """History rows newest first; ``flow_id=None`` reads every flow; ``status``,
        ``flow_name`` (exact) and ``since`` (inclusive) / ``until`` (exclusive) — ISO strings
        or datetimes, on the row's creation time — filter them."""
        args, filters = history_query(flow_id, run_id, limit, status, since, until, flow_name)
        return list(self._ensure(self._history).read_flow_runs(*args, **filters))

    def write_task_output(
        self,
        task_id: str,
        output: Any,
        metadata: JSONDict | None = None,
        *,
        task_run_id: str | None = None,
        flow_run_id: str | None = None,
    ) -> bool:
        """Store a new version of the task's output (any value the codec can encode)."""
        self.write_task_output_record(task_id, output, metadata, task_run_id=task_run_id,
                                      flow_run_id=flow_run_id)
        return True

    def write_task_output_record(
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
        record: TaskOutputRecord = self._ensure(self._outputs).write_task_output(
            task_id, output, metadata, **ids)
        return record

    def read_task_output(self, task_id: str) -> TaskOutputRecord | None:
        """The latest version ``{"task_id", "version", "output", "metadata", …}`` or None."""
        task_id = require_id(task_id, "task_id")
        record: TaskOutputRecord | None = self._ensure(self._outputs).read_task_output(task_id)
        return record

    def list_task_outputs(self, task_id: str, limit: int = 100) -> list[TaskOutputRecord]:
        """Every stored version of the task's output, newest first."""
        task_id = require_id(task_id, "task_id")
        limit = require_positive_int(limit, "limit", maximum=MAX_LIMIT)
        return list(self._ensure(self._outputs).list_task_outputs(task_id, limit))

    def read_audit_log(
        self,
        *,
        operation: str | None = None,
        target: str | None = None,
        flow_run_id: str | None = None,
        since: str | dt.datetime | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """Audit rows newest first, filtered by operation, target, acting flow run and time."""
        return list(self._ensure(self._audit).read_audit(
            **audit_query(operation, target, flow_run_id, since, limit)))

    # -- vectors ---------------------------------------------------------------------------

    def index_embedding(self, id: str, embedding: Any, metadata: JSONDict | None = None
                        ) -> bool:
        """Insert or replace the embedding ``id`` (a list of ``dimension`` finite numbers)."""
        id = require_id(id, "id")
        vector = as_vector(embedding, self.vector_dimension, self._vectors.metric,
                           field="embedding")
        metadata = optional_dict(metadata, "metadata")
        with _INDEX_NAMES:
            self._ensure(self._vectors).upsert([id], vector[None, :], [metadata])
        return True

    def query_embeddings(
        self,
        query_embedding: Any,
        top_k: int = 10,
        filter_metadata: JSONDict | None = None,
    ) -> list[VectorMatch]:
        """The ``top_k`` nearest embeddings, best first, as ``{"id", "score", "metadata"}``.
        ``filter_metadata`` keeps only embeddings whose metadata matches (equality, or
        ``{"$in": [...]}``, ``$ne``, ``$gt`` …)."""
        vector = as_vector(query_embedding, self.vector_dimension, self._vectors.metric,
                           field="query_embedding")
        top_k = require_positive_int(top_k, "top_k", maximum=MAX_LIMIT)
        flt = None if filter_metadata is None else require_dict(filter_metadata,
                                                                "filter_metadata")
        with _QUERY_NAMES:
            return list(self._ensure(self._vectors).query(vector, top_k=top_k, filter=flt))

    def delete_embedding(self, id: str) -> bool:
        """Remove the embedding ``id``: ``True`` if it existed, ``False`` if not (no error)."""
        id = require_id(id, "id")
        return bool(self._ensure(self._vectors).delete([id]))

    # -- locks -----------------------------------------------------------------------------

    def acquire_lock(self, lock_name: str, timeout: float = 10,
                     blocking_timeout: float | None = 5) -> Lock:
        """A lock to use as ``with memory_api.acquire_lock(name) as lock:``; the lease lasts
        ``timeout`` s, acquiring waits up to ``blocking_timeout`` s, then raises
        :class:`~memory_resources.errors.LockNotAcquiredError`. ``lock.fencing_token``
        strictly increases per lock name."""
        return self.lock(lock_name, timeout=timeout, blocking_timeout=blocking_timeout)

    def lock(self, name: str, *, timeout: float = 10, blocking_timeout: float | None = 5,
             auto_extend: bool = False) -> Lock:
        """A :class:`~memory_resources.locking.Lock` on ``name`` (not acquired yet); with
        ``auto_extend`` a watchdog keeps the lease alive while it is held."""
        return Lock(self._ensure(self._locks), clock=self._clock,
                    **lock_options(name, timeout, blocking_timeout, auto_extend))

    def context(self, session_id: str, *, ttl: int | None = None) -> ContextHandle:
        """A handle bound to one context id (``get``, ``set``, ``update``,
        ``append_event``, ``events``, ``clear``); ``ttl`` applies to its writes."""
        from .handles import ContextHandle

        return ContextHandle(self, session_id, ttl=ttl)

    # -- monitoring ------------------------------------------------------------------------

    def health_check(self, timeout: float = HEALTH_TIMEOUT) -> JSONDict:
        """``{"overall_status": "healthy"|"degraded"|"unhealthy", "adapters": {"redis": …,
        "postgres": …, "vector": …}, "timestamp": …}``; never raises for a backend fault.

        Every backend is probed at the same time; one that has not answered within
        ``timeout`` seconds (default 3) is reported ``unhealthy`` with the reason, so the
        call returns within ``timeout`` whatever the servers do."""
        limit = require_positive_seconds(timeout, "timeout")
        return health(self._roles, self._ensure, utc_iso(self._clock.time()), limit)

    def get_memory_stats(self) -> JSONDict:
        """``{"adapters": {"redis": {"used_memory": …}, "postgres": {"active_connections":
        …}, "vector": {"total_embeddings": …}}, "timestamp": …}``."""
        return memory_stats(self._roles, self._ensure, utc_iso(self._clock.time()))


__all__ = ["MemoryAPI"]
