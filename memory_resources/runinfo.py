"""Which flow run / task run is acting now, without importing Prefect.

The Prefect integration (or any caller) sets the ids with :func:`acting_as`; when it has
not, and Prefect is already imported in this process, the ids are read from Prefect's run
context. Stores call :func:`current_run_ids` to attribute audit rows; logging binds them.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Iterator
from typing import NamedTuple


class RunIds(NamedTuple):
    """The acting flow run and task run ids (either may be None)."""

    flow_run_id: str | None
    task_run_id: str | None


_ACTING: contextvars.ContextVar[RunIds | None] = contextvars.ContextVar(
    "memory_resources_acting", default=None
)


@contextlib.contextmanager
def acting_as(flow_run_id: str | None, task_run_id: str | None = None) -> Iterator[RunIds]:
    """Attribute writes inside the block to these run ids."""
    ids = RunIds(flow_run_id, task_run_id)
    token = _ACTING.set(ids)
    try:
        yield ids
    finally:
        _ACTING.reset(token)


def _from_prefect() -> RunIds:
    if "prefect" not in sys.modules:
        return RunIds(None, None)
    try:
        from prefect.context import FlowRunContext, TaskRunContext

        task_ctx = TaskRunContext.get()
        flow_ctx = FlowRunContext.get()
        task_run = getattr(task_ctx, "task_run", None) if task_ctx else None
        flow_run = getattr(flow_ctx, "flow_run", None) if flow_ctx else None
        flow_run_id = str(flow_run.id) if flow_run is not None else None
        if flow_run_id is None and task_run is not None and task_run.flow_run_id is not None:
            flow_run_id = str(task_run.flow_run_id)
        return RunIds(flow_run_id, str(task_run.id) if task_run is not None else None)
    except Exception:  # Prefect internals must never break a write
        return RunIds(None, None)


def current_run_ids() -> RunIds:
    """The ids set by :func:`acting_as`, else Prefect's current run, else ``(None, None)``."""
    explicit = _ACTING.get()
    if explicit is not None:
        return explicit
    return _from_prefect()
