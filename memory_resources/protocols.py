"""One ``typing.Protocol`` per capability. The engines in ``stores/`` implement them.

Conventions every implementation follows (the contract kit, :mod:`memory_resources.testing`,
checks them; docs/extending.md):

* Methods validate their input with :mod:`memory_resources.validation` before any I/O and
  raise :class:`~memory_resources.errors.MemoryValidationError` naming the argument; on
  bad input nothing is written.
* Values are encoded with :mod:`memory_resources.codec` (``max_payload_bytes`` enforced).
* Backend failures raise :class:`~memory_resources.errors.BackendError` subclasses (after
  retries for transient faults); a write never reports failure by returning ``False``.
* Every SQL backend writes an audit row in the same transaction as the write, with the
  acting run ids from :func:`memory_resources.runinfo.current_run_ids`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from .clock import Clock
from .records import (
    AuditRecord,
    ContextRecord,
    EventRecord,
    FlowRunRecord,
    FlowRunWrite,
    HealthReport,
    JSONDict,
    Metric,
    TaskOutputRecord,
    TaskOutputWrite,
    VectorMatch,
)

VectorFilter = Mapping[str, Any]
"""Metadata filter: ``{"key": value}`` (equality) or ``{"key": {"$op": operand}}`` with
``$eq $ne $in $nin $gt $gte $lt $lte``; several keys are combined with AND."""

StepReport = Callable[[str, int, int], None]
"""Progress of a long maintenance call: ``(label, n, N)`` before step n of N starts."""


@runtime_checkable
class Lifecycle(Protocol):
    """Connection lifecycle and monitoring, shared by every store."""

    backend_name: str
    """Short name of the engine: ``sqlite``, ``redis``, ``postgres``, ``numpy``, ``pgvector``."""

    def connect(self) -> None:
        """Open connections / pools and check the backend answers. Idempotent."""
        ...

    def close(self) -> None:
        """Release connections. Idempotent; the store may be connected again."""
        ...

    def health_check(self) -> HealthReport:
        """Round-trip to the backend; never raises for a backend fault (reports it instead)."""
        ...

    def stats(self) -> JSONDict:
        """Backend statistics (sizes, counts, connections)."""
        ...


@runtime_checkable
class AsyncTransport(Protocol):
    """A sync store that has a native async twin (Redis: ``redis.asyncio``, PostgreSQL:
    asyncpg); the async API uses it instead of running the store on worker threads."""

    def async_transport(self, clock: Clock) -> object:
        """A new async store over the same backend and configuration (coroutine methods,
        pools of its own)."""
        ...


@runtime_checkable
class ContextStore(Protocol):
    """Agent context as key-value with optional TTL."""

    def set_context(
        self, context_id: str, data: JSONDict, ttl: int | None = None
    ) -> ContextRecord:
        """Store ``data`` under ``context_id``; ``ttl`` seconds (> 0) or None for no expiry.

        Replaces earlier data and bumps ``version``. Setting with a TTL also makes the
        context's events expire with it; setting without one removes an earlier expiry.
        """
        ...

    def get_context(self, context_id: str) -> ContextRecord | None:
        """The stored context, or None when absent or expired (expired is invisible at once)."""
        ...

    def clear_context(self, context_id: str) -> bool:
        """Remove the context and its events atomically. True if anything was removed."""
        ...

    def set_contexts(
        self, items: Mapping[str, JSONDict] | Iterable[tuple[str, JSONDict]],
        ttl: int | None = None,
    ) -> list[ContextRecord]:
        """:meth:`set_context` for many contexts (``{id: data}`` or ``(id, data)`` pairs),
        in order; every item validated before anything is written (errors name
        ``items[i]``). Atomic as a whole where the backend allows (see its docs)."""
        ...

    def get_contexts(self, context_ids: Sequence[str]) -> list[ContextRecord | None]:
        """:meth:`get_context` for many ids, in order (None for absent or expired)."""
        ...


@runtime_checkable
class EventLog(Protocol):
    """Append-only event streams, one per context."""

    def append_event(self, context_id: str, event: JSONDict) -> EventRecord:
        """Append ``event``; returns it with its id and timestamp."""
        ...

    def get_events(
        self, context_id: str, since: str | None = None, limit: int | None = None
    ) -> list[EventRecord]:
        """Events in append order; ``since`` is an exclusive event id cursor."""
        ...

    def append_events(self, context_id: str, events: Sequence[JSONDict]) -> list[EventRecord]:
        """Append ``events`` in order, all or none (every event validated first; errors
        name ``events[i]``); returns them with their ids and timestamps."""
        ...


@runtime_checkable
class LockManager(Protocol):
    """Backend primitives of a lease lock; :class:`memory_resources.locking.Lock` builds on them.

    A lease is held by ``owner`` (a random token) until released or ``ttl_ms`` elapses.
    """

    backend_name: str

    def try_acquire(self, name: str, owner: str, ttl_ms: int) -> int | None:
        """Take the lease if free (or expired); return a fencing token that strictly
        increases per lock name, or None if another owner holds it."""
        ...

    def release(self, name: str, owner: str) -> bool:
        """Release the lease if ``owner`` still holds it. True if it did."""
        ...

    def extend(self, name: str, owner: str, ttl_ms: int) -> bool:
        """Reset the lease to ``ttl_ms`` from now if ``owner`` still holds it."""
        ...


@runtime_checkable
class LockInspector(Protocol):
    """Read-only view of leases, for callers that must wait on another holder's lock
    (Prefect's lock-manager protocol asks "is this key locked?")."""

    def is_held(self, name: str) -> bool:
        """True while some owner holds an unexpired lease on ``name``."""
        ...


@runtime_checkable
class ResultBlobs(Protocol):
    """Bytes by path: what Prefect result storage (``read_path`` / ``write_path``) needs."""

    def read_blob(self, path: str) -> bytes | None:
        """The bytes stored at ``path``, or None."""
        ...

    def write_blob(self, path: str, content: bytes) -> None:
        """Store ``content`` at ``path``, replacing what was there."""
        ...

    def delete_blob(self, path: str) -> bool:
        """Remove ``path``; False if nothing was stored there."""
        ...


@runtime_checkable
class RunHistory(Protocol):
    """Flow-run history rows, upserted by ``(flow_id, run_id)``."""

    def write_flow_run(self, record: FlowRunWrite) -> FlowRunRecord:
        """Insert or update one run's row (see :class:`FlowRunWrite` for merge rules)."""
        ...

    def write_flow_runs(self, records: Sequence[FlowRunWrite]) -> int:
        """Bulk form of :meth:`write_flow_run`, one transaction; returns rows written."""
        ...

    def read_flow_runs(
        self,
        flow_id: str | None,
        run_id: str | None = None,
        limit: int = 100,
        *,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        flow_name: str | None = None,
    ) -> list[FlowRunRecord]:
        """Rows newest first (by ``created_at``); ``flow_id=None`` reads every flow.
        ``since``/``until`` bound ``created_at`` (ISO timestamps, inclusive/exclusive);
        ``flow_name`` keeps rows whose ``flow_name`` column equals it exactly."""
        ...


@runtime_checkable
class TaskOutputs(Protocol):
    """Versioned task outputs: each write adds a version, reads return the latest."""

    def write_task_output(
        self,
        task_id: str,
        output: Any,
        metadata: JSONDict | None = None,
        *,
        task_run_id: str | None = None,
        flow_run_id: str | None = None,
    ) -> TaskOutputRecord:
        """Store a new version of ``task_id``'s output."""
        ...

    def write_task_outputs(self, items: Sequence[TaskOutputWrite]) -> list[TaskOutputRecord]:
        """:meth:`write_task_output` for many items, in order, in one transaction (all
        validated first; errors name ``items[i]``)."""
        ...

    def read_task_output(self, task_id: str) -> TaskOutputRecord | None:
        """The latest version, or None."""
        ...

    def list_task_outputs(self, task_id: str, limit: int = 100) -> list[TaskOutputRecord]:
        """Versions newest first."""
        ...


@runtime_checkable
class AuditLog(Protocol):
    """The audit trail written alongside every write."""

    def read_audit(
        self,
        *,
        operation: str | None = None,
        target: str | None = None,
        flow_run_id: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """Audit rows newest first, filtered by the given fields."""
        ...


@runtime_checkable
class VectorIndex(Protocol):
    """Embeddings of one namespace with metadata, queried by similarity."""

    dimension: int
    metric: Metric
    namespace: str

    def upsert(
        self,
        ids: Sequence[str],
        vectors: npt.ArrayLike,
        metadata: Sequence[JSONDict | None] | None = None,
    ) -> int:
        """Insert or replace vectors by id (all validated first; all or nothing)."""
        ...

    def query(
        self, vector: npt.ArrayLike, top_k: int = 10, filter: VectorFilter | None = None
    ) -> list[VectorMatch]:
        """The ``top_k`` best matches, best first."""
        ...

    def query_batch(
        self, vectors: npt.ArrayLike, top_k: int = 10, filter: VectorFilter | None = None
    ) -> list[list[VectorMatch]]:
        """:meth:`query` for many query vectors at once."""
        ...

    def delete(self, ids: Sequence[str]) -> int:
        """Remove vectors by id; returns how many existed."""
        ...

    def count(self) -> int:
        """Number of vectors in the namespace."""
        ...

    def get(self, id: str) -> tuple[np.ndarray[Any, np.dtype[np.float32]], JSONDict] | None:
        """The stored vector and metadata of ``id``, or None."""
        ...


__all__ = [
    "AsyncTransport",
    "AuditLog",
    "ContextStore",
    "EventLog",
    "Lifecycle",
    "LockManager",
    "RunHistory",
    "TaskOutputs",
    "VectorFilter",
    "VectorIndex",
]
