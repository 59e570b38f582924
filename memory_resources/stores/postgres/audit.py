"""The audit trail reader. Rows are written by each write's own statement (see support)."""

from __future__ import annotations

import dataclasses
from typing import Any

from ...records import AuditRecord
from ...validation import require_id, require_positive_int
from ..where import Where
from .pool import Cursor, execute_prepared
from .support import MAX_READ_LIMIT, iso, parse_time

SELECT = (
    "SELECT id, occurred_at, operation, target, flow_run_id, task_run_id, details"
    " FROM {s}.audit_log"
)
TEMPLATES = {"audit.select": SELECT}


@dataclasses.dataclass
class AuditReader:
    """Reads the audit trail newest first (the AuditLog protocol)."""

    store: Any

    def read_audit(
        self,
        *,
        operation: str | None = None,
        target: str | None = None,
        flow_run_id: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """Audit rows newest first, filtered by the given fields (``since`` inclusive)."""
        where = Where(named=True)
        where.add("operation", operation, require_id)
        where.add("target", target, require_id)
        where.add("flow_run_id", flow_run_id, require_id)
        where.add("since", since, parse_time, column="occurred_at", op=">=")
        params = {**where.params,
                  "limit": require_positive_int(limit, "limit", maximum=MAX_READ_LIMIT)}
        statement = (self.store.statement("audit.select") + where.sql()
                     + " ORDER BY occurred_at DESC, id DESC LIMIT %(limit)s")

        enabled = self.store.config.prepared_statements

        def run(cur: Cursor) -> list[tuple[Any, ...]]:
            execute_prepared(cur, "audit_select", statement, params, enabled=enabled)
            rows: list[tuple[Any, ...]] = cur.fetchall()
            return rows

        return [
            AuditRecord(id=r[0], occurred_at=iso(r[1]), operation=r[2], target=r[3],
                        flow_run_id=r[4], task_run_id=r[5], details=r[6])
            for r in self.store.pool.run(run, read_only=True, single_statement=True)
        ]
