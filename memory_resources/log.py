"""structlog loggers bound to the acting flow_run_id / task_run_id, emitted through the
standard ``logging`` module.

A library must not decide where its logs go: every event is rendered by structlog
(key=value, with the run ids) and handed to the stdlib logger ``memory_resources.<module>``,
so the application's ``logging`` configuration (level, handlers, Prefect's console and API
handlers) applies. Unconfigured, Python shows WARNING and above on stderr; nothing goes to
stdout. ``logging.getLogger("memory_resources").setLevel(logging.DEBUG)`` shows everything.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import structlog

from .runinfo import current_run_ids


def add_run_ids(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor adding ``flow_run_id`` / ``task_run_id`` when known."""
    ids = current_run_ids()
    if ids.flow_run_id is not None:
        event_dict.setdefault("flow_run_id", ids.flow_run_id)
    if ids.task_run_id is not None:
        event_dict.setdefault("task_run_id", ids.task_run_id)
    return event_dict


_RENDER = structlog.processors.KeyValueRenderer(key_order=["event"], drop_missing=True)
_RUN_KEYS = ("flow_run_id", "task_run_id")


def render_with_run_ids(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> tuple[tuple[str], dict[str, Any]]:
    """Render key=value and hand the run ids to the stdlib record too (``record.flow_run_id``
    / ``record.task_run_id``), where Prefect's API log handler looks for them."""
    extra = {key: str(event_dict[key]) for key in _RUN_KEYS if event_dict.get(key)}
    rendered = _RENDER(logger, method, event_dict)
    return (rendered,), ({"extra": extra} if extra else {})


_PROCESSORS: list[Any] = [
    structlog.stdlib.filter_by_level,
    add_run_ids,
    structlog.processors.format_exc_info,
    render_with_run_ids,
]


class LevelCheckedLogger(structlog.stdlib.BoundLogger):
    """``structlog.stdlib.BoundLogger`` that asks the stdlib logger's (cached)
    ``isEnabledFor`` before building an event: a disabled ``info`` costs about 0.2 µs
    instead of the ~12 µs of running the processor chain up to ``filter_by_level`` (two
    such calls sat on every lock acquire+release). Enabled events are unchanged."""

    def debug(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        if not self._logger.isEnabledFor(logging.DEBUG):
            return None
        return super().debug(event, *args, **kw)

    def info(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        if not self._logger.isEnabledFor(logging.INFO):
            return None
        return super().info(event, *args, **kw)


def get_logger(name: str, **initial: Any) -> Any:
    """A structlog logger writing to the stdlib logger ``name`` with the acting run ids."""
    return structlog.wrap_logger(
        logging.getLogger(name),
        processors=_PROCESSORS,
        wrapper_class=LevelCheckedLogger,
        **initial,
    )
