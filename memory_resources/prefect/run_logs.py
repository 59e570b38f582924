"""Library logs on the run page: ``memory_resources`` records of a run go to Prefect's API.

Prefect sends only its own loggers to the API unless ``PREFECT_LOGGING_EXTRA_LOGGERS``
names others. ``remember`` calls :func:`send_logs_to_runs` once per process, which does
the same for the ``memory_resources`` logger: capture and lock messages of a flow or task
run appear in that run's logs in the UI. Records outside any run are left to the
application's handlers (no "without a flow run id" warning). Opt out with
``MEMORY_RESOURCES_RUN_LOGS=false``.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

from prefect.logging.handlers import APILogHandler

LOGGER = "memory_resources"
OPT_OUT = "MEMORY_RESOURCES_RUN_LOGS"


def _run_id(record: logging.LogRecord) -> bool:
    """True when the record names a flow run (as a UUID) or is logged inside a run."""
    value = getattr(record, "flow_run_id", None)
    if value:
        try:
            uuid.UUID(str(value))
            return True
        except ValueError:
            return False
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


class RunLogHandler(APILogHandler):
    """Prefect's API log handler, for records of a flow or task run only."""

    def emit(self, record: logging.LogRecord) -> None:
        if _run_id(record):
            super().emit(record)


def send_logs_to_runs(level: int = logging.INFO) -> bool:
    """Send ``memory_resources`` records of runs to Prefect's API (idempotent).

    Adds :class:`RunLogHandler` to the ``memory_resources`` logger unless an API handler is
    there already (e.g. from ``PREFECT_LOGGING_EXTRA_LOGGERS``), and sets the logger's level
    to ``level`` when the application left it unset. False when opted out.
    """
    if os.environ.get(OPT_OUT, "").strip().lower() in ("0", "false", "no", "off"):
        return False
    logger = logging.getLogger(LOGGER)
    handlers: list[Any] = list(logger.handlers)
    if not any(isinstance(handler, APILogHandler) for handler in handlers):
        logger.addHandler(RunLogHandler())
    if logger.level == logging.NOTSET:
        logger.setLevel(level)
    return True


__all__ = ["RunLogHandler", "send_logs_to_runs"]
