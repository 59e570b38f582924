"""Shapes of the records the stores return and accept.

Returned records are plain dicts (``TypedDict``) so they print, compare and serialise
naturally; timestamps are ISO-8601 strings in UTC (``2026-01-31T12:00:00.000000+00:00``),
identical across backends.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, TypedDict

JSONDict = dict[str, Any]
Metric = Literal["cosine", "euclidean", "dotproduct"]
FlowRunStatus = Literal[
    "scheduled", "pending", "running", "completed", "failed", "crashed", "cancelled", "cancelling",
    "paused", "unknown",
]


class ContextRecord(TypedDict):
    """A stored context: ``get_context(id)["data"]`` is what was set."""

    context_id: str
    data: JSONDict
    created_at: str
    updated_at: str
    version: int
    """1 on first set, +1 on every later set of the same context."""
    ttl: int | None
    """Seconds to live given on the last set, or None for no expiry."""
    expires_at: str | None


class EventRecord(TypedDict):
    """One event of a context's append-only stream."""

    id: str
    """Backend-assigned id, increasing in append order within a context (a cursor for ``since``)."""
    context_id: str
    timestamp: str
    data: JSONDict


@dataclasses.dataclass(frozen=True)
class FlowRunWrite:
    """One write of a flow run's history row (an upsert keyed by ``(flow_id, run_id)``).

    Fields left ``None`` keep the value already stored; ``data`` is merged key by key into
    the stored ``data``; ``created_at`` is set on insert only (it is the partition key).
    """

    flow_id: str
    run_id: str
    data: JSONDict = dataclasses.field(default_factory=dict)
    flow_name: str | None = None
    status: str | None = None
    state_name: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    duration: float | None = None
    parameters: JSONDict | None = None
    tags: list[str] | None = None
    error_type: str | None = None
    error_message: str | None = None
    deployment_id: str | None = None
    parent_run_id: str | None = None
    run_count: int | None = None
    created_at: str | None = None


@dataclasses.dataclass(frozen=True)
class TaskOutputWrite:
    """One item of a batch of task-output writes (the arguments of ``write_task_output``)."""

    task_id: str
    output: Any
    metadata: JSONDict | None = None
    task_run_id: str | None = None
    flow_run_id: str | None = None


class FlowRunRecord(TypedDict):
    """A flow run's history row, as read back."""

    flow_id: str
    run_id: str
    flow_name: str | None
    status: str | None
    state_name: str | None
    started_at: str | None
    ended_at: str | None
    duration: float | None
    parameters: JSONDict | None
    tags: list[str]
    error_type: str | None
    error_message: str | None
    deployment_id: str | None
    parent_run_id: str | None
    run_count: int | None
    data: JSONDict
    created_at: str
    updated_at: str


class TaskOutputRecord(TypedDict):
    """One version of a task's output; ``read_task_output`` returns the latest."""

    task_id: str
    version: int
    """1 for the first output of ``task_id``, +1 for each later one."""
    output: Any
    metadata: JSONDict
    task_run_id: str | None
    flow_run_id: str | None
    created_at: str


class AuditRecord(TypedDict):
    """One row of the audit trail, written in the same transaction as the write it records."""

    id: int
    occurred_at: str
    operation: str
    """e.g. ``context.set``, ``event.append``, ``history.write``, ``output.write``."""
    target: str
    flow_run_id: str | None
    task_run_id: str | None
    details: JSONDict


class VectorMatch(TypedDict):
    """One query result. ``score`` is cosine similarity (higher is closer), euclidean
    distance (lower is closer) or the dot product (higher is closer), by metric."""

    id: str
    score: float
    metadata: JSONDict


class HealthReport(TypedDict, total=False):
    """What ``health_check()`` returns per adapter."""

    status: Literal["healthy", "degraded", "unhealthy"]
    backend: str
    latency_ms: float
    error: str
    details: JSONDict
