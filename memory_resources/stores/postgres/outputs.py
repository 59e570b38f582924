"""Versioned task outputs: each write adds version N+1 of its ``task_id``, audited in-statement.

``task_output_heads`` holds the latest version per task; its row lock serialises concurrent
writers of the same task so versions are gap-free and never collide.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ...records import JSONDict, TaskOutputRecord
from ...validation import optional_dict, optional_id, require_id, require_positive_int
from .pool import Cursor, execute_prepared
from .support import MAX_READ_LIMIT, audit_params, iso, now_utc, one, to_json

WRITE = (
    "WITH v AS (INSERT INTO {s}.task_output_heads AS t (task_id, latest_version)"
    " VALUES (%(task_id)s, 1) ON CONFLICT (task_id)"
    " DO UPDATE SET latest_version = t.latest_version + 1 RETURNING latest_version),"
    " o AS (INSERT INTO {s}.task_outputs"
    " (task_id, version, output, metadata, task_run_id, flow_run_id, created_at)"
    " SELECT %(task_id)s::text, latest_version, %(output)s::jsonb, %(metadata)s::jsonb,"
    " %(task_run_id)s::text, %(flow_run_id)s::text, %(now)s::timestamptz FROM v"
    " RETURNING version, output, metadata),"
    " audit AS (INSERT INTO {s}.audit_log"
    " (occurred_at, operation, target, flow_run_id, task_run_id, details)"
    " SELECT %(now)s::timestamptz, 'output.write', %(task_id)s::text, %(a_flow)s::text,"
    " %(a_task)s::text,"
    " jsonb_build_object('version', o.version, 'task_run_id', %(task_run_id)s::text) FROM o)"
    " SELECT version, output, metadata FROM o"
)
SELECT = (
    "SELECT version, output, metadata, task_run_id, flow_run_id, created_at"
    " FROM {s}.task_outputs WHERE task_id = %(task_id)s ORDER BY version DESC LIMIT %(limit)s"
)
TEMPLATES = {"output.write": WRITE, "output.select": SELECT}


@dataclasses.dataclass
class OutputRepo:
    """write / read / list of task outputs (the TaskOutputs protocol)."""

    store: Any

    def write_task_output(
        self,
        task_id: str,
        output: Any,
        metadata: JSONDict | None = None,
        *,
        task_run_id: str | None = None,
        flow_run_id: str | None = None,
    ) -> TaskOutputRecord:
        """Store a new version of ``task_id``'s output (not retried: it is not idempotent)."""
        max_bytes = self.store.max_payload_bytes
        params: dict[str, Any] = {
            "task_id": require_id(task_id, "task_id"),
            "metadata": to_json(optional_dict(metadata, "metadata"), "metadata", max_bytes),
            "task_run_id": optional_id(task_run_id, "task_run_id"),
            "flow_run_id": optional_id(flow_run_id, "flow_run_id"),
            "output": to_json(output, "output", max_bytes),
        }
        now = now_utc(self.store.clock)
        audit = audit_params("output.write", params["task_id"], {})
        params.update(now=now, a_flow=audit["a_flow"], a_task=audit["a_task"])
        statement = self.store.statement("output.write")
        self.store.ensure_partitions(now)

        enabled = self.store.config.prepared_statements

        def run(cur: Cursor) -> tuple[Any, ...]:
            execute_prepared(cur, "output_write", statement, params, enabled=enabled)
            return one(cur)

        version, stored_output, stored_meta = self.store.pool.run(
            run, idempotent=False, single_statement=True)
        return TaskOutputRecord(
            task_id=params["task_id"], version=version, output=stored_output,
            metadata=stored_meta, task_run_id=params["task_run_id"],
            flow_run_id=params["flow_run_id"], created_at=iso(now),
        )

    def read_task_output(self, task_id: str) -> TaskOutputRecord | None:
        """The latest version, or None."""
        found = self._select(require_id(task_id, "task_id"), 1)
        return found[0] if found else None

    def list_task_outputs(self, task_id: str, limit: int = 100) -> list[TaskOutputRecord]:
        """Versions newest first, at most ``limit``."""
        task_id = require_id(task_id, "task_id")
        return self._select(task_id, require_positive_int(limit, "limit",
                                                          maximum=MAX_READ_LIMIT))

    def _select(self, task_id: str, limit: int) -> list[TaskOutputRecord]:
        statement = self.store.statement("output.select")

        enabled = self.store.config.prepared_statements

        def run(cur: Cursor) -> list[tuple[Any, ...]]:
            execute_prepared(cur, "output_select", statement,
                             {"task_id": task_id, "limit": limit}, enabled=enabled)
            rows: list[tuple[Any, ...]] = cur.fetchall()
            return rows

        return [
            TaskOutputRecord(task_id=task_id, version=r[0], output=r[1], metadata=r[2],
                             task_run_id=r[3], flow_run_id=r[4], created_at=iso(r[5]))
            for r in self.store.pool.run(run, read_only=True, single_statement=True)
        ]
