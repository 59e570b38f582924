"""Versioned task outputs: each write adds version N+1 of its ``task_id``.

Exactly once per task run: a write carrying a ``task_run_id`` inserts it into
``task_output_keys`` (primary key, ``ON CONFLICT DO NOTHING``) first, in the write
transaction (SQLite runs one writer at a time across processes); when the key exists the
write stores nothing and returns the stored record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...batching import output_writes, prepare_each
from ...clock import Clock, utc_iso
from ...codec import decode, encode
from ...decoding import build_records
from ...records import JSONDict, TaskOutputRecord, TaskOutputWrite
from ...validation import optional_dict, optional_id, require_id, require_positive_int
from .audit import write_audit
from .connection import Database

MAX_READ_LIMIT = 10_000
_Prepared = tuple[str, str, str, "str | None", "str | None"]

INSERT_OUTPUT = (
    "INSERT INTO task_outputs (task_id, version, output, metadata, task_run_id, flow_run_id,"
    " created_at) SELECT ?1, COALESCE(MAX(version), 0) + 1, ?2, ?3, ?4, ?5, ?6"
    " FROM task_outputs WHERE task_id = ?1 RETURNING version"
)
CLAIM_KEY = (
    "INSERT INTO task_output_keys (task_run_id, task_id, created_at) VALUES (?, ?, ?)"
    " ON CONFLICT (task_run_id) DO NOTHING RETURNING task_run_id"
)
_BY_TASK_RUN = (
    "SELECT task_id, version, output, metadata, task_run_id, flow_run_id, created_at"
    " FROM task_outputs WHERE task_run_id = ? ORDER BY version LIMIT 1"
)
_SELECT = (
    "SELECT version, output, metadata, task_run_id, flow_run_id, created_at FROM task_outputs"
    " WHERE task_id = ? ORDER BY version DESC LIMIT ?"
)


class OutputRepo:
    """write / read / list of task outputs; implements the TaskOutputs protocol."""

    def __init__(self, db: Database, clock: Clock, max_payload_bytes: int) -> None:
        self._db = db
        self._clock = clock
        self._max = max_payload_bytes

    def write_task_output(
        self,
        task_id: str,
        output: Any,
        metadata: JSONDict | None = None,
        *,
        task_run_id: str | None = None,
        flow_run_id: str | None = None,
    ) -> TaskOutputRecord:
        """Store a new version of ``task_id``'s output; once per ``task_run_id``."""
        return self.write_task_output_once(task_id, output, metadata, task_run_id=task_run_id,
                                           flow_run_id=flow_run_id)[0]

    def write_task_output_once(
        self,
        task_id: str,
        output: Any,
        metadata: JSONDict | None = None,
        *,
        task_run_id: str | None = None,
        flow_run_id: str | None = None,
    ) -> tuple[TaskOutputRecord, bool]:
        """:meth:`write_task_output` plus whether this call stored it (False: the output of
        ``task_run_id`` was already stored; that record is returned)."""
        item = self._prepare(TaskOutputWrite(task_id, output, metadata, task_run_id,
                                             flow_run_id))
        return self._write_all([item], "write_task_output")[0]

    def write_task_outputs(self, items: Sequence[TaskOutputWrite]) -> list[TaskOutputRecord]:
        """:meth:`write_task_output` for many items in ONE transaction (all or nothing);
        an item whose ``task_run_id`` is already stored returns the stored record."""
        prepared = prepare_each(output_writes(items), self._prepare, "items")
        if not prepared:
            return []
        return [record for record, _ in self._write_all(prepared, "write_task_outputs")]

    def _prepare(self, item: TaskOutputWrite) -> _Prepared:
        """Validate and encode one write: (task_id, output, metadata, task run, flow run)."""
        task_id = require_id(item.task_id, "task_id")
        meta = optional_dict(item.metadata, "metadata")
        task_run_id = optional_id(item.task_run_id, "task_run_id")
        flow_run_id = optional_id(item.flow_run_id, "flow_run_id")
        return (task_id, encode(item.output, field="output", max_bytes=self._max),
                encode(meta, field="metadata", max_bytes=self._max), task_run_id, flow_run_id)

    def _write_all(self, prepared: list[_Prepared], action: str
                   ) -> list[tuple[TaskOutputRecord, bool]]:
        """Write each item once per task run, in one transaction; (record, stored) each."""
        stamp = utc_iso(self._clock.time())
        results = []
        with self._db.write(action) as conn:
            for task_id, output_text, meta_text, task_run_id, flow_run_id in prepared:
                if task_run_id is not None and conn.execute(
                    CLAIM_KEY, (task_run_id, task_id, stamp)
                ).fetchone() is None:
                    row = conn.execute(_BY_TASK_RUN, (task_run_id,)).fetchone()
                    results.append((build_records(
                        [row], lambda r: TaskOutputRecord(
                            task_id=r[0], version=r[1], output=decode(r[2]),
                            metadata=decode(r[3]), task_run_id=r[4], flow_run_id=r[5],
                            created_at=r[6]),
                        backend="sqlite", table="task_outputs",
                        key=lambda r: f"{r[0]}/v{r[1]}", columns={"output": 2, "metadata": 3},
                    )[0], False))
                    continue
                version: int = conn.execute(
                    INSERT_OUTPUT,
                    (task_id, output_text, meta_text, task_run_id, flow_run_id, stamp),
                ).fetchone()[0]
                write_audit(conn, stamp, "output.write", task_id,
                            {"version": version, "task_run_id": task_run_id})
                results.append((TaskOutputRecord(
                    task_id=task_id, version=version, output=decode(output_text),
                    metadata=decode(meta_text), task_run_id=task_run_id,
                    flow_run_id=flow_run_id, created_at=stamp,
                ), True))
        return results

    def read_task_output(self, task_id: str) -> TaskOutputRecord | None:
        """The latest version of ``task_id``'s output, or None."""
        found = self._select(require_id(task_id, "task_id"), 1)
        return found[0] if found else None

    def list_task_outputs(self, task_id: str, limit: int = 100) -> list[TaskOutputRecord]:
        """Versions newest first, at most ``limit``."""
        task_id = require_id(task_id, "task_id")
        return self._select(task_id, require_positive_int(limit, "limit",
                                                          maximum=MAX_READ_LIMIT))

    def _select(self, task_id: str, limit: int) -> list[TaskOutputRecord]:
        with self._db.read("read_task_output") as conn:
            rows = conn.execute(_SELECT, (task_id, limit)).fetchall()
        return build_records(
            rows, lambda row: TaskOutputRecord(
                task_id=task_id, version=row[0], output=decode(row[1]),
                metadata=decode(row[2]), task_run_id=row[3], flow_run_id=row[4],
                created_at=row[5]),
            backend="sqlite", table="task_outputs", key=lambda row: f"{task_id}/v{row[0]}",
            columns={"output": 1, "metadata": 2})
