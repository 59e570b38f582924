"""The audit trail: one row per write, inserted inside the write's own transaction.

Operations and their ``target``: ``context.set`` / ``context.clear`` / ``event.append``
(the context id), ``history.write`` (the run id; ``details.flow_id`` names the flow),
``output.write`` (the task id), ``lock.acquire`` / ``lock.release`` (the lock name).
The acting run ids come from :func:`memory_resources.runinfo.current_run_ids`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from ...clock import to_datetime
from ...codec import decode
from ...decoding import build_records
from ...errors import MemoryValidationError
from ...records import AuditRecord
from ...runinfo import current_run_ids
from ...validation import require_id, require_positive_int
from ..where import Where
from .connection import Database

MAX_READ_LIMIT = 10_000

INSERT_AUDIT = (
    "INSERT INTO audit_log (occurred_at, operation, target, flow_run_id, task_run_id, details)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def audit_row(
    occurred_at: str, operation: str, target: str, details: dict[str, Any]
) -> tuple[str, str, str, str | None, str | None, str]:
    """The parameters of :data:`INSERT_AUDIT` for a write done now by the acting run."""
    flow_run_id, task_run_id = current_run_ids()
    return (occurred_at, operation, target, flow_run_id, task_run_id,
            json.dumps(details, ensure_ascii=False, separators=(",", ":"), default=str))


def write_audit(
    conn: sqlite3.Connection, occurred_at: str, operation: str, target: str,
    details: dict[str, Any],
) -> None:
    """Insert one audit row on ``conn`` (inside the caller's transaction)."""
    conn.execute(INSERT_AUDIT, audit_row(occurred_at, operation, target, details))


def normalize_timestamp(value: Any, field: str) -> str:
    """An ISO-8601 timestamp (or datetime) as the stored UTC text form; naive means UTC."""
    if not isinstance(value, str) and not hasattr(value, "tzinfo"):
        raise MemoryValidationError(field, f"must be an ISO-8601 timestamp, got {value!r}")
    try:
        return to_datetime(value).isoformat(timespec="microseconds")
    except (ValueError, TypeError, OverflowError, OSError):
        raise MemoryValidationError(
            field, f"must be an ISO-8601 timestamp, got {value!r}",
            hint="e.g. 2026-01-31T12:00:00+00:00",
        ) from None


class AuditReader:
    """Reads the audit trail newest first."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def read_audit(
        self,
        *,
        operation: str | None = None,
        target: str | None = None,
        flow_run_id: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """Audit rows newest first, filtered by the given fields."""
        where = Where(named=False)
        where.add("operation", operation, require_id)
        where.add("target", target, require_id)
        where.add("flow_run_id", flow_run_id, require_id)
        where.add("since", since, normalize_timestamp, column="occurred_at", op=">=")
        params = [*where.values, require_positive_int(limit, "limit", maximum=MAX_READ_LIMIT)]
        sql = (
            "SELECT id, occurred_at, operation, target, flow_run_id, task_run_id, details"
            f" FROM audit_log{where.sql()} ORDER BY id DESC LIMIT ?"
        )
        with self._db.read("reading the audit log") as conn:
            rows = conn.execute(sql, params).fetchall()
        return build_records(
            rows, _record, backend="sqlite", table="audit_log", key=lambda row: str(row[0]),
            columns={"details": 6})


def _record(row: Sequence[Any]) -> AuditRecord:
    return AuditRecord(id=row[0], occurred_at=row[1], operation=row[2], target=row[3],
                       flow_run_id=row[4], task_run_id=row[5], details=decode(row[6]))
