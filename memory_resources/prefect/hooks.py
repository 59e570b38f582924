"""Prefect state hooks that translate run states into history rows and task outputs.

Prefect calls a flow hook as ``hook(flow, flow_run, state)`` and a task hook as
``hook(task, task_run, state)``, synchronously in the run's process, and only logs an
exception a hook raises. These hooks never raise: every failure ends in the outbox through
:class:`~memory_resources.capture.writer.CaptureWriter`, with a structlog warning, and a
WARNING on the run's own Prefect logger (shown on the run page) naming the outbox file and
the replay command.
"""

from __future__ import annotations

import asyncio
import threading
import typing
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..capture.masking import MASK, safe_value
from ..capture.writer import CaptureWriter
from ..log import get_logger
from ..records import FlowRunWrite
from ..runinfo import acting_as
from .runrecord import annotations_of, flow_run_write, iso, run_parameters

_log = get_logger(__name__)

SKIP_TAG = "memory:skip"
"""A task carrying this tag is never captured (per-task opt-out)."""


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


def replay_command(outbox_path: Any) -> str:
    """The command that writes an outbox file's records to their stores."""
    return f"memory-resources outbox replay --outbox {outbox_path}"


def warn_on_run(writer: CaptureWriter, kind: str, *, flow: Any = None, flow_run: Any = None,
                task: Any = None, task_run: Any = None) -> None:
    """Log on the run's Prefect logger (its page in the UI) that a record went to the outbox."""
    error = writer.last_failure()
    if error is None or (flow_run is None and task_run is None):
        return
    message = (
        f"memory capture: the {kind} record could not be written to "
        f"{writer.target.label} ({error}); it is kept in the outbox {writer.outbox.path} and "
        f"written at the next successful capture, or now with: "
        f"{replay_command(writer.outbox.path)}"
    )
    try:
        from prefect.logging.loggers import flow_run_logger, task_run_logger

        if task_run is not None:
            logger: Any = task_run_logger(task_run, task=task)
        else:
            logger = flow_run_logger(flow_run, flow=flow)
        logger.warning(message)
    except Exception as exc:  # the structlog warning was written already
        _log.warning("cannot log on the run's Prefect logger",
                     error=f"{type(exc).__name__}: {exc}")


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


def _holds_mask(value: Any) -> bool:
    if value == MASK:
        return True
    if isinstance(value, dict):
        return any(_holds_mask(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_mask(v) for v in value)
    return False


def resolve_parameter_target(flow: Any, flow_run: Any) -> tuple[CaptureTarget | None, bool]:
    """The memory passed to this run as a parameter typed ``MemoryStore``, if any.

    Lets a deployment run choose its store (e.g. from the UI); it overrides the memory
    given to ``remember`` for that run. Returns ``(target, decided)``: ``decided`` is False
    while the parameter is only known as Prefect stored it with its secrets masked (a block
    instance passed in code); the run context resolves it a moment later.
    """
    hints = annotations_of(flow.fn)
    parameters, live = run_parameters(flow, flow_run)
    for name, value in parameters.items():
        if value is None:
            continue
        if _is_target(value):
            return typing.cast(CaptureTarget, value), True
        classes = _target_classes(hints.get(name))
        if classes and not live and _holds_mask(value):
            return None, False
        for cls in classes:
            try:
                resolved = _resolve_target_param(cls, value)
            except Exception as exc:  # an unusable parameter: keep the declared memory
                _log.warning("memory parameter not usable for capture", parameter=name,
                             error=f"{type(exc).__name__}: {exc}")
                continue
            if _is_target(resolved):
                return typing.cast(CaptureTarget, resolved), True
    return None, True


def parameter_target(flow: Any, flow_run: Any) -> CaptureTarget | None:
    """The memory passed to this run as a ``MemoryStore`` parameter, when it can be known
    now (see :func:`resolve_parameter_target`), else None."""
    target, decided = resolve_parameter_target(flow, flow_run)
    return target if decided else None


class _Deferred:
    """History writes of a run whose store is not known yet (resolve_parameter_target)."""

    def __init__(self, hook: FlowCaptureHook, flow: Any) -> None:
        self.hook = hook
        self.flow = flow
        self.records: list[FlowRunWrite] = []


_DEFERRED: dict[str, _Deferred] = {}


def _current_flow_run(run_id: str) -> Any:
    try:
        from prefect.context import FlowRunContext

        ctx = FlowRunContext.get()
    except Exception:  # context lookup is best effort
        return None
    if ctx is not None and ctx.flow_run is not None and str(ctx.flow_run.id) == run_id:
        return ctx.flow_run
    return None


def resolve_deferred(run_id: str | None, *, force: bool = False) -> FlowCaptureHook | None:
    """Decide the store of a deferred run from its run context and flush its writes.

    With ``force`` an undecidable run falls back to the memory given to ``remember``.
    """
    if run_id is None:
        return None
    with _ACTIVE_LOCK:
        deferred = _DEFERRED.get(run_id)
    if deferred is None:
        return None
    flow_run = _current_flow_run(run_id)
    chosen, decided = (resolve_parameter_target(deferred.flow, flow_run) if flow_run is not None
                       else (None, False))
    if not decided and not force:
        return None
    if not decided:
        _log.warning("memory parameter could not be resolved; using the declared memory",
                     flow_run_id=run_id)
    hook = deferred.hook if chosen is None else FlowCaptureHook(
        chosen, deferred.hook.excluded_task_keys)
    with _ACTIVE_LOCK:
        if _DEFERRED.pop(run_id, None) is None:  # another thread flushed it
            return _ACTIVE.get(run_id)
        _ACTIVE[run_id] = hook
    writer = hook.target.capture_writer()
    with acting_as(run_id):
        for record in deferred.records:
            if not writer.write_history(record):
                warn_on_run(writer, "history", flow=deferred.flow, flow_run=flow_run)
    return hook


def off_loop(capture: Callable[..., None], owner: Any, *args: Any) -> Awaitable[None] | None:
    """Run ``capture(*args)`` now when ``owner`` (a flow or task) is sync; when it is
    async, a coroutine that runs it on a worker thread with the caller's context (run
    ids, Prefect's run context) for Prefect's async engine to await."""
    if getattr(owner, "isasync", False) is not True:
        capture(*args)
        return None
    return asyncio.to_thread(capture, *args)


class FlowCaptureHook:
    """The flow hook attached by ``remember``: registers the run, upserts its history row."""

    def __init__(
        self, target: CaptureTarget, excluded_task_keys: frozenset[str] = frozenset()
    ) -> None:
        self.target = target
        self.excluded_task_keys = excluded_task_keys
        """Tasks opted out of output capture for this flow (``remember(exclude=...)``)."""
        self.__name__ = "memory_resources_capture"

    def __call__(self, flow: Any, flow_run: Any, state: Any) -> Awaitable[None] | None:
        """Capture now; for an async flow return a coroutine that captures on a worker
        thread (Prefect's async engine awaits it), so the run's event loop never waits on
        a store or the outbox."""
        return off_loop(self._capture, flow, flow, flow_run, state)

    def _capture(self, flow: Any, flow_run: Any, state: Any) -> None:
        try:
            run_id = str(flow_run.id)
            terminal = not state.is_running()
            with _ACTIVE_LOCK:
                active = _ACTIVE.get(run_id)
                deferred = _DEFERRED.get(run_id)
            if active is None and deferred is not None:
                active = resolve_deferred(run_id, force=terminal)
                if active is None:  # still unknown: keep this state for later too
                    deferred.records.append(flow_run_write(self.target, flow, flow_run, state))
                    return
            if active is None:
                chosen, decided = resolve_parameter_target(flow, flow_run)
                if not decided and not terminal:
                    pending = _Deferred(self, flow)
                    pending.records.append(flow_run_write(self.target, flow, flow_run, state))
                    with _ACTIVE_LOCK:
                        _DEFERRED[run_id] = pending
                    return
                active = self if chosen is None else FlowCaptureHook(
                    chosen, self.excluded_task_keys)
            with _ACTIVE_LOCK:
                if terminal:
                    _ACTIVE.pop(run_id, None)
                else:
                    _ACTIVE[run_id] = active
            record = flow_run_write(active.target, flow, flow_run, state)
            writer = active.target.capture_writer()
            with acting_as(run_id):
                if not writer.write_history(record):
                    warn_on_run(writer, "history", flow=flow, flow_run=flow_run)
                else:
                    _log.info("memory capture: run history written", state=state.name,
                              store=writer.target.label)
        except Exception as exc:  # never into the user's flow; the writer already logged
            _log.error("flow capture hook failed", error=f"{type(exc).__name__}: {exc}")


def _task_result(state: Any) -> Any:
    """The return value held by a completed state.

    Reads it in memory when Prefect attached it (the usual case inside the run's process);
    ``state.result()`` (which runs a coroutine on Prefect's loop thread) only otherwise.
    """
    from prefect._internal.result_records import ResultRecord, ResultRecordMetadata

    data = state.data
    if isinstance(data, ResultRecord):
        return data.result
    if data is not None and not isinstance(data, ResultRecordMetadata):
        return data
    return state.result(_sync=True)


class TaskCaptureHook:
    """The task ``on_completion`` hook: stores the task run's return value.

    With ``target=None`` the hook writes only for task runs of a captured flow run (it looks
    the flow run up), so one hook can sit on a task shared by captured and plain flows.
    """

    def __init__(self, target: CaptureTarget | None = None) -> None:
        self.target = target
        self.__name__ = "memory_resources_task_output"

    def __call__(self, task: Any, task_run: Any, state: Any) -> Awaitable[None] | None:
        """Capture now; for an async task a coroutine capturing on a worker thread."""
        return off_loop(self._capture, task, task, task_run, state)

    def _capture(self, task: Any, task_run: Any, state: Any) -> None:
        try:
            flow_run_id = str(task_run.flow_run_id) if task_run.flow_run_id else None
            target = self.target
            if target is None:
                flow_hook = capture_for_flow_run(flow_run_id) or resolve_deferred(flow_run_id)
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
                    value = _task_result(state)
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
                    "completed_at": iso(state.timestamp),
                    "truncated": isinstance(output, dict) and bool(output.get("__truncated__")),
                }
                writer = target.capture_writer()
                if not writer.write_output(task_run_id, output, metadata, flow_run_id):
                    warn_on_run(writer, "task output", task=task, task_run=task_run)
                else:
                    _log.info("memory capture: task output stored", task=task.name,
                              store=writer.target.label)
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
    "parameter_target",
    "replay_command",
    "resolve_deferred",
    "resolve_parameter_target",
    "warn_on_run",
]
