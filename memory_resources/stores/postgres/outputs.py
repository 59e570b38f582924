"""Versioned task outputs: each write adds version N+1 of its ``task_id``, audited in-statement.

``task_output_heads`` holds the latest version per task; its row lock serialises concurrent
writers of the same task so versions are gap-free and never collide.

Exactly once per task run: a write carrying a ``task_run_id`` first inserts that id into
``task_output_keys`` (primary key) with ``ON CONFLICT DO NOTHING``, in the same statement as
the version bump, the output row and the audit row. A second write of the same task run, from
any process or machine, inserts nothing (it waits for a concurrent first write to commit, then
finds the key) and returns the stored record.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ...batching import output_writes, prepare_each
from ...decoding import build_records
from ...records import JSONDict, TaskOutputRecord, TaskOutputWrite
from ...validation import optional_dict, optional_id, require_id, require_positive_int
from .plan import Op, Repo, Steps, Stmt, need_row, single
from .support import MAX_READ_LIMIT, audit_params, iso, now_utc, to_json

WRITE = (
    "WITH k AS (INSERT INTO {s}.task_output_keys (task_run_id, task_id, created_at)"
    " SELECT %(task_run_id)s::text, %(task_id)s::text, %(now)s::timestamptz"
    " WHERE %(task_run_id)s::text IS NOT NULL"
    " ON CONFLICT (task_run_id) DO NOTHING RETURNING task_run_id),"
    " go AS (SELECT 1 AS one FROM k UNION ALL SELECT 1 WHERE %(task_run_id)s::text IS NULL),"
    " v AS (INSERT INTO {s}.task_output_heads AS t (task_id, latest_version)"
    " SELECT %(task_id)s::text, 1 FROM go ON CONFLICT (task_id)"
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
"""One statement: claim the task run's key (if any), bump the version, insert, audit. No
row back means the task run's output was already stored."""
BY_TASK_RUN = (
    "SELECT task_id, version, output, metadata, task_run_id, flow_run_id, created_at"
    " FROM {s}.task_outputs WHERE task_run_id = %(task_run_id)s ORDER BY version LIMIT 1"
)
SELECT = (
    "SELECT version, output, metadata, task_run_id, flow_run_id, created_at"
    " FROM {s}.task_outputs WHERE task_id = %(task_id)s ORDER BY version DESC LIMIT %(limit)s"
)
TEMPLATES = {"output.write": WRITE, "output.select": SELECT, "output.by_task_run": BY_TASK_RUN}


@dataclasses.dataclass
class OutputRepo(Repo):
    """write / read / list of task outputs (the TaskOutputs protocol); each ``plan_*``
    method returns the :class:`~.plan.Op` both transports run."""

    def _write_steps(self, params: dict[str, Any], now: Any
                     ) -> Steps[tuple[TaskOutputRecord, bool]]:
        """Write one output; when its task run's output is already stored, read that."""
        row = yield Stmt("output.write", params)
        if row is None:  # this task run's output is already stored
            stored = yield Stmt("output.by_task_run", {"task_run_id": params["task_run_id"]})
            return _stored_record(need_row(stored)), False
        return TaskOutputRecord(
            task_id=params["task_id"], version=row[0], output=row[1], metadata=row[2],
            task_run_id=params["task_run_id"], flow_run_id=params["flow_run_id"],
            created_at=iso(now)), True

    def plan_write_once(
        self,
        task_id: str,
        output: Any,
        metadata: JSONDict | None = None,
        *,
        task_run_id: str | None = None,
        flow_run_id: str | None = None,
    ) -> Op[tuple[TaskOutputRecord, bool]]:
        """Store a new version of ``task_id``'s output, plus whether this call stored it
        (False: the task run's output was already stored, and that record is returned).

        A write with a ``task_run_id`` is idempotent, so it may be retried after a
        connection failure; one without is not."""
        params = self._prepare(TaskOutputWrite(task_id, output, metadata,
                                               task_run_id=task_run_id,
                                               flow_run_id=flow_run_id))
        now = now_utc(self.store.clock)
        audit = audit_params("output.write", params["task_id"], {})
        params.update(now=now, a_flow=audit["a_flow"], a_task=audit["a_task"])
        return Op(lambda: self._write_steps(params, now),
                  idempotent=params["task_run_id"] is not None, partitions_at=now)

    def plan_write_many(self, items: Sequence[TaskOutputWrite]
                        ) -> Op[list[TaskOutputRecord]] | None:
        """:meth:`plan_write_once` for many items in ONE transaction (all or nothing); an
        item whose ``task_run_id`` is already stored returns the stored record. Retried
        after a connection failure only when every item has a ``task_run_id``. None when
        there is no item."""
        prepared = prepare_each(output_writes(items), self._prepare, "items")
        if not prepared:
            return None
        now = now_utc(self.store.clock)
        audit = audit_params("output.write", prepared[0]["task_id"], {})
        for params in prepared:
            params.update(now=now, a_flow=audit["a_flow"], a_task=audit["a_task"])

        def steps() -> Steps[list[TaskOutputRecord]]:
            records = []
            for params in prepared:
                record, _ = yield from self._write_steps(params, now)
                records.append(record)
            return records

        idempotent = all(params["task_run_id"] is not None for params in prepared)
        return Op(steps, idempotent=idempotent, autocommit=False, partitions_at=now)

    def _prepare(self, item: TaskOutputWrite) -> dict[str, Any]:
        """Validate and encode one item as the write's parameters."""
        max_bytes = self.store.max_payload_bytes
        return {
            "task_id": require_id(item.task_id, "task_id"),
            "metadata": to_json(optional_dict(item.metadata, "metadata"), "metadata",
                                max_bytes),
            "task_run_id": optional_id(item.task_run_id, "task_run_id"),
            "flow_run_id": optional_id(item.flow_run_id, "flow_run_id"),
            "output": to_json(item.output, "output", max_bytes),
        }

    def plan_select(self, task_id: str, limit: int) -> Op[list[TaskOutputRecord]]:
        """Versions of ``task_id`` newest first, at most ``limit``."""
        task_id = require_id(task_id, "task_id")
        limit = require_positive_int(limit, "limit", maximum=MAX_READ_LIMIT)

        def decode(rows: Any) -> list[TaskOutputRecord]:
            return build_records(
                rows, lambda r: TaskOutputRecord(
                    task_id=task_id, version=r[0], output=r[1], metadata=r[2],
                    task_run_id=r[3], flow_run_id=r[4], created_at=iso(r[5])),
                backend="postgres", table="task_outputs", key=lambda r: f"{task_id}/v{r[0]}",
                columns={"output": 1, "metadata": 2})

        return single(Stmt("output.select", {"task_id": task_id, "limit": limit}, "all"),
                      decode, read_only=True)

    def write_task_output(self, task_id: str, output: Any, metadata: JSONDict | None = None,
                          **ids: Any) -> TaskOutputRecord:
        """Store a new version of ``task_id``'s output; once per ``task_run_id``."""
        return self.run(self.plan_write_once(task_id, output, metadata, **ids))[0]

    def write_task_output_once(self, task_id: str, output: Any,
                               metadata: JSONDict | None = None, **ids: Any
                               ) -> tuple[TaskOutputRecord, bool]:
        """See :meth:`plan_write_once`."""
        return self.run(self.plan_write_once(task_id, output, metadata, **ids))

    def write_task_outputs(self, items: Sequence[TaskOutputWrite]) -> list[TaskOutputRecord]:
        """See :meth:`plan_write_many`."""
        op = self.plan_write_many(items)
        return [] if op is None else self.run(op)

    def read_task_output(self, task_id: str) -> TaskOutputRecord | None:
        """The latest version, or None."""
        found = self.run(self.plan_select(task_id, 1))
        return found[0] if found else None

    def list_task_outputs(self, task_id: str, limit: int = 100) -> list[TaskOutputRecord]:
        """Versions newest first, at most ``limit``."""
        return self.run(self.plan_select(task_id, limit))


def _stored_record(row: tuple[Any, ...]) -> TaskOutputRecord:
    """A TaskOutputRecord from a :data:`BY_TASK_RUN` row (CorruptRecordError if its JSON
    could not be decoded)."""
    return build_records(
        [row], lambda r: TaskOutputRecord(task_id=r[0], version=r[1], output=r[2],
                                          metadata=r[3], task_run_id=r[4], flow_run_id=r[5],
                                          created_at=iso(r[6])),
        backend="postgres", table="task_outputs", key=lambda r: f"{r[0]}/v{r[1]}",
        columns={"output": 2, "metadata": 3})[0]
