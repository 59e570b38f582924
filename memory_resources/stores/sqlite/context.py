"""Agent context rows with TTL, and the lazy purge of expired contexts and their events.

A context whose ``expires_at`` has passed is invisible at once: every read compares it with
the clock. The row (and the context's events) stays in the file until it is purged: when
the same context is written again, and by a sweep over all expired contexts that runs at
most every ``purge_interval`` seconds after a write (or on :meth:`ContextRepo.purge_expired`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

from ...batching import context_pairs, id_list, prepare_each
from ...clock import Clock, utc_iso
from ...codec import decode, encode
from ...decoding import build_records
from ...errors import BackendError
from ...log import get_logger
from ...records import ContextRecord, JSONDict
from ...validation import require_dict, require_id, require_ttl
from .audit import write_audit
from .connection import Database, raise_backend_error

_log = get_logger(__name__)

DELETE_EXPIRED_ONE = (
    "DELETE FROM memory_context WHERE context_id = ? AND expires_at IS NOT NULL"
    " AND expires_at <= ?"
)
DELETE_EVENTS_OF = "DELETE FROM memory_events WHERE context_id = ?"
UPSERT_CONTEXT = (
    "INSERT INTO memory_context (context_id, data, created_at, updated_at, version, ttl,"
    " expires_at) VALUES (?1, ?2, ?3, ?3, 1, ?4, ?5)"
    " ON CONFLICT (context_id) DO UPDATE SET data = excluded.data,"
    " updated_at = excluded.updated_at, version = memory_context.version + 1,"
    " ttl = excluded.ttl, expires_at = excluded.expires_at"
    " RETURNING version, created_at"
)
SELECT_CONTEXT = (
    "SELECT data, created_at, updated_at, version, ttl, expires_at FROM memory_context"
    " WHERE context_id = ? AND (expires_at IS NULL OR expires_at > ?)"
)
DELETE_CONTEXT = "DELETE FROM memory_context WHERE context_id = ? RETURNING expires_at"
PURGE_EVENTS = (
    "DELETE FROM memory_events WHERE context_id IN (SELECT context_id FROM memory_context"
    " WHERE expires_at IS NOT NULL AND expires_at <= ?)"
)
PURGE_CONTEXTS = (
    "DELETE FROM memory_context WHERE expires_at IS NOT NULL AND expires_at <= ?"
)


def drop_if_expired(conn: sqlite3.Connection, context_id: str, now: float) -> None:
    """Inside a write: delete ``context_id`` and its events if the context has expired."""
    if conn.execute(DELETE_EXPIRED_ONE, (context_id, now)).rowcount:
        conn.execute(DELETE_EVENTS_OF, (context_id,))


class Purger:
    """Runs the sweep of expired contexts at most every ``interval`` seconds."""

    def __init__(self, db: Database, clock: Clock, interval: float) -> None:
        self._db = db
        self._clock = clock
        self.interval = interval
        self._next = clock.monotonic() + interval
        self._lock = threading.Lock()

    def maybe_purge(self) -> None:
        """Purge if the interval has elapsed since the last sweep (cheap when it has not).

        Never raises: it runs after a write that already committed, so a failed sweep (e.g.
        the file is busy) is logged and left to the next interval.
        """
        if self._clock.monotonic() < self._next:
            return
        with self._lock:
            if self._clock.monotonic() < self._next:
                return
            self._next = self._clock.monotonic() + self.interval
        try:
            self.purge()
        except BackendError as exc:  # best effort: the write that triggered it succeeded
            _log.warning("purge of expired contexts failed; retried later", error=str(exc))

    def purge(self) -> int:
        """Delete every expired context and its events now; returns contexts removed."""
        now = self._clock.time()
        with self._db.write("purging expired contexts") as conn:
            conn.execute(PURGE_EVENTS, (now,))
            removed: int = conn.execute(PURGE_CONTEXTS, (now,)).rowcount
        return removed


class ContextRepo:
    """set / get / clear of contexts; implements the ContextStore protocol's semantics."""

    def __init__(self, db: Database, clock: Clock, purger: Purger, max_payload_bytes: int) -> None:
        self._db = db
        self._clock = clock
        self._purger = purger
        self._max = max_payload_bytes

    def _prepare(self, context_id: Any, data: Any, ttl: Any) -> tuple[str, str, int | None]:
        """The validated id, encoded data and TTL of one write."""
        context_id = require_id(context_id, "context_id")
        data = require_dict(data, "data")
        ttl = require_ttl(ttl)
        return context_id, encode(data, field="data", max_bytes=self._max), ttl

    def _write(self, conn: sqlite3.Connection, context_id: str, payload: str, ttl: int | None,
               now: float, stamp: str) -> ContextRecord:
        """One validated write and its audit row, inside the caller's transaction."""
        expires_at = now + ttl if ttl is not None else None
        drop_if_expired(conn, context_id, now)
        version, created_at = conn.execute(
            UPSERT_CONTEXT, (context_id, payload, stamp, ttl, expires_at)
        ).fetchone()
        write_audit(conn, stamp, "context.set", context_id, {"version": version, "ttl": ttl})
        return ContextRecord(
            context_id=context_id, data=decode(payload), created_at=created_at,
            updated_at=stamp, version=version, ttl=ttl,
            expires_at=utc_iso(expires_at) if expires_at is not None else None,
        )

    def set_context(
        self, context_id: str, data: JSONDict, ttl: int | None = None
    ) -> ContextRecord:
        """Store ``data`` under ``context_id`` (version +1); ``ttl`` seconds or None."""
        context_id, payload, ttl = self._prepare(context_id, data, ttl)
        now = self._clock.time()
        with self._db.write("set_context") as conn:
            record = self._write(conn, context_id, payload, ttl, now, utc_iso(now))
        self._purger.maybe_purge()
        return record

    def set_contexts(self, items: Any, ttl: int | None = None) -> list[ContextRecord]:
        """:meth:`set_context` for many contexts in ONE transaction (all or nothing)."""
        pairs = context_pairs(items)
        require_ttl(ttl)
        prepared = prepare_each(pairs, lambda pair: self._prepare(pair[0], pair[1], ttl),
                                "items")
        if not prepared:
            return []
        now = self._clock.time()
        stamp = utc_iso(now)
        with self._db.write("set_contexts") as conn:
            records = [self._write(conn, cid, payload, seconds, now, stamp)
                       for cid, payload, seconds in prepared]
        self._purger.maybe_purge()
        return records

    def get_context(self, context_id: str) -> ContextRecord | None:
        """The stored context, or None when absent or expired."""
        context_id = require_id(context_id, "context_id")
        conn = self._db.conn()
        try:
            row = conn.execute(SELECT_CONTEXT, (context_id, self._clock.time())).fetchone()
        except sqlite3.Error as exc:
            raise_backend_error(exc, "get_context")
        if row is None:
            return None
        return build_records([row], lambda r: _record(context_id, r), backend="sqlite",
                             table="memory_context", key=lambda r: context_id,
                             columns=_JSON_COLUMNS)[0]

    def get_contexts(self, context_ids: Any) -> list[ContextRecord | None]:
        """:meth:`get_context` for many ids, in order, from one read snapshot."""
        ids = id_list(context_ids, "context_ids")
        now = self._clock.time()
        with self._db.snapshot("get_contexts") as conn:
            rows = [conn.execute(SELECT_CONTEXT, (cid, now)).fetchone() for cid in ids]
        return build_records(
            list(zip(ids, rows, strict=True)),
            lambda pair: None if pair[1] is None else _record(pair[0], pair[1]),
            backend="sqlite", table="memory_context", key=lambda pair: str(pair[0]),
            columns={})

    def clear_context(self, context_id: str) -> bool:
        """Remove the context and its events in one transaction; True if any was visible."""
        context_id = require_id(context_id, "context_id")
        now = self._clock.time()
        stamp = utc_iso(now)
        with self._db.write("clear_context") as conn:
            row = conn.execute(DELETE_CONTEXT, (context_id,)).fetchone()
            expired = row is not None and row[0] is not None and row[0] <= now
            events = conn.execute(DELETE_EVENTS_OF, (context_id,)).rowcount
            removed = (row is not None and not expired) or (events > 0 and not expired)
            write_audit(conn, stamp, "context.clear", context_id,
                        {"removed": removed, "events": 0 if expired else events})
        return removed


_JSON_COLUMNS = {"data": 0}


def _record(context_id: str, row: Sequence[Any]) -> ContextRecord:
    data, created_at, updated_at, version, ttl, expires_at = row
    return ContextRecord(
        context_id=context_id, data=decode(data), created_at=created_at,
        updated_at=updated_at, version=version, ttl=ttl,
        expires_at=utc_iso(expires_at) if expires_at is not None else None,
    )
