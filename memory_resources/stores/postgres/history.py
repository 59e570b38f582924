"""Flow-run history: one row per run, upserted by ``(flow_id, run_id)``, audited in-statement.

The table is partitioned by ``created_at`` (the run's creation time, set on insert only);
``flow_run_history_keys`` maps ``(flow_id, run_id)`` to it, so a later state of the same run
updates the same row in the same partition. One write is ONE statement (data-modifying
CTEs): key upsert, row upsert and audit row. Merge rules follow
:class:`~memory_resources.records.FlowRunWrite`: ``None`` keeps the stored value, ``data``
is merged key by key (JSONB ``||``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Sequence
from json.encoder import encode_basestring
from typing import Any

from ... import codec
from ...batching import prepare_each
from ...decoding import build_records
from ...errors import MemoryValidationError
from ...records import FlowRunRecord, FlowRunWrite
from ...runinfo import current_run_ids
from ...validation import (
    optional_dict,
    optional_text,
    require_dict,
    require_id,
    require_positive_int,
    require_utf8,
)
from ..where import Where
from .plan import Op, Repo, Steps, Stmt, need_row, single
from .support import (
    MAX_READ_LIMIT,
    iso,
    now_utc,
    opt_iso,
    parse_time,
    to_json,
)

COLUMNS = (
    "flow_id", "run_id", "flow_name", "status", "state_name", "started_at", "ended_at",
    "duration", "parameters", "tags", "error_type", "error_message", "deployment_id",
    "parent_run_id", "run_count", "data", "created_at", "updated_at",
)
_KEPT = ("flow_name", "status", "state_name", "started_at", "ended_at", "duration",
         "parameters", "tags", "error_type", "error_message", "deployment_id",
         "parent_run_id", "run_count")
_INPUT = ("flow_id", "run_id", "flow_name", "status", "state_name", "started_at", "ended_at",
          "duration", "parameters", "tags", "error_type", "error_message", "deployment_id",
          "parent_run_id", "run_count", "data", "created_at")
_CASTS = {"started_at": "timestamptz", "ended_at": "timestamptz", "duration": "float8",
          "parameters": "jsonb", "tags": "text[]", "run_count": "int4", "data": "jsonb",
          "created_at": "timestamptz"}

_SET = ", ".join(f"{c} = COALESCE(EXCLUDED.{c}, h.{c})" for c in _KEPT)
_UPSERT_TAIL = (
    " ON CONFLICT (flow_id, run_id, created_at) DO UPDATE SET " + _SET +
    ", data = h.data || EXCLUDED.data, updated_at = EXCLUDED.updated_at"
    " RETURNING " + ", ".join(f"h.{c}" for c in COLUMNS)
)

def _cast(column: str) -> str:
    return _CASTS.get(column, "text")


def _write_sql(source: str, result: str) -> str:
    """The upsert statement over the input rows ``v`` (every :data:`_INPUT` column, NULL
    where not given) defined by ``source``; ``k`` holds the stable created_at, ``h`` the
    row, ``audit`` the trail."""
    return (
        f"WITH {source},"
        " k AS (INSERT INTO {s}.flow_run_history_keys AS k (flow_id, run_id, created_at)"
        " SELECT v.flow_id, v.run_id, COALESCE(v.created_at, %(now)s::timestamptz)"
        " FROM v ON CONFLICT (flow_id, run_id) DO UPDATE SET created_at = k.created_at"
        " RETURNING k.flow_id, k.run_id, k.created_at, (k.xmax = 0) AS inserted),"
        " h AS (INSERT INTO {s}.flow_run_history AS h (" + ", ".join(COLUMNS) + ")"
        " SELECT v.flow_id, v.run_id, " + ", ".join(f"v.{c}" for c in _KEPT) +
        ", v.data, k.created_at, %(now)s::timestamptz"
        " FROM v JOIN k USING (flow_id, run_id)" + _UPSERT_TAIL + "),"
        " audit AS (INSERT INTO {s}.audit_log"
        " (occurred_at, operation, target, flow_run_id, task_run_id, details)"
        " SELECT %(now)s::timestamptz, 'history.write', h.run_id, %(a_flow)s::text,"
        " %(a_task)s::text,"
        " jsonb_build_object('flow_id', h.flow_id, 'status', h.status, 'inserted', k.inserted)"
        " FROM h JOIN k USING (flow_id, run_id)) " + result
    )


WRITE_ONE = _write_sql(
    f"v ({', '.join(_INPUT)}) AS (VALUES ("
    + ", ".join(f"%({c})s::{_cast(c)}" for c in _INPUT) + "))",
    "SELECT " + ", ".join(COLUMNS) + " FROM h")
WRITE_MANY = _write_sql(
    "v AS (SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS r ("
    + ", ".join(f"{c} {_cast(c)}" for c in _INPUT) + "))",
    "SELECT count(*) FROM h")
"""The bulk form: the rows travel as ONE JSON array parameter (each row an object holding
only its non-NULL columns), so the statement text is fixed and can be prepared, and the
client formats no per-row SQL."""

BULK_CHUNK_ROWS = 5000
"""Rows per bulk statement (one transaction for the whole call)."""


_SELECT = "SELECT " + ", ".join(f"h.{c}" for c in COLUMNS) + " FROM {s}.flow_run_history h"
READ_RUN = (
    _SELECT + " JOIN {s}.flow_run_history_keys k ON h.flow_id = k.flow_id"
    " AND h.run_id = k.run_id AND h.created_at = k.created_at WHERE k.run_id = %(run_id)s"
)
READ_ALL = _SELECT

TEMPLATES = {"history.write_one": WRITE_ONE, "history.write_many": WRITE_MANY,
             "history.read_run": READ_RUN, "history.read": READ_ALL}


_TEXT = ("flow_name", "status", "state_name", "error_type", "error_message", "deployment_id",
         "parent_run_id")
_TIMES = ("started_at", "ended_at", "created_at")
_INT4_MAX = 2**31 - 1


def _prepare(record: Any, max_bytes: int) -> dict[str, Any]:
    """Validate and encode one write (raises MemoryValidationError naming the field).
    Hot in bulk writes: fields left None cost one attribute read each."""
    if not isinstance(record, FlowRunWrite):
        raise MemoryValidationError(
            "record", f"must be a FlowRunWrite, got {type(record).__name__}")
    item: dict[str, Any] = {
        "flow_id": require_id(record.flow_id, "flow_id"),
        "run_id": require_id(record.run_id, "run_id"),
        "data": to_json(require_dict(record.data, "data"), "data", max_bytes),
    }
    for name in _TEXT:
        value = getattr(record, name)
        item[name] = value if value is None else optional_text(value, name)
    for name in _TIMES:
        value = getattr(record, name)
        item[name] = value if value is None else parse_time(value, name)
    duration = record.duration
    if duration is not None:
        if (isinstance(duration, bool) or not isinstance(duration, (int, float))
                or not math.isfinite(duration) or duration < 0):
            raise MemoryValidationError("duration", f"must be a number >= 0, got {duration!r}")
        duration = float(duration)
    item["duration"] = duration
    run_count = record.run_count
    if run_count is not None and (isinstance(run_count, bool) or not isinstance(run_count, int)
                                  or not 0 <= run_count <= _INT4_MAX):
        raise MemoryValidationError(
            "run_count", f"must be an integer from 0 to {_INT4_MAX}, got {run_count!r}")
    item["run_count"] = run_count
    tags = record.tags
    if tags is not None:
        if isinstance(tags, (str, bytes)) or not isinstance(tags, (list, tuple)) or not all(
                isinstance(tag, str) and "\x00" not in tag for tag in tags):
            raise MemoryValidationError(
                "tags", f"must be a list of strings without NUL, got {tags!r}")
        tags = [require_utf8(tag, "tags") for tag in tags]
    item["tags"] = tags
    parameters = record.parameters
    item["parameters"] = None if parameters is None else to_json(
        optional_dict(parameters, "parameters"), "parameters", max_bytes)
    return item


_JSON_TEXT = frozenset(("data", "parameters"))
"""Columns of a prepared write that already hold JSON text."""


def _json_row(item: dict[str, Any]) -> str:
    """One prepared write as a JSON object of its non-NULL columns (for WRITE_MANY)."""
    parts = []
    for key, value in item.items():
        if value is None:
            continue
        if key in _JSON_TEXT:
            text = value
        elif isinstance(value, str):
            text = encode_basestring(value)
        elif isinstance(value, dt.datetime):
            text = f'"{value.isoformat()}"'
        else:  # duration, run_count, tags: validated, finite, plain JSON
            text = json.dumps(value)
        parts.append(f'"{key}":{text}')
    return "{" + ",".join(parts) + "}"


def _merge(first: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """Two writes of one run in one batch as a single write (same result as in sequence)."""
    merged = dict(first)
    for key, value in later.items():
        if key not in ("data", "created_at") and value is not None:
            merged[key] = value
    data = {**json.loads(first["data"]), **json.loads(later["data"])}
    merged["data"] = codec.raw_text(data, jsonb=True)
    return merged


JSON_COLUMNS = {"parameters": 8, "data": 15}


def row_key(row: Sequence[Any]) -> str:
    """A history row's name in errors: ``flow_id/run_id``."""
    return f"{row[0]}/{row[1]}"


def to_record(row: Sequence[Any]) -> FlowRunRecord:
    """A FlowRunRecord from a row in :data:`COLUMNS` order (a dict literal: hot in reads)."""
    return {
        "flow_id": row[0], "run_id": row[1], "flow_name": row[2], "status": row[3],
        "state_name": row[4], "started_at": opt_iso(row[5]), "ended_at": opt_iso(row[6]),
        "duration": row[7], "parameters": row[8], "tags": list(row[9] or []),
        "error_type": row[10], "error_message": row[11], "deployment_id": row[12],
        "parent_run_id": row[13], "run_count": row[14],
        "data": row[15] if row[15] is not None else {},
        "created_at": iso(row[16]), "updated_at": iso(row[17]),
    }


@dataclasses.dataclass
class HistoryRepo(Repo):
    """write / read of flow-run history rows (the RunHistory protocol); each ``plan_*``
    method returns the :class:`~.plan.Op` both transports run."""

    def plan_write(self, record: FlowRunWrite) -> Op[FlowRunRecord]:
        """Insert or update one run's row and its audit row in one statement."""
        params = _prepare(record, self.store.max_payload_bytes)
        now = now_utc(self.store.clock)
        ids = current_run_ids()
        params.update(now=now, a_flow=ids.flow_run_id, a_task=ids.task_run_id)
        return single(Stmt("history.write_one", params),
                      lambda row: _records([need_row(row)])[0], partitions_at=now)

    def plan_write_many(self, records: Sequence[FlowRunWrite]) -> Op[int] | None:
        """Bulk upsert, all validated first, in one transaction: the rows travel as JSON
        (:data:`WRITE_MANY`), up to :data:`BULK_CHUNK_ROWS` per statement. None when
        ``records`` is empty."""
        if isinstance(records, (str, bytes)) or not isinstance(records, Sequence):
            raise MemoryValidationError(
                "records", f"must be a sequence of FlowRunWrite, got {type(records).__name__}")
        max_bytes = self.store.max_payload_bytes
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for item in prepare_each(records, lambda record: _prepare(record, max_bytes), "records"):
            key = (item["flow_id"], item["run_id"])
            merged[key] = _merge(merged[key], item) if key in merged else item
        if not merged:
            return None
        rows = [_json_row(item) for item in merged.values()]
        now = now_utc(self.store.clock)
        ids = current_run_ids()
        count = len(records)

        def steps() -> Steps[int]:
            for start in range(0, len(rows), BULK_CHUNK_ROWS):
                chunk = "[" + ",".join(rows[start:start + BULK_CHUNK_ROWS]) + "]"
                yield Stmt("history.write_many", {"rows": chunk, "now": now,
                                                  "a_flow": ids.flow_run_id,
                                                  "a_task": ids.task_run_id}, "none")
            return count

        return Op(steps, autocommit=len(rows) <= BULK_CHUNK_ROWS, partitions_at=now)

    def plan_read(
        self,
        flow_id: str | None,
        run_id: str | None = None,
        limit: int = 100,
        *,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        flow_name: str | None = None,
    ) -> Op[list[FlowRunRecord]]:
        """Rows newest first by ``created_at``; ``since`` inclusive, ``until`` exclusive,
        ``flow_name`` an exact match."""
        where = Where(named=True)
        where.add("flow_id", flow_id, require_id, column="h.flow_id")
        run_id = None if run_id is None else require_id(run_id, "run_id")
        where.add("status", status, require_id, column="h.status")
        where.add("since", since, parse_time, column="h.created_at", op=">=")
        where.add("until", until, parse_time, column="h.created_at", op="<")
        where.add("flow_name", flow_name, require_id, column="h.flow_name")
        params = {**where.params,
                  "limit": require_positive_int(limit, "limit", maximum=MAX_READ_LIMIT)}
        if run_id is not None:  # the keys table finds the run; its WHERE continues with AND
            params["run_id"] = run_id
            name, suffix = "history.read_run", where.sql("AND")
        else:
            name, suffix = "history.read", where.sql()
        order = " ORDER BY h.created_at DESC, h.seq DESC LIMIT %(limit)s"
        return single(Stmt(name, params, "all", suffix + order), _records, read_only=True)

    def write_flow_run(self, record: FlowRunWrite) -> FlowRunRecord:
        """See :meth:`plan_write`."""
        return self.run(self.plan_write(record))

    def write_flow_runs(self, records: Sequence[FlowRunWrite]) -> int:
        """See :meth:`plan_write_many`."""
        op = self.plan_write_many(records)
        return 0 if op is None else self.run(op)

    def read_flow_runs(self, flow_id: str | None, run_id: str | None = None,
                       limit: int = 100, **filters: Any) -> list[FlowRunRecord]:
        """See :meth:`plan_read`."""
        return self.run(self.plan_read(flow_id, run_id, limit, **filters))


def _records(rows: Any) -> list[FlowRunRecord]:
    return build_records(rows, to_record, backend="postgres", table="flow_run_history",
                         key=row_key, columns=JSON_COLUMNS)
