"""Lease locks in the SQLite file: the LockManager primitives.

A lease row ``(name, owner, expires_at)`` is held until released or until ``expires_at``
(epoch milliseconds of the shared wall clock) passes, after which any owner may take it.
Taking and releasing run in ``BEGIN IMMEDIATE`` transactions, which SQLite serialises
across threads and processes on one machine. The fencing token comes from
``memory_lock_fencing``, a counter per name that only ever increases (it outlives the
lease row).
"""

from __future__ import annotations

from ...clock import Clock, utc_iso
from ...validation import MAX_LOCK_TTL_MS, require_id, require_positive_int
from .audit import write_audit
from .connection import Database

MAX_TTL_MS = MAX_LOCK_TTL_MS

SELECT_LEASE = "SELECT expires_at FROM memory_locks WHERE name = ?"
NEXT_TOKEN = (
    "INSERT INTO memory_lock_fencing (name, token) VALUES (?, 1)"
    " ON CONFLICT (name) DO UPDATE SET token = memory_lock_fencing.token + 1"
    " RETURNING token"
)
TAKE_LEASE = (
    "INSERT INTO memory_locks (name, owner, expires_at, fencing_token, acquired_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
    " expires_at = excluded.expires_at, fencing_token = excluded.fencing_token,"
    " acquired_at = excluded.acquired_at"
)
RELEASE_LEASE = "DELETE FROM memory_locks WHERE name = ? AND owner = ? RETURNING expires_at"
EXTEND_LEASE = (
    "UPDATE memory_locks SET expires_at = ? WHERE name = ? AND owner = ? AND expires_at > ?"
)


class LockRepo:
    """try_acquire / release / extend of leases."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock.time() * 1000)

    def _now(self) -> tuple[int, str]:
        now = self._clock.time()
        return int(now * 1000), utc_iso(now)

    def try_acquire(self, name: str, owner: str, ttl_ms: int) -> int | None:
        """Take the lease if free or expired; the new fencing token, or None if held."""
        name = require_id(name, "lock_name")
        owner = require_id(owner, "owner")
        ttl_ms = require_positive_int(ttl_ms, "ttl_ms", maximum=MAX_TTL_MS)
        # A cheap read first, so contenders polling a held lock never take the write lock.
        with self._db.read("try_acquire") as conn:
            row = conn.execute(SELECT_LEASE, (name,)).fetchone()
        if row is not None and row[0] > self._now_ms():
            return None
        with self._db.write("try_acquire") as conn:
            now_ms, stamp = self._now()
            row = conn.execute(SELECT_LEASE, (name,)).fetchone()
            if row is not None and row[0] > now_ms:
                return None
            token: int = conn.execute(NEXT_TOKEN, (name,)).fetchone()[0]
            conn.execute(TAKE_LEASE, (name, owner, now_ms + ttl_ms, token, stamp))
            write_audit(conn, stamp, "lock.acquire", name,
                        {"fencing_token": token, "ttl_ms": ttl_ms})
        return token

    def release(self, name: str, owner: str) -> bool:
        """Release the lease if ``owner`` holds it and it has not expired."""
        name = require_id(name, "lock_name")
        owner = require_id(owner, "owner")
        with self._db.write("release") as conn:
            now_ms, stamp = self._now()
            row = conn.execute(RELEASE_LEASE, (name, owner)).fetchone()
            released = row is not None and row[0] > now_ms
            if released:
                write_audit(conn, stamp, "lock.release", name, {})
        return released

    def extend(self, name: str, owner: str, ttl_ms: int) -> bool:
        """Reset the lease to ``ttl_ms`` from now if ``owner`` still holds it."""
        name = require_id(name, "lock_name")
        owner = require_id(owner, "owner")
        ttl_ms = require_positive_int(ttl_ms, "ttl_ms", maximum=MAX_TTL_MS)
        with self._db.write("extend") as conn:
            now_ms = self._now_ms()
            updated: int = conn.execute(
                EXTEND_LEASE, (now_ms + ttl_ms, name, owner, now_ms)
            ).rowcount
        return updated == 1

    def is_held(self, name: str) -> bool:
        """True while some owner holds an unexpired lease on ``name`` (one read)."""
        name = require_id(name, "lock_name")
        with self._db.read("is_held") as conn:
            row = conn.execute(SELECT_LEASE, (name,)).fetchone()
        return row is not None and row[0] > self._now_ms()
