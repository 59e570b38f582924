"""Build the history row of a flow run entering a state (Prefect objects in, FlowRunWrite out).

Prefect's ``flow_run`` object passed to hooks lags one attempt in ``run_count`` while the
run enters Running, and its run context is not set up yet for a top-level run; this module
deals with both and with subflow parent lookup (one API read per subflow run, cached).
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import threading
import typing
from collections.abc import Callable
from typing import Any, Protocol

from ..capture.masking import capture_parameters, safe_value
from ..clock import utc_iso
from ..log import get_logger
from ..records import FlowRunWrite

_log = get_logger(__name__)

_STATUS = {
    "RUNNING": "running",
    "COMPLETED": "completed",
    "FAILED": "failed",
    "CRASHED": "crashed",
    "CANCELLING": "cancelled",
    "CANCELLED": "cancelled",
}


class CaptureLimits(Protocol):
    """The size limits a record is built with."""

    max_param_bytes: int | None


_STARTED: dict[str, str] = {}
_PARENTS: dict[str, str | None] = {}  # parent task run -> its flow run, oldest first
PARENTS_CACHED = 4096  # a long-lived worker keeps at most this many
_LOCK = threading.Lock()


def iso(value: dt.datetime | None) -> str | None:
    """A datetime as the stores' ISO-8601 UTC text (naive means UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return utc_iso(value.timestamp())


@functools.lru_cache(maxsize=256)
def annotations_of(fn: Callable[..., Any]) -> dict[str, Any]:
    """The resolved type hints of a flow function's parameters (cached)."""
    try:
        return typing.get_type_hints(fn)
    except Exception:  # unresolved forward refs: fall back to raw annotations
        try:
            return {name: p.annotation for name, p in inspect.signature(fn).parameters.items()}
        except (TypeError, ValueError):
            return {}


def _defaults_of(fn: Any) -> dict[str, Any]:
    """The flow function's parameter defaults (what a run given no value for them uses)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return {}
    return {name: p.default for name, p in signature.parameters.items()
            if p.default is not inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def run_parameters(flow: Any, flow_run: Any) -> tuple[dict[str, Any], bool]:
    """The run's effective parameters — the flow's defaults overlaid with what the run was
    given — as Python objects when the run context has them (``True``), else as Prefect
    stored them (``False``: blocks given as instances are masked there). A deployment run
    started with no parameters thus records the defaults it ran with, not ``{}``."""
    given: dict[str, Any] | None = None
    from_context = False
    try:
        from prefect.context import FlowRunContext

        ctx = FlowRunContext.get()
        if (ctx is not None and ctx.flow_run is not None and ctx.flow_run.id == flow_run.id
                and ctx.parameters is not None):
            given, from_context = dict(ctx.parameters), True
    except Exception:  # context lookup is best effort
        pass
    if given is None:
        given = dict(flow_run.parameters or {})
    return {**_defaults_of(getattr(flow, "fn", None)), **given}, from_context


def _parent_flow_run_id(flow_run: Any) -> str | None:
    """The parent flow run of a subflow run (one API read per subflow, cached)."""
    parent_task_run_id = getattr(flow_run, "parent_task_run_id", None)
    if parent_task_run_id is None:
        return None
    key = str(parent_task_run_id)
    if key in _PARENTS:
        return _PARENTS[key]
    parent: str | None = None
    try:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            task_run = client.read_task_run(parent_task_run_id)
        parent = str(task_run.flow_run_id) if task_run.flow_run_id else None
    except Exception as exc:  # kept in data as the parent task run id anyway
        _log.warning("cannot resolve parent flow run", parent_task_run_id=key,
                     error=f"{type(exc).__name__}: {exc}")
    with _LOCK:
        if len(_PARENTS) >= PARENTS_CACHED:
            del _PARENTS[next(iter(_PARENTS))]
        _PARENTS[key] = parent
    return parent


TIMELINE_LIMIT = 200
"""Most states kept in a run's timeline (the newest are kept; a flow retried forever)."""


def _state_entry(state: Any) -> dict[str, Any]:
    return {"name": state.name, "type": getattr(state.type, "value", str(state.type)),
            "timestamp": iso(state.timestamp)}


def state_timeline(flow_run: Any, state: Any) -> list[dict[str, Any]] | None:
    """Every state of the run so far, oldest first, as ``{name, type, timestamp}``: read
    from the Prefect API (Scheduled and Pending happen before any hook runs), with
    ``state`` appended when the API does not list it yet. None when the API cannot be
    read (the row keeps the timeline of its previous write)."""
    try:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            states = client.read_flow_run_states(flow_run.id)
    except Exception as exc:  # the row is still worth writing
        _log.warning("cannot read the run's states for its timeline",
                     flow_run_id=str(flow_run.id), error=f"{type(exc).__name__}: {exc}")
        return None
    states = sorted(states, key=lambda s: s.timestamp)
    if state is not None and all(s.id != state.id for s in states):
        states.append(state)
    return [_state_entry(s) for s in states[-TIMELINE_LIMIT:]]


def _first_running(timeline: list[dict[str, Any]] | None) -> str | None:
    for entry in timeline or ():
        if entry["type"] == "RUNNING":
            return typing.cast(str | None, entry["timestamp"])
    return None


def _state_exception(state: Any) -> BaseException | None:
    try:
        value = state.result(raise_on_failure=False, _sync=True)
    except BaseException as exc:  # some failed states raise on access
        return exc
    return value if isinstance(value, BaseException) else None


def flow_run_write(target: CaptureLimits, flow: Any, flow_run: Any, state: Any) -> FlowRunWrite:
    """The history write for ``flow_run`` entering ``state``."""
    run_id = str(flow_run.id)
    state_type = getattr(state.type, "value", str(state.type)).upper()
    status = _STATUS.get(state_type, state_type.lower())
    data: dict[str, Any] = {
        "flow_run_name": flow_run.name,
        "state_type": state_type,
        "state_message": state.message,
    }
    started_at = ended_at = None
    duration = None
    timeline = state_timeline(flow_run, state)
    if timeline is not None:
        data["timeline"] = timeline
    error_type = error_message = None
    parent_run_id = None
    parameters = None
    if status == "running":
        started_at = iso(flow_run.start_time) or iso(state.timestamp)
        if started_at is not None:
            _STARTED.setdefault(run_id, started_at)
        run_count = int(flow_run.run_count or 0) + 1  # the flow_run object lags one attempt
        parameters = capture_parameters(
            run_parameters(flow, flow_run)[0], annotations_of(flow.fn),
            max_bytes=target.max_param_bytes,
        )
        parent_run_id = _parent_flow_run_id(flow_run)
        if flow_run.parent_task_run_id is not None:
            data["parent_task_run_id"] = str(flow_run.parent_task_run_id)
    else:
        ended_at = iso(state.timestamp)
        run_count = max(int(flow_run.run_count or 0), 1)
        started = (_STARTED.pop(run_id, None) or iso(flow_run.start_time)
                   or _first_running(timeline))
        if started_at is None and started is not None:
            started_at = started  # e.g. a crash recorded by another process
        if started is not None and ended_at is not None:
            duration = max(0.0, dt.datetime.fromisoformat(ended_at).timestamp()
                           - dt.datetime.fromisoformat(started).timestamp())
        if status in ("failed", "crashed"):
            exc = _state_exception(state)
            if exc is not None:
                error_type = type(exc).__name__
                error_message = str(exc)[:4000]
            else:
                error_type = state_type.title()
                error_message = state.message
    return FlowRunWrite(
        flow_id=str(flow_run.flow_id),
        run_id=run_id,
        data=safe_value(data, field="data", max_bytes=None),
        flow_name=flow.name,
        status=status,
        state_name=state.name,
        started_at=started_at,
        ended_at=ended_at,
        duration=duration,
        parameters=parameters,
        tags=sorted(str(tag) for tag in (flow_run.tags or [])),
        error_type=error_type,
        error_message=error_message,
        deployment_id=str(flow_run.deployment_id) if flow_run.deployment_id else None,
        parent_run_id=parent_run_id,
        run_count=run_count,
        created_at=iso(flow_run.created),
    )


__all__ = ["CaptureLimits", "annotations_of", "flow_run_write", "iso", "run_parameters"]
