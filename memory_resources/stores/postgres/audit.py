"""The audit trail reader. Rows are written by each write's own statement (see support)."""

from __future__ import annotations

import dataclasses
from typing import Any

from ...decoding import build_records
from ...records import AuditRecord
from ...validation import require_id, require_positive_int
from ..where import Where
from .plan import Op, Repo, Stmt, single
from .support import MAX_READ_LIMIT, iso, parse_time

SELECT = (
    "SELECT id, occurred_at, operation, target, flow_run_id, task_run_id, details"
    " FROM {s}.audit_log"
)
TEMPLATES = {"audit.select": SELECT}


@dataclasses.dataclass
class AuditReader(Repo):
    """Reads the audit trail newest first (the AuditLog protocol)."""

    def plan_read(
        self,
        *,
        operation: str | None = None,
        target: str | None = None,
        flow_run_id: str | None = None,
        since: str | None = None,
        limit: int = 100,
    ) -> Op[list[AuditRecord]]:
        """Audit rows newest first, filtered by the given fields (``since`` inclusive)."""
        where = Where(named=True)
        where.add("operation", operation, require_id)
        where.add("target", target, require_id)
        where.add("flow_run_id", flow_run_id, require_id)
        where.add("since", since, parse_time, column="occurred_at", op=">=")
        params = {**where.params,
                  "limit": require_positive_int(limit, "limit", maximum=MAX_READ_LIMIT)}
        suffix = where.sql() + " ORDER BY occurred_at DESC, id DESC LIMIT %(limit)s"
        return single(Stmt("audit.select", params, "all", suffix), _records, read_only=True)

    def read_audit(self, **filters: Any) -> list[AuditRecord]:
        """See :meth:`plan_read`."""
        return self.run(self.plan_read(**filters))


def _records(rows: Any) -> list[AuditRecord]:
    return build_records(
        rows, lambda r: AuditRecord(id=r[0], occurred_at=iso(r[1]), operation=r[2],
                                    target=r[3], flow_run_id=r[4], task_run_id=r[5],
                                    details=r[6]),
        backend="postgres", table="audit_log", key=lambda r: str(r[0]), columns={"details": 6})
