"""Flow-run history rows, upserted by ``(flow_id, run_id)``.

Merge rules (see :class:`~memory_resources.records.FlowRunWrite`): a field left ``None``
keeps the stored value; ``data`` is merged key by key into the stored ``data`` (top level;
a key written again replaces its value); ``created_at`` is set on insert only and defaults
to now. Timestamps are normalised to ISO-8601 UTC with microseconds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from collections.abc import Sequence
from typing import Any

from ...batching import prepare_each
from ...clock import Clock, utc_iso
from ...codec import decode, encode
from ...decoding import build_records
from ...errors import CorruptRecordError, MemoryValidationError, PayloadTooLargeError
from ...records import FlowRunRecord, FlowRunWrite
from ...validation import (
    optional_dict,
    optional_text,
    require_dict,
    require_id,
    require_positive_int,
)
from ..where import Where
from .audit import normalize_timestamp, write_audit
from .connection import Database

MAX_READ_LIMIT = 10_000

_COLUMNS = (
    "flow_id", "run_id", "flow_name", "status", "state_name", "started_at", "ended_at",
    "duration", "parameters", "tags", "error_type", "error_message", "deployment_id",
    "parent_run_id", "run_count", "data", "created_at", "updated_at",
)
_KEPT = _COLUMNS[2:15]
"""Columns where a None in the write keeps the stored value."""

UPSERT_RUN = (
    f"INSERT INTO flow_run_history ({', '.join(_COLUMNS)})"
    f" VALUES ({', '.join('?' for _ in _COLUMNS)})"
    " ON CONFLICT (flow_id, run_id) DO UPDATE SET "
    + ", ".join(f"{c} = COALESCE(excluded.{c}, flow_run_history.{c})" for c in _KEPT)
    + ", data = excluded.data, updated_at = excluded.updated_at"
    f" RETURNING {', '.join(_COLUMNS)}"
)
SELECT_DATA = "SELECT data FROM flow_run_history WHERE flow_id = ? AND run_id = ?"


@dataclasses.dataclass(frozen=True)
class _Prepared:
    """A validated write: column values (data as encoded JSON text) for the upsert."""

    values: tuple[Any, ...]
    data: dict[str, Any]
    """``data`` in plain-JSON form (tagged types as tagged dicts), for merging."""


def _opt_time(value: Any, field: str) -> str | None:
    return None if value is None else normalize_timestamp(value, field)


def prepare(record: FlowRunWrite, max_bytes: int) -> _Prepared:
    """Validate and encode one write (raises MemoryValidationError naming the field)."""
    if not isinstance(record, FlowRunWrite):
        raise MemoryValidationError(
            "record", f"must be a FlowRunWrite, got {type(record).__name__}")
    flow_id = require_id(record.flow_id, "flow_id")
    run_id = require_id(record.run_id, "run_id")
    data = require_dict(record.data, "data")
    duration = record.duration
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) \
                or not math.isfinite(duration) or duration < 0:
            raise MemoryValidationError("duration", f"must be a number >= 0, got {duration!r}")
        duration = float(duration)
    run_count = record.run_count
    if run_count is not None and (isinstance(run_count, bool) or not isinstance(run_count, int)
                                  or run_count < 0):
        raise MemoryValidationError("run_count", f"must be an integer >= 0, got {run_count!r}")
    tags = record.tags
    if tags is not None:
        if isinstance(tags, (str, bytes)) or not isinstance(tags, (list, tuple)) or not all(
                isinstance(tag, str) for tag in tags):
            raise MemoryValidationError("tags", f"must be a list of strings, got {tags!r}")
        tags_text: str | None = encode(list(tags), field="tags", max_bytes=max_bytes)
    else:
        tags_text = None
    parameters = record.parameters
    params_text = None if parameters is None else encode(
        optional_dict(parameters, "parameters"), field="parameters", max_bytes=max_bytes)
    data_text = encode(data, field="data", max_bytes=max_bytes)
    values = (
        flow_id, run_id,
        optional_text(record.flow_name, "flow_name"),
        optional_text(record.status, "status"),
        optional_text(record.state_name, "state_name"),
        _opt_time(record.started_at, "started_at"),
        _opt_time(record.ended_at, "ended_at"),
        duration, params_text, tags_text,
        optional_text(record.error_type, "error_type"),
        optional_text(record.error_message, "error_message"),
        optional_text(record.deployment_id, "deployment_id"),
        optional_text(record.parent_run_id, "parent_run_id"),
        run_count,
        data_text,
        _opt_time(record.created_at, "created_at"),
    )
    return _Prepared(values=values, data=json.loads(data_text))


def _merge(stored: str | None, prepared: _Prepared, max_bytes: int) -> str:
    """The ``data`` text to store: the stored data updated with the written keys."""
    if stored is None:
        return str(prepared.values[15])
    if not prepared.data:
        return stored
    try:
        merged: dict[str, Any] = json.loads(stored)
        merged.update(())
    except (ValueError, AttributeError) as exc:  # not JSON, or not an object
        raise CorruptRecordError(
            "sqlite", "flow_run_history", f"{prepared.values[0]}/{prepared.values[1]}",
            "data", f"stored data cannot be merged ({str(exc)[:200]})") from None
    merged.update(prepared.data)
    text = json.dumps(merged, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise PayloadTooLargeError("data", size, max_bytes)
    return text


_JSON_COLUMNS = {"parameters": 8, "tags": 9, "data": 15}


def _row_key(row: Sequence[Any]) -> str:
    return f"{row[0]}/{row[1]}"


def to_record(row: Sequence[Any]) -> FlowRunRecord:
    """A FlowRunRecord from a row in :data:`_COLUMNS` order."""
    return FlowRunRecord(
        flow_id=row[0], run_id=row[1], flow_name=row[2], status=row[3], state_name=row[4],
        started_at=row[5], ended_at=row[6], duration=row[7],
        parameters=decode(row[8]) if row[8] is not None else None,
        tags=decode(row[9]) if row[9] is not None else [],
        error_type=row[10], error_message=row[11], deployment_id=row[12],
        parent_run_id=row[13], run_count=row[14], data=decode(row[15]),
        created_at=row[16], updated_at=row[17],
    )


class HistoryRepo:
    """write / read of flow-run history rows; implements the RunHistory protocol."""

    def __init__(self, db: Database, clock: Clock, max_payload_bytes: int) -> None:
        self._db = db
        self._clock = clock
        self._max = max_payload_bytes

    def write_flow_run(self, record: FlowRunWrite) -> FlowRunRecord:
        """Insert or update one run's row (see the module docstring for merge rules)."""
        prepared = prepare(record, self._max)
        with self._db.write("write_flow_run") as conn:
            row = self._upsert(conn, prepared)
        return to_record(row)

    def write_flow_runs(self, records: Sequence[FlowRunWrite]) -> int:
        """Bulk form of :meth:`write_flow_run`: all validated first, one transaction."""
        if isinstance(records, (str, bytes)) or not isinstance(records, Sequence):
            raise MemoryValidationError(
                "records", f"must be a sequence of FlowRunWrite, got {type(records).__name__}")
        prepared = prepare_each(records, lambda record: prepare(record, self._max), "records")
        if not prepared:
            return 0
        with self._db.write("write_flow_runs") as conn:
            for item in prepared:
                self._upsert(conn, item)
        return len(prepared)

    def _upsert(self, conn: sqlite3.Connection, prepared: _Prepared) -> tuple[Any, ...]:
        now = self._clock.time()
        stamp = utc_iso(now)
        values = prepared.values
        stored = conn.execute(SELECT_DATA, (values[0], values[1])).fetchone()
        data_text = _merge(stored[0] if stored else None, prepared, self._max)
        created_at = values[16] or stamp
        row: tuple[Any, ...] = conn.execute(
            UPSERT_RUN, (*values[:15], data_text, created_at, stamp)
        ).fetchone()
        write_audit(conn, stamp, "history.write", values[1],
                    {"flow_id": values[0], "status": row[3], "inserted": stored is None})
        return row

    def read_flow_runs(
        self,
        flow_id: str | None,
        run_id: str | None = None,
        limit: int = 100,
        *,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        flow_name: str | None = None,
    ) -> list[FlowRunRecord]:
        """Rows newest first by ``created_at``; ``since`` inclusive, ``until`` exclusive,
        ``flow_name`` an exact match."""
        where = Where(named=False)
        where.add("flow_id", flow_id, require_id)
        where.add("run_id", run_id, require_id)
        where.add("status", status, require_id)
        where.add("since", since, normalize_timestamp, column="created_at", op=">=")
        where.add("until", until, normalize_timestamp, column="created_at", op="<")
        where.add("flow_name", flow_name, require_id)
        params = [*where.values, require_positive_int(limit, "limit", maximum=MAX_READ_LIMIT)]
        sql = (
            f"SELECT {', '.join(_COLUMNS)} FROM flow_run_history{where.sql()}"
            " ORDER BY created_at DESC, rowid DESC LIMIT ?"
        )
        with self._db.read("read_flow_runs") as conn:
            rows = conn.execute(sql, params).fetchall()
        return build_records(rows, to_record, backend="sqlite", table="flow_run_history",
                             key=_row_key, columns=_JSON_COLUMNS)
