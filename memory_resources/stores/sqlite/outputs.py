"""Versioned task outputs: each write adds version N+1 of its ``task_id``."""

from __future__ import annotations

from typing import Any

from ...clock import Clock, utc_iso
from ...codec import decode, encode
from ...records import JSONDict, TaskOutputRecord
from ...validation import optional_dict, optional_id, require_id, require_positive_int
from .audit import write_audit
from .connection import Database

MAX_READ_LIMIT = 10_000

INSERT_OUTPUT = (
    "INSERT INTO task_outputs (task_id, version, output, metadata, task_run_id, flow_run_id,"
    " created_at) SELECT ?1, COALESCE(MAX(version), 0) + 1, ?2, ?3, ?4, ?5, ?6"
    " FROM task_outputs WHERE task_id = ?1 RETURNING version"
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
        """Store a new version of ``task_id``'s output."""
        task_id = require_id(task_id, "task_id")
        meta = optional_dict(metadata, "metadata")
        task_run_id = optional_id(task_run_id, "task_run_id")
        flow_run_id = optional_id(flow_run_id, "flow_run_id")
        output_text = encode(output, field="output", max_bytes=self._max)
        meta_text = encode(meta, field="metadata", max_bytes=self._max)
        stamp = utc_iso(self._clock.time())
        with self._db.write("write_task_output") as conn:
            version: int = conn.execute(
                INSERT_OUTPUT,
                (task_id, output_text, meta_text, task_run_id, flow_run_id, stamp),
            ).fetchone()[0]
            write_audit(conn, stamp, "output.write", task_id,
                        {"version": version, "task_run_id": task_run_id})
        return TaskOutputRecord(
            task_id=task_id, version=version, output=decode(output_text),
            metadata=decode(meta_text), task_run_id=task_run_id, flow_run_id=flow_run_id,
            created_at=stamp,
        )

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
        return [
            TaskOutputRecord(
                task_id=task_id, version=row[0], output=decode(row[1]),
                metadata=decode(row[2]), task_run_id=row[3], flow_run_id=row[4],
                created_at=row[5],
            )
            for row in rows
        ]
