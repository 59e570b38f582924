"""Prefect state hooks that translate run states into history rows and task outputs.

Prefect calls a flow hook as ``hook(flow, flow_run, state)`` and a task hook as
``hook(task, task_run, state)``, synchronously in the run's process, and only logs an
exception a hook raises. These hooks never raise: every failure ends in the outbox through
:class:`~memory_resources.prefect.writer.CaptureWriter`, with a structlog warning.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import threading
import typing
from collections.abc import Callable
from typing import Any, Protocol

from ..clock import utc_iso
from ..log import get_logger
from ..records import FlowRunWrite
from ..runinfo import acting_as
from .masking import capture_parameters, safe_value
from .writer import CaptureWriter

_log = get_logger(__name__)

SKIP_TAG = "memory:skip"
"""A task carrying this tag is never captured (per-task opt-out)."""

_STATUS = {
    "RUNNING": "running",
    "COMPLETED": "completed",
    "FAILED": "failed",
    "CRASHED": "crashed",
    "CANCELLING": "cancelled",
    "CANCELLED": "cancelled",
}


class CaptureTarget(Protocol):
    """What the hooks need from a memory block (``MemoryStore`` implements it)."""

    max_param_bytes: int | None
    max_output_bytes: int | None
    capture_task_outputs: bool

    def capture_writer(self) -> CaptureWriter:
        """The process-wide writer of this target's records."""
        ...


# -- which memory captures which flow run (for task hooks and current_memory()) ------------

_ACTIVE: dict[str, FlowCaptureHook] = {}
_ACTIVE_LOCK = threading.Lock()
_STARTED: dict[str, str] = {}
_PARENTS: dict[str, str | None] = {}


def capture_for_flow_run(flow_run_id: str | None) -> FlowCaptureHook | None:
    """The capture hook of the flow run ``flow_run_id`` in this process, if captured."""
    if flow_run_id is None:
        return None
    with _ACTIVE_LOCK:
        return _ACTIVE.get(flow_run_id)


def memory_for_flow_run(flow_run_id: str | None) -> CaptureTarget | None:
    """The memory capturing ``flow_run_id`` in this process, if any."""
    hook = capture_for_flow_run(flow_run_id)
    return hook.target if hook is not None else None


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return utc_iso(value.timestamp())


@functools.lru_cache(maxsize=256)
def _annotations(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # unresolved forward refs: fall back to raw annotations
        try:
            return {name: p.annotation for name, p in inspect.signature(fn).parameters.items()}
        except (TypeError, ValueError):
            return {}


def _run_parameters(flow: Any, flow_run: Any) -> dict[str, Any]:
    """The run's parameters as Python objects when the run context has them, else as stored."""
    try:
        from prefect.context import FlowRunContext

        ctx = FlowRunContext.get()
        if (ctx is not None and ctx.flow_run is not None and ctx.flow_run.id == flow_run.id
                and ctx.parameters is not None):
            return dict(ctx.parameters)
    except Exception:  # context lookup is best effort
        pass
    return dict(flow_run.parameters or {})


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
    _PARENTS[key] = parent
    return parent


def _state_exception(state: Any) -> BaseException | None:
    try:
        value = state.result(raise_on_failure=False, _sync=True)
    except BaseException as exc:  # some failed states raise on access
        return exc
    return value if isinstance(value, BaseException) else None


def flow_run_write(target: CaptureTarget, flow: Any, flow_run: Any, state: Any) -> FlowRunWrite:
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
    error_type = error_message = None
    parent_run_id = None
    parameters = None
    if status == "running":
        started_at = _iso(flow_run.start_time) or _iso(state.timestamp)
        if started_at is not None:
            _STARTED.setdefault(run_id, started_at)
        run_count = int(flow_run.run_count or 0) + 1  # the flow_run object lags one attempt
        parameters = capture_parameters(
            _run_parameters(flow, flow_run), _annotations(flow.fn),
            max_bytes=target.max_param_bytes,
        )
        parent_run_id = _parent_flow_run_id(flow_run)
        if flow_run.parent_task_run_id is not None:
            data["parent_task_run_id"] = str(flow_run.parent_task_run_id)
    else:
        ended_at = _iso(state.timestamp)
        run_count = max(int(flow_run.run_count or 0), 1)
        started = _STARTED.pop(run_id, None) or _iso(flow_run.start_time)
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
        created_at=_iso(flow_run.created),
    )


def _is_target(value: Any) -> bool:
    return callable(getattr(value, "capture_writer", None)) and hasattr(value, "max_param_bytes")


def _target_classes(annotation: Any) -> list[type[Any]]:
    if isinstance(annotation, type):
        return [annotation] if callable(getattr(annotation, "capture_writer", None)) else []
    found: list[type[Any]] = []
    for arg in typing.get_args(annotation):
        found.extend(_target_classes(arg))
    return found


def _resolve_target_param(cls: type[Any], value: Any) -> Any:
    """A MemoryStore parameter as Prefect would resolve it: instance, name, $ref or dict."""
    if isinstance(value, cls):
        return value
    if isinstance(value, dict) and isinstance(value.get("$ref"), dict):
        ref = value["$ref"]
        document_id = ref.get("block_document_id")
        return cls.load_from_ref(document_id or ref, _sync=True)
    return cls.model_validate(value)


def parameter_target(flow: Any, flow_run: Any) -> CaptureTarget | None:
    """The memory passed to this run as a parameter typed ``MemoryStore``, if any.

    Lets a deployment run choose its store (e.g. from the UI); it overrides the memory
    given to ``remember`` for that run.
    """
    hints = _annotations(flow.fn)
    parameters = _run_parameters(flow, flow_run)
    for name, value in parameters.items():
        if value is None:
            continue
        if _is_target(value):
            return typing.cast(CaptureTarget, value)
        for cls in _target_classes(hints.get(name)):
            try:
                resolved = _resolve_target_param(cls, value)
            except Exception as exc:  # an unusable parameter: keep the declared memory
                _log.warning("memory parameter not usable for capture", parameter=name,
                             error=f"{type(exc).__name__}: {exc}")
                continue
            if _is_target(resolved):
                return typing.cast(CaptureTarget, resolved)
    return None


class FlowCaptureHook:
    """The flow hook attached by ``remember``: registers the run, upserts its history row."""

    def __init__(
        self, target: CaptureTarget, excluded_task_keys: frozenset[str] = frozenset()
    ) -> None:
        self.target = target
        self.excluded_task_keys = excluded_task_keys
        """Tasks opted out of output capture for this flow (``remember(exclude=...)``)."""
        self.__name__ = "memory_resources_capture"

    def __call__(self, flow: Any, flow_run: Any, state: Any) -> None:
        try:
            run_id = str(flow_run.id)
            terminal = not state.is_running()
            with _ACTIVE_LOCK:
                active = _ACTIVE.pop(run_id, None) if terminal else _ACTIVE.get(run_id)
            if active is None:
                chosen = parameter_target(flow, flow_run)
                active = self if chosen is None else FlowCaptureHook(
                    chosen, self.excluded_task_keys)
            if not terminal:
                with _ACTIVE_LOCK:
                    _ACTIVE[run_id] = active
            record = flow_run_write(active.target, flow, flow_run, state)
            with acting_as(run_id):
                active.target.capture_writer().write_history(record)
        except Exception as exc:  # never into the user's flow; the writer already logged
            _log.error("flow capture hook failed", error=f"{type(exc).__name__}: {exc}")


class TaskCaptureHook:
    """The task ``on_completion`` hook: stores the task run's return value.

    With ``target=None`` the hook writes only for task runs of a captured flow run (it looks
    the flow run up), so one hook can sit on a task shared by captured and plain flows.
    """

    def __init__(self, target: CaptureTarget | None = None) -> None:
        self.target = target
        self.__name__ = "memory_resources_task_output"

    def __call__(self, task: Any, task_run: Any, state: Any) -> None:
        try:
            flow_run_id = str(task_run.flow_run_id) if task_run.flow_run_id else None
            target = self.target
            if target is None:
                flow_hook = capture_for_flow_run(flow_run_id)
                if flow_hook is None or task.task_key in flow_hook.excluded_task_keys:
                    return
                target = flow_hook.target
            if not target.capture_task_outputs:
                return
            if SKIP_TAG in (task.tags or ()) or SKIP_TAG in (task_run.tags or ()):
                return
            task_run_id = str(task_run.id)
            with acting_as(flow_run_id, task_run_id):
                try:
                    value = state.result(_sync=True)
                except Exception as exc:
                    value = {"__unavailable__": f"{type(exc).__name__}: {exc}"[:500]}
                output = safe_value(value, field="output", max_bytes=target.max_output_bytes)
                metadata = {
                    "task_name": task.name,
                    "task_run_name": task_run.name,
                    "task_key": task_run.task_key,
                    "run_count": task_run.run_count,
                    "tags": sorted(str(t) for t in (task_run.tags or [])),
                    "state_name": state.name,
                    "completed_at": _iso(state.timestamp),
                    "truncated": isinstance(output, dict) and bool(output.get("__truncated__")),
                }
                target.capture_writer().write_output(task_run_id, output, metadata, flow_run_id)
        except Exception as exc:  # never into the user's flow
            _log.error("task capture hook failed", error=f"{type(exc).__name__}: {exc}")


__all__ = [
    "SKIP_TAG",
    "CaptureTarget",
    "FlowCaptureHook",
    "TaskCaptureHook",
    "capture_for_flow_run",
    "flow_run_write",
    "memory_for_flow_run",
]
