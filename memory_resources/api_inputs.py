"""Turn MemoryAPI arguments into store inputs: flow-run dicts and argument names in errors.

Everything here validates and raises
:class:`~memory_resources.errors.MemoryValidationError` naming the facade's argument, before
any store is called.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from .clock import to_datetime, utc_iso
from .errors import (
    MemoryValidationError,
    PayloadTooLargeError,
    SerializationError,
)
from .records import FlowRunWrite
from .validation import (
    optional_dict,
    optional_id,
    require_dict,
    require_id,
    require_positive_int,
    require_positive_seconds,
)

_TEXT_KEYS = ("flow_name", "state_name", "deployment_id", "parent_run_id")
_TIME_KEYS = ("started_at", "ended_at", "created_at")


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise MemoryValidationError(field, f"must be a string, got {type(value).__name__}")
    return value


def _timestamp(value: Any, field: str) -> str:
    """An ISO-8601 string, a datetime or epoch seconds, as an ISO UTC string."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, dt.datetime)):
        raise MemoryValidationError(
            field, f"must be an ISO-8601 string, a datetime or epoch seconds, got {value!r}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise MemoryValidationError(field, f"must be finite, got {value!r}")
    try:
        return utc_iso(to_datetime(value).timestamp())
    except (ValueError, OverflowError, OSError):
        raise MemoryValidationError(field, f"is not a valid timestamp: {value!r}") from None


def optional_timestamp(value: Any, field: str) -> str | None:
    """None, or a timestamp (ISO string, datetime, epoch seconds) as an ISO UTC string."""
    return None if value is None else _timestamp(value, field)


def _error_parts(value: Any, field: str) -> tuple[Any, Any, Any]:
    """``error`` as (type, message, JSON form kept in ``data``)."""
    kind: Any
    message: Any
    if value is None:
        return None, None, None
    if isinstance(value, BaseException):
        kind, message = type(value).__name__, str(value)
        return kind, message, {"type": kind, "message": message}
    if isinstance(value, str):
        return None, value, value
    if isinstance(value, Mapping):
        kind = value.get("type")
        message = value.get("message")
        if kind is not None and not isinstance(kind, str):
            raise MemoryValidationError(f'{field}["type"]', "must be a string")
        if message is not None and not isinstance(message, str):
            raise MemoryValidationError(f'{field}["message"]', "must be a string")
        return kind, message, dict(value)
    raise MemoryValidationError(
        field, f"must be a string, a dict with type/message, or an exception, got {value!r}"
    )


def flow_run_write(flow_id: Any, run_id: Any, data: Any) -> FlowRunWrite:
    """Lift the known keys of ``data`` into :class:`FlowRunWrite` columns; keep all of ``data``.

    Known keys: ``status`` (lower-cased), ``flow_name``, ``state_name``, ``started_at``,
    ``ended_at``, ``created_at`` (ISO strings, datetimes or epoch seconds), ``duration``
    (seconds >= 0), ``parameters`` (dict), ``tags`` (list of strings), ``error`` (string, dict
    with ``type``/``message``, or an exception), ``error_type``, ``error_message``,
    ``deployment_id``, ``parent_run_id``, ``run_count`` (int >= 0).
    """
    flow_id = require_id(flow_id, "flow_id")
    run_id = require_id(run_id, "run_id")
    data = require_dict(data, "data")
    fields: dict[str, Any] = {}
    if data.get("status") is not None:
        fields["status"] = _text(data["status"], 'data["status"]').strip().lower()
        if not fields["status"]:
            raise MemoryValidationError('data["status"]', "must not be empty")
    for key in _TEXT_KEYS:
        if data.get(key) is not None:
            fields[key] = _text(data[key], f'data["{key}"]')
    for key in _TIME_KEYS:
        if data.get(key) is not None:
            fields[key] = _timestamp(data[key], f'data["{key}"]')
            data[key] = fields[key]
    duration = data.get("duration")
    if duration is not None:
        if (isinstance(duration, bool) or not isinstance(duration, (int, float))
                or not math.isfinite(duration) or duration < 0):
            raise MemoryValidationError(
                'data["duration"]', f"must be a finite number of seconds >= 0, got {duration!r}"
            )
        fields["duration"] = float(duration)
    if data.get("parameters") is not None:
        fields["parameters"] = require_dict(data["parameters"], 'data["parameters"]')
    tags = data.get("tags")
    if tags is not None:
        if isinstance(tags, (str, bytes)) or not isinstance(tags, (list, tuple, set, frozenset)):
            raise MemoryValidationError('data["tags"]', f"must be a list of strings, got {tags!r}")
        fields["tags"] = [_text(tag, 'data["tags"][]') for tag in tags]
        data["tags"] = list(fields["tags"])
    run_count = data.get("run_count")
    if run_count is not None:
        if isinstance(run_count, bool) or not isinstance(run_count, int) or run_count < 0:
            raise MemoryValidationError('data["run_count"]', f"must be an int >= 0, got "
                                        f"{run_count!r}")
        fields["run_count"] = run_count
    kind, message, kept = _error_parts(data.get("error"), 'data["error"]')
    if kept is not None:
        data["error"] = kept
    if data.get("error_type") is not None:
        kind = _text(data["error_type"], 'data["error_type"]')
    if data.get("error_message") is not None:
        message = _text(data["error_message"], 'data["error_message"]')
    if kind is not None:
        fields["error_type"] = kind
    if message is not None:
        fields["error_message"] = message
    fields.update(flow_id=flow_id, run_id=run_id, data=data)
    return _flow_run_write(fields)


_FLOW_RUN_DEFAULTS = {field.name: None for field in dataclasses.fields(FlowRunWrite)}


def _flow_run_write(fields: dict[str, Any]) -> FlowRunWrite:
    """A FlowRunWrite of checked ``fields`` (the rest None), without the frozen dataclass's
    ``__init__`` (one ``object.__setattr__`` per field: a third of this module's cost per
    history write); the instance is the same, frozen and equal to one built normally."""
    write = object.__new__(FlowRunWrite)
    values = write.__dict__
    values.update(_FLOW_RUN_DEFAULTS)
    values.update(fields)
    return write


class argument_names:
    """Re-raise a store's validation error under the facade's argument name.

    ``with argument_names(data="context_data"): ...``: a store complaining about ``data``
    is reported as ``context_data`` (with the same path and problem). A plain class, not a
    generator context manager: it sits on every write path and must cost next to nothing.
    """

    __slots__ = ("names",)

    def __init__(self, **names: str) -> None:
        self.names = names

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if isinstance(exc, MemoryValidationError):
            renamed = _rename(exc, self.names)
            if renamed is not None:
                raise renamed from exc


def _rename(exc: MemoryValidationError, names: dict[str, str]) -> MemoryValidationError | None:
    for old, new in names.items():
        if exc.field != old and not exc.field.startswith((old + "[", old + ".")):
            continue
        field = new + exc.field[len(old):]
        if isinstance(exc, PayloadTooLargeError):
            return PayloadTooLargeError(field, exc.size, exc.limit)
        if isinstance(exc, SerializationError):
            path = exc.path
            if path == old or path.startswith((old + "[", old + ".")):
                path = new + path[len(old):]
            return SerializationError(field, path, exc.problem, hint=exc.hint)
        clone = type(exc).__new__(type(exc))
        clone.__dict__.update(exc.__dict__)
        MemoryValidationError.__init__(clone, field, exc.problem, hint=exc.hint)
        return clone
    return None


MAX_LIMIT = 100_000
"""Largest ``limit`` / ``top_k`` a read accepts."""


def history_query(flow_id: Any, run_id: Any, limit: Any, status: Any, since: Any,
                  until: Any, flow_name: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The checked arguments of ``read_flow_run_history`` as the store's (args, kwargs)."""
    flow_id = optional_id(flow_id, "flow_id")
    run_id = optional_id(run_id, "run_id")
    limit = require_positive_int(limit, "limit", maximum=MAX_LIMIT)
    status = optional_id(status, "status")
    return (flow_id, run_id, limit), {
        "status": status.strip().lower() if status else None,
        "since": optional_timestamp(since, "since"),
        "until": optional_timestamp(until, "until"),
        "flow_name": optional_id(flow_name, "flow_name"),
    }


def audit_query(operation: Any, target: Any, flow_run_id: Any, since: Any, limit: Any
                ) -> dict[str, Any]:
    """The checked arguments of ``read_audit_log`` as the store's keyword arguments."""
    return {
        "operation": optional_id(operation, "operation"),
        "target": optional_id(target, "target"),
        "flow_run_id": optional_id(flow_run_id, "flow_run_id"),
        "since": optional_timestamp(since, "since"),
        "limit": require_positive_int(limit, "limit", maximum=MAX_LIMIT),
    }


def lock_options(name: Any, timeout: Any, blocking_timeout: Any, auto_extend: Any
                 ) -> dict[str, Any]:
    """The checked arguments of ``MemoryAPI.lock`` as a lock handle's keyword arguments."""
    name = require_id(name, "lock_name")
    timeout = require_positive_seconds(timeout, "timeout")
    if blocking_timeout is not None:
        require_positive_seconds(blocking_timeout, "blocking_timeout", allow_zero=True)
    if not isinstance(auto_extend, bool):
        raise MemoryValidationError("auto_extend", f"must be a bool, got {auto_extend!r}")
    return {"name": name, "timeout": timeout, "blocking_timeout": blocking_timeout,
            "auto_extend": auto_extend}


def task_output_ids(task_id: Any, metadata: Any, task_run_id: Any, flow_run_id: Any
                    ) -> tuple[str, Any, dict[str, Any]]:
    """The checked task id, metadata and run ids of ``write_task_output``."""
    return (require_id(task_id, "task_id"), optional_dict(metadata, "metadata"),
            {"task_run_id": optional_id(task_run_id, "task_run_id"),
             "flow_run_id": optional_id(flow_run_id, "flow_run_id")})
