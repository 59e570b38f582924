"""structlog setup: loggers bound to the acting flow_run_id / task_run_id."""

from __future__ import annotations

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


def get_logger(name: str, **initial: Any) -> Any:
    """A structlog logger for ``name`` that adds the acting run ids to every event.

    It wraps whatever structlog configuration the application has (we never configure
    structlog globally), so the application's renderer and level apply.
    """
    return structlog.wrap_logger(
        structlog.get_logger(),
        processors=[add_run_ids],
        logger_name=name,
        **initial,
    )
