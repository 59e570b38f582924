"""What every part of the PostgreSQL store shares: SQL rendering, time, audit rows, encoding."""

from __future__ import annotations

import datetime as dt
from typing import Any

from psycopg2 import sql

from ... import codec
from ...clock import Clock, to_datetime
from ...errors import BackendError, MemoryValidationError
from ...runinfo import current_run_ids
from .errors import BACKEND
from .pool import Connection, Cursor

MAX_READ_LIMIT = 10_000

AUDIT_CTE = (
    "audit AS (INSERT INTO {s}.audit_log"
    " (occurred_at, operation, target, flow_run_id, task_run_id, details)"
    " VALUES (%(now)s, %(a_op)s, %(a_target)s, %(a_flow)s, %(a_task)s, %(a_details)s::jsonb))"
)
"""A data-modifying CTE that writes the audit row in the same statement as the write."""


def render(template: str, schema: str, conn: Connection) -> str:
    """``template`` with ``{s}`` replaced by the quoted schema identifier (psycopg2.sql)."""
    return sql.SQL(template).format(s=sql.Identifier(schema)).as_string(conn)


def now_utc(clock: Clock) -> dt.datetime:
    """The clock's wall time as an aware UTC datetime."""
    return dt.datetime.fromtimestamp(clock.time(), tz=dt.timezone.utc)


def iso(value: dt.datetime) -> str:
    """The library's ISO-8601 UTC form with microseconds."""
    if value.tzinfo is not dt.timezone.utc:  # sessions run with TimeZone=UTC: rarely taken
        value = value.astimezone(dt.timezone.utc)
    if value.microsecond:  # the same text; isoformat() parses no keyword (hot in reads)
        return value.isoformat()
    return value.isoformat(timespec="microseconds")


def opt_iso(value: dt.datetime | None) -> str | None:
    return None if value is None else iso(value)


def parse_time(value: Any, field: str) -> dt.datetime:
    """An ISO-8601 string, epoch seconds or datetime as an aware UTC datetime."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float, dt.datetime)):
        raise MemoryValidationError(field, f"must be an ISO-8601 timestamp, got {value!r}")
    try:
        return to_datetime(value)
    except (ValueError, TypeError, OverflowError, OSError):
        raise MemoryValidationError(
            field, f"must be an ISO-8601 timestamp, got {value!r}",
            hint="e.g. 2026-01-31T12:00:00+00:00",
        ) from None


def to_json(value: Any, field: str, max_bytes: int | None) -> str:
    """Encode for a JSONB column: NUL characters are refused (JSONB cannot store them)."""
    return codec.encode(value, field=field, max_bytes=max_bytes, jsonb=True)


def audit_params(operation: str, target: str, details: dict[str, Any]) -> dict[str, Any]:
    """The ``a_*`` parameters of :data:`AUDIT_CTE` for a write by the acting run."""
    ids = current_run_ids()
    return {
        "a_op": operation,
        "a_target": target,
        "a_flow": ids.flow_run_id,
        "a_task": ids.task_run_id,
        "a_details": codec.encode(details, field="details", max_bytes=None, jsonb=True),
    }


def one(cur: Cursor) -> tuple[Any, ...]:
    """The single row a statement must return."""
    row = cur.fetchone()
    if row is None:
        raise BackendError(BACKEND, "the statement returned no row")
    return tuple(row)
