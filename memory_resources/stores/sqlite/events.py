"""Append-only event streams, one per context.

Event ids are the rows' ``AUTOINCREMENT`` keys as decimal strings: they increase in append
order across the whole file (so within each context) and are never reused, even after a
clear. Events of a context whose TTL has passed are invisible, like the context itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...batching import batch_list, prepare_each
from ...clock import Clock, utc_iso
from ...codec import decode, encode
from ...decoding import build_records
from ...errors import MemoryValidationError
from ...records import EventRecord, JSONDict
from ...validation import require_dict, require_id, require_positive_int
from .audit import write_audit
from .connection import Database
from .context import Purger, drop_if_expired

MAX_EVENTS_LIMIT = 1_000_000

INSERT_EVENT = "INSERT INTO memory_events (context_id, ts, data) VALUES (?, ?, ?)"
SELECT_EVENTS = (
    "SELECT id, ts, data FROM memory_events WHERE context_id = ?1 AND id > ?2"
    " AND NOT EXISTS (SELECT 1 FROM memory_context WHERE context_id = ?1"
    " AND expires_at IS NOT NULL AND expires_at <= ?3)"
    " ORDER BY id LIMIT ?4"
)


def parse_cursor(since: str | None) -> int:
    """An exclusive event-id cursor (a decimal id string from this backend) as an int."""
    if since is None:
        return 0
    if not isinstance(since, str) or not since.isascii() or not since.isdigit() \
            or len(since) > 18:  # a SQLite INTEGER is 64-bit
        raise MemoryValidationError(
            "since", f"must be an event id returned by append_event/get_events, got {since!r}"
        )
    return int(since)


class EventRepo:
    """append / read of events; implements the EventLog protocol's semantics."""

    def __init__(self, db: Database, clock: Clock, purger: Purger, max_payload_bytes: int) -> None:
        self._db = db
        self._clock = clock
        self._purger = purger
        self._max = max_payload_bytes

    def append_event(self, context_id: str, event: JSONDict) -> EventRecord:
        """Append ``event`` to ``context_id``'s stream; returns it with id and timestamp."""
        return self.append_events(context_id, [event], field=None)[0]

    def append_events(self, context_id: str, events: Sequence[JSONDict], *,
                      field: str | None = "events") -> list[EventRecord]:
        """Append ``events`` in order in ONE transaction (all or nothing)."""
        context_id = require_id(context_id, "context_id")
        if field is None:  # the single call: its event is named "event"
            payloads = [encode(require_dict(events[0], "event"), field="event",
                               max_bytes=self._max)]
        else:
            payloads = prepare_each(batch_list(events, field), self._encode, field)
        if not payloads:
            return []
        now = self._clock.time()
        stamp = utc_iso(now)
        with self._db.write("append_event") as conn:
            drop_if_expired(conn, context_id, now)
            ids = []
            for payload in payloads:
                event_id = str(conn.execute(INSERT_EVENT, (context_id, stamp, payload)).lastrowid)
                write_audit(conn, stamp, "event.append", context_id, {"event_id": event_id})
                ids.append(event_id)
        self._purger.maybe_purge()
        return [EventRecord(id=event_id, context_id=context_id, timestamp=stamp,
                            data=decode(payload))
                for event_id, payload in zip(ids, payloads, strict=True)]

    def _encode(self, event: Any) -> str:
        """One event of a batch (errors carry no field: the batch names ``events[i]``)."""
        return encode(require_dict(event, ""), field="", max_bytes=self._max)

    def get_events(
        self, context_id: str, since: str | None = None, limit: int | None = None
    ) -> list[EventRecord]:
        """Events in append order after the exclusive cursor ``since``, at most ``limit``."""
        context_id = require_id(context_id, "context_id")
        cursor = parse_cursor(since)
        count = -1 if limit is None else require_positive_int(
            limit, "limit", maximum=MAX_EVENTS_LIMIT)
        with self._db.read("get_events") as conn:
            rows = conn.execute(
                SELECT_EVENTS, (context_id, cursor, self._clock.time(), count)
            ).fetchall()
        return build_records(
            rows, lambda row: EventRecord(id=str(row[0]), context_id=context_id,
                                          timestamp=row[1], data=decode(row[2])),
            backend="sqlite", table="memory_events", key=lambda row: f"{context_id}/{row[0]}",
            columns={"data": 2})
