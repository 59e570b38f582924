"""Lease locks: the LockManager primitives on a ``memory_locks`` table.

A lease ``(name, owner, expires_at)`` is held until released or until ``expires_at`` (the
store clock's wall time) passes; then any owner may take it. The row outlives its leases,
and ``fencing_token`` is incremented each time the lease is taken, so tokens strictly
increase per lock name. Session-scoped ``pg_advisory_lock`` is not used for the lease
itself: with pooled connections a lease must survive the connection being returned and
must expire after ``ttl_ms`` even when its holder's process died.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from ...validation import MAX_LOCK_TTL_MS, require_id, require_positive_int
from .plan import Op, Repo, Stmt, need_row, single
from .support import audit_params, now_utc

MAX_TTL_MS = MAX_LOCK_TTL_MS

ACQUIRE = (
    "WITH l AS (INSERT INTO {s}.memory_locks AS l (name, owner, fencing_token, expires_at)"
    " VALUES (%(name)s, %(owner)s, 1, %(expires_at)s) ON CONFLICT (name) DO UPDATE SET"
    " owner = EXCLUDED.owner, fencing_token = l.fencing_token + 1,"
    " expires_at = EXCLUDED.expires_at"
    " WHERE l.owner IS NULL OR l.expires_at <= %(now)s OR l.owner = EXCLUDED.owner"
    " RETURNING fencing_token),"
    " audit AS (INSERT INTO {s}.audit_log"
    " (occurred_at, operation, target, flow_run_id, task_run_id, details)"
    " SELECT %(now)s::timestamptz, 'lock.acquire', %(name)s::text, %(a_flow)s::text,"
    " %(a_task)s::text,"
    " jsonb_build_object('fencing_token', l.fencing_token, 'ttl_ms', %(ttl_ms)s::int) FROM l)"
    " SELECT fencing_token FROM l"
)
RELEASE = (
    "WITH l AS (UPDATE {s}.memory_locks SET owner = NULL, expires_at = %(now)s"
    " WHERE name = %(name)s AND owner = %(owner)s AND expires_at > %(now)s"
    " RETURNING fencing_token),"
    " audit AS (INSERT INTO {s}.audit_log"
    " (occurred_at, operation, target, flow_run_id, task_run_id, details)"
    " SELECT %(now)s::timestamptz, 'lock.release', %(name)s::text, %(a_flow)s::text,"
    " %(a_task)s::text,"
    " jsonb_build_object('fencing_token', l.fencing_token) FROM l)"
    " SELECT count(*) FROM l"
)
EXTEND = (
    "UPDATE {s}.memory_locks SET expires_at = %(expires_at)s"
    " WHERE name = %(name)s AND owner = %(owner)s AND expires_at > %(now)s"
)
HELD = (
    "SELECT count(*) FROM {s}.memory_locks"
    " WHERE name = %(name)s AND owner IS NOT NULL AND expires_at > %(now)s"
)
TEMPLATES = {"lock.acquire": ACQUIRE, "lock.release": RELEASE, "lock.extend": EXTEND,
             "lock.held": HELD}


@dataclasses.dataclass
class LockRepo(Repo):
    """try_acquire / release / extend of leases (the LockManager protocol); each ``plan_*``
    method returns the :class:`~.plan.Op` both transports run."""

    def _params(self, name: str, owner: str, ttl_ms: int | None) -> dict[str, Any]:
        now = now_utc(self.store.clock)
        params: dict[str, Any] = {"name": require_id(name, "lock_name"),
                                  "owner": require_id(owner, "owner"), "now": now}
        if ttl_ms is not None:
            ttl_ms = require_positive_int(ttl_ms, "ttl_ms", maximum=MAX_TTL_MS)
            params.update(ttl_ms=ttl_ms, expires_at=now + dt.timedelta(milliseconds=ttl_ms))
        return params

    def plan_acquire(self, name: str, owner: str, ttl_ms: int) -> Op[int | None]:
        """Take the lease if free or expired; the new fencing token, or None if held."""
        params = self._params(name, owner, ttl_ms)
        params.update(audit_params("lock.acquire", params["name"], {}))
        # Retrying is safe: owners are random per attempt, and a retry after an unseen
        # success re-takes the lease for the same owner (with a newer token).
        return single(Stmt("lock.acquire", params),
                      lambda row: None if row is None else int(row[0]),
                      partitions_at=params["now"])

    def plan_release(self, name: str, owner: str) -> Op[bool]:
        """Release the lease if ``owner`` holds it and it has not expired."""
        params = self._params(name, owner, None)
        params.update(audit_params("lock.release", params["name"], {}))
        return single(Stmt("lock.release", params), lambda row: bool(need_row(row)[0]),
                      partitions_at=params["now"])

    def plan_extend(self, name: str, owner: str, ttl_ms: int) -> Op[bool]:
        """Reset the lease to ``ttl_ms`` from now if ``owner`` still holds it."""
        return single(Stmt("lock.extend", self._params(name, owner, ttl_ms), "rowcount"),
                      lambda count: int(count) == 1)

    def plan_is_held(self, name: str) -> Op[bool]:
        """True while some owner holds an unexpired lease on ``name`` (on the primary)."""
        params = {"name": require_id(name, "lock_name"), "now": now_utc(self.store.clock)}
        return single(Stmt("lock.held", params), lambda row: bool(need_row(row)[0]))

    def try_acquire(self, name: str, owner: str, ttl_ms: int) -> int | None:
        """See :meth:`plan_acquire`."""
        return self.run(self.plan_acquire(name, owner, ttl_ms))

    def release(self, name: str, owner: str) -> bool:
        """See :meth:`plan_release`."""
        return self.run(self.plan_release(name, owner))

    def extend(self, name: str, owner: str, ttl_ms: int) -> bool:
        """See :meth:`plan_extend`."""
        return self.run(self.plan_extend(name, owner, ttl_ms))

    def is_held(self, name: str) -> bool:
        """See :meth:`plan_is_held`."""
        return self.run(self.plan_is_held(name))
