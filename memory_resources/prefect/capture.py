"""Declare capture once per flow: ``@remember(memory)`` over ``@flow``.

``remember`` returns the flow with a capture hook added to each of its state hook lists
(running, completed, failed, crashed, cancellation); the flow's own hooks are kept and run
first. Task outputs: Prefect has no global task hooks, so ``remember`` adds a task hook to

* every ``Task`` the flow function refers to by name (module globals, closures, including
  names used only in nested functions/lambdas defined inside the flow function), and
* the tasks given in ``tasks=[...]``;

the hook writes only for task runs whose flow run is captured, so a task shared with plain
flows is not captured there. Tasks called through a helper function defined elsewhere are
not found by name: list them in ``tasks=`` or declare them with ``memory.task``.
Opt a task out with ``exclude=[task]`` or the tag ``memory:skip``.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from ..errors import ConfigurationError, NotAMemoryStoreError
from ..runinfo import current_run_ids
from .hooks import (
    SKIP_TAG,
    CaptureTarget,
    FlowCaptureHook,
    TaskCaptureHook,
    memory_for_flow_run,
    resolve_deferred,
)
from .run_logs import send_logs_to_runs

F = TypeVar("F")

_EXCLUDED_ATTR = "__memory_resources_excluded__"


def _code_names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    yield from code.co_freevars
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_names(const)


def referenced_tasks(fn: Callable[..., Any]) -> list[Any]:
    """The Prefect ``Task`` objects ``fn`` refers to by name (globals and closure cells)."""
    from prefect.tasks import Task

    fn = getattr(fn, "__wrapped__", fn)
    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    scope: dict[str, Any] = dict(getattr(fn, "__globals__", {}))
    for name, cell in zip(code.co_freevars, fn.__closure__ or (), strict=False):
        try:
            scope[name] = cell.cell_contents
        except ValueError:  # empty cell
            continue
    found: dict[int, Any] = {}
    for name in _code_names(code):
        value = scope.get(name)
        if isinstance(value, Task):
            found.setdefault(id(value), value)
    return list(found.values())


def require_target(memory: Any, where: str) -> CaptureTarget:
    """``memory`` if it is a memory store, else :class:`NotAMemoryStoreError` naming the fix."""
    if callable(getattr(memory, "capture_writer", None)) and hasattr(memory, "max_param_bytes"):
        return memory  # type: ignore[no-any-return]
    if inspect.isawaitable(memory):
        if inspect.iscoroutine(memory):
            memory.close()  # no "never awaited" warning on top of this error
        raise NotAMemoryStoreError(
            f"{where} got an awaitable, not a MemoryStore: Prefect's Block.load returns a "
            "coroutine inside an event loop. Write `memory = MemoryStore.load(\"<name>\")` "
            "(memory_resources' load returns the block outside async runs), or "
            "`memory = await MemoryStore.aload(\"<name>\")` in async code.")
    raise NotAMemoryStoreError(
        f"{where} takes a MemoryStore, got {type(memory).__name__}: pass `MemoryStore()` "
        "(the embedded default) or `MemoryStore.load(\"<block name>\")` (a saved block).")


def _has_capture_hook(task: Any) -> bool:
    return any(isinstance(hook, TaskCaptureHook) for hook in task.on_completion_hooks)


def _attach_task_hook(task: Any) -> None:
    if not _has_capture_hook(task):
        task.on_completion_hooks.append(TaskCaptureHook(None))


def remember(
    memory: CaptureTarget,
    *,
    tasks: Iterable[Any] = (),
    exclude: Iterable[Any] = (),
    discover_tasks: bool = True,
) -> Callable[[F], F]:
    """Decorator capturing every run of a flow (and its tasks' outputs) into ``memory``.

    Put it above ``@flow``. ``tasks`` adds tasks the name scan cannot see; ``exclude`` opts
    tasks out (also: tag a task ``memory:skip``); ``discover_tasks=False`` captures only the
    flow's history and the ``tasks`` given.
    """
    memory = require_target(memory, "remember(memory)")
    send_logs_to_runs()
    extra = list(tasks)
    excluded = list(exclude)

    def decorate(flow: F) -> F:
        from prefect.flows import Flow
        from prefect.tasks import Task

        if not isinstance(flow, Flow):
            raise ConfigurationError(
                "remember(memory) decorates a Prefect flow: put it above @flow, "
                f"got {type(flow).__name__}"
            )
        for item in [*extra, *excluded]:
            if not isinstance(item, Task):
                raise ConfigurationError(
                    f"remember(tasks=/exclude=) takes Prefect tasks, got {type(item).__name__}"
                )
        excluded_keys = frozenset(task.task_key for task in excluded)
        hook = FlowCaptureHook(memory, excluded_keys)
        captured: Any = flow.with_options(
            on_running=[*flow.on_running_hooks, hook],
            on_completion=[*flow.on_completion_hooks, hook],
            on_failure=[*flow.on_failure_hooks, hook],
            on_crashed=[*flow.on_crashed_hooks, hook],
            on_cancellation=[*flow.on_cancellation_hooks, hook],
        )
        found = referenced_tasks(flow.fn) if discover_tasks else []
        for task in [*found, *extra]:
            if task.task_key not in excluded_keys:
                _attach_task_hook(task)
        captured.__memory_resources_target__ = memory
        return captured  # type: ignore[no-any-return]

    return decorate


def remembered_task(memory: CaptureTarget, fn: Any = None, /, **task_options: Any) -> Any:
    """A drop-in for ``prefect.task`` whose every run's return value is stored in ``memory``.

    Use as ``@remembered_task(memory)`` / ``@memory.task`` or ``@memory.task(retries=2)``;
    the task's own ``on_completion`` hooks are kept and run first. Captured in any flow,
    captured or not.
    """
    from prefect.tasks import Task

    memory = require_target(memory, "remembered_task(memory)")
    own = list(task_options.pop("on_completion", None) or [])

    def build(function: Callable[..., Any]) -> Any:
        return Task(fn=function, on_completion=[*own, TaskCaptureHook(memory)], **task_options)

    if fn is not None:
        return build(fn)
    return functools.partial(_apply, build)


def _apply(build: Callable[[Callable[..., Any]], Any], fn: Callable[..., Any]) -> Any:
    return build(fn)


def current_memory() -> Any:
    """The memory capturing the current flow run (inside a captured flow or its tasks).

    Raises :class:`~memory_resources.errors.ConfigurationError` outside a captured run.
    """
    ids = current_run_ids()
    memory = memory_for_flow_run(ids.flow_run_id)
    if memory is None:
        hook = resolve_deferred(ids.flow_run_id)
        memory = hook.target if hook is not None else None
    if memory is None:
        raise ConfigurationError(
            "current_memory() is only available inside a flow run captured with "
            "remember(memory) (or its tasks)"
        )
    return memory


__all__ = ["SKIP_TAG", "current_memory", "referenced_tasks", "remember", "remembered_task"]
