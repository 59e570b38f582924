"""Context with TTL and per-context event streams (the spec's "alternative to Redis").

A context whose ``expires_at`` has passed is invisible at once (every read compares it with
the store's clock) and so are its events. Expired rows are purged when the same context is
written again, by a sweep at most every ``PURGE_INTERVAL`` seconds after a context write,
and by ``memory-resources prune``.
Event ids are a sequence per context (``memory_event_heads``, row-locked per append), so they
increase in commit order and are never reused, even after a clear.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from ...batching import batch_list, context_pairs, id_list, prepare_each
from ...decoding import build_records
from ...errors import MemoryValidationError
from ...records import ContextRecord, EventRecord, JSONDict
from ...validation import require_dict, require_id, require_positive_int, require_ttl
from .plan import Op, Repo, Steps, Stmt, need_row, single
from .support import AUDIT_CTE, audit_params, iso, now_utc, opt_iso, to_json

MAX_EVENTS_LIMIT = 1_000_000

_DROP_EXPIRED = (
    "gone AS (DELETE FROM {s}.memory_context WHERE context_id = %(id)s"
    " AND expires_at <= %(now)s RETURNING context_id),"
    " old_events AS (DELETE FROM {s}.memory_events e USING gone"
    " WHERE e.context_id = gone.context_id)"
)
SET = (
    "WITH old_events AS (DELETE FROM {s}.memory_events WHERE context_id = %(id)s"
    " AND EXISTS (SELECT 1 FROM {s}.memory_context WHERE context_id = %(id)s"
    " AND expires_at <= %(now)s)),"
    " c AS (INSERT INTO {s}.memory_context AS c"
    " (context_id, data, version, ttl, created_at, updated_at, expires_at)"
    " VALUES (%(id)s, %(data)s::jsonb, 1, %(ttl)s, %(now)s, %(now)s, %(expires_at)s)"
    " ON CONFLICT (context_id) DO UPDATE SET data = EXCLUDED.data,"
    " version = CASE WHEN c.expires_at <= %(now)s THEN 1 ELSE c.version + 1 END,"
    " created_at = CASE WHEN c.expires_at <= %(now)s THEN EXCLUDED.created_at"
    " ELSE c.created_at END,"
    " ttl = EXCLUDED.ttl, updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at"
    " RETURNING version, created_at, data), " + AUDIT_CTE +
    " SELECT version, created_at, data FROM c"
)
GET = (
    "SELECT data, created_at, updated_at, version, ttl, expires_at FROM {s}.memory_context"
    " WHERE context_id = %(id)s AND (expires_at IS NULL OR expires_at > %(now)s)"
)
CLEAR = (
    "WITH c AS (DELETE FROM {s}.memory_context WHERE context_id = %(id)s"
    " RETURNING (expires_at IS NULL OR expires_at > %(now)s) AS visible),"
    " e AS (DELETE FROM {s}.memory_events WHERE context_id = %(id)s RETURNING 1),"
    " r AS (SELECT (SELECT count(*) FROM c WHERE visible) AS live,"
    " (SELECT count(*) FROM c WHERE NOT visible) AS expired, (SELECT count(*) FROM e) AS events),"
    " audit AS (INSERT INTO {s}.audit_log"
    " (occurred_at, operation, target, flow_run_id, task_run_id, details)"
    " SELECT %(now)s::timestamptz, 'context.clear', %(id)s::text, %(a_flow)s::text,"
    " %(a_task)s::text,"
    " jsonb_build_object('removed', r.live > 0 OR (r.expired = 0 AND r.events > 0),"
    " 'events', CASE WHEN r.expired > 0 THEN 0 ELSE r.events END) FROM r)"
    " SELECT live > 0 OR (expired = 0 AND events > 0) FROM r"
)
APPEND = (
    "WITH " + _DROP_EXPIRED + ","
    " h AS (INSERT INTO {s}.memory_event_heads AS h (context_id, last_seq)"
    " VALUES (%(id)s, 1) ON CONFLICT (context_id) DO UPDATE SET last_seq = h.last_seq + 1"
    " RETURNING last_seq),"
    " ev AS (INSERT INTO {s}.memory_events (context_id, seq, occurred_at, data)"
    " SELECT %(id)s::text, last_seq, %(now)s::timestamptz, %(data)s::jsonb FROM h"
    " RETURNING seq, data),"
    " audit AS (INSERT INTO {s}.audit_log"
    " (occurred_at, operation, target, flow_run_id, task_run_id, details)"
    " SELECT %(now)s::timestamptz, 'event.append', %(id)s::text, %(a_flow)s::text,"
    " %(a_task)s::text,"
    " jsonb_build_object('event_id', ev.seq::text) FROM ev)"
    " SELECT seq, data FROM ev"
)
APPEND_MANY = (
    "WITH " + _DROP_EXPIRED + ","
    " h AS (INSERT INTO {s}.memory_event_heads AS h (context_id, last_seq)"
    " VALUES (%(id)s, %(n)s::int) ON CONFLICT (context_id)"
    " DO UPDATE SET last_seq = h.last_seq + %(n)s::int RETURNING last_seq),"
    " ev AS (INSERT INTO {s}.memory_events (context_id, seq, occurred_at, data)"
    " SELECT %(id)s::text, h.last_seq - %(n)s::int + d.ord, %(now)s::timestamptz,"
    " d.data::jsonb FROM h, unnest(%(data)s::text[]) WITH ORDINALITY AS d(data, ord)"
    " RETURNING seq, data),"
    " audit AS (INSERT INTO {s}.audit_log"
    " (occurred_at, operation, target, flow_run_id, task_run_id, details)"
    " SELECT %(now)s::timestamptz, 'event.append', %(id)s::text, %(a_flow)s::text,"
    " %(a_task)s::text,"
    " jsonb_build_object('event_id', ev.seq::text) FROM ev)"
    " SELECT seq, data FROM ev ORDER BY seq"
)
"""Several events of one context in ONE statement: the head moves by ``n`` once (its row
lock serialises appenders), each event takes its place in the array as its offset."""
SET_MANY = (
    "WITH v AS (SELECT v.id, v.data FROM unnest(%(ids)s::text[], %(data)s::text[])"
    " AS v(id, data)),"
    " old_events AS (DELETE FROM {s}.memory_events e USING {s}.memory_context x, v"
    " WHERE e.context_id = v.id AND x.context_id = v.id AND x.expires_at <= %(now)s),"
    " c AS (INSERT INTO {s}.memory_context AS c"
    " (context_id, data, version, ttl, created_at, updated_at, expires_at)"
    " SELECT v.id, v.data::jsonb, 1, %(ttl)s::int, %(now)s::timestamptz,"
    " %(now)s::timestamptz, %(expires_at)s::timestamptz FROM v"
    " ON CONFLICT (context_id) DO UPDATE SET data = EXCLUDED.data,"
    " version = CASE WHEN c.expires_at <= %(now)s THEN 1 ELSE c.version + 1 END,"
    " created_at = CASE WHEN c.expires_at <= %(now)s THEN EXCLUDED.created_at"
    " ELSE c.created_at END,"
    " ttl = EXCLUDED.ttl, updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at"
    " RETURNING context_id, version, created_at, data),"
    " audit AS (INSERT INTO {s}.audit_log"
    " (occurred_at, operation, target, flow_run_id, task_run_id, details)"
    " SELECT %(now)s::timestamptz, 'context.set', c.context_id, %(a_flow)s::text,"
    " %(a_task)s::text, jsonb_build_object('ttl', %(ttl)s::int) FROM c)"
    " SELECT context_id, version, created_at, data FROM c"
)
"""Several distinct contexts in ONE statement (the same rules as :data:`SET` per row)."""
GET_MANY = (
    "SELECT context_id, data, created_at, updated_at, version, ttl, expires_at"
    " FROM {s}.memory_context WHERE context_id = ANY(%(ids)s::text[])"
    " AND (expires_at IS NULL OR expires_at > %(now)s)"
)
EVENTS = (
    "SELECT seq, occurred_at, data FROM {s}.memory_events WHERE context_id = %(id)s"
    " AND seq > %(since)s AND NOT EXISTS (SELECT 1 FROM {s}.memory_context"
    " WHERE context_id = %(id)s AND expires_at <= %(now)s) ORDER BY seq LIMIT %(limit)s"
)
PURGE = "SELECT {s}.memory_purge_expired_context(%(now)s)"
TEMPLATES = {"context.set": SET, "context.get": GET, "context.clear": CLEAR,
             "context.get_many": GET_MANY, "context.set_many": SET_MANY,
             "event.append_many": APPEND_MANY,
             "event.append": APPEND, "event.list": EVENTS, "context.purge": PURGE}


def parse_cursor(since: Any) -> int:
    """An exclusive event-id cursor (a decimal id string from this backend) as an int."""
    if since is None:
        return 0
    if not isinstance(since, str) or not since.isascii() or not since.isdigit() \
            or len(since) > 18:
        raise MemoryValidationError(
            "since", f"must be an event id returned by append_event/get_events, got {since!r}"
        )
    return int(since)


@dataclasses.dataclass
class ContextRepo(Repo):
    """Contexts (ContextStore) and their events (EventLog); each ``plan_*`` method returns
    the :class:`~.plan.Op` both transports run."""

    def _prepare_set(self, context_id: Any, data: Any, ttl: Any) -> tuple[str, str, int | None]:
        """The validated id, JSON text and TTL of one context write."""
        context_id = require_id(context_id, "context_id")
        data = require_dict(data, "data")
        ttl = require_ttl(ttl)
        return context_id, to_json(data, "data", self.store.max_payload_bytes), ttl

    def plan_set_many(self, items: Any, ttl: int | None = None, *, one: bool = False
                      ) -> Op[list[ContextRecord]] | None:
        """Store each ``(context_id, data)`` (version +1) in ONE transaction (all or
        nothing); ``ttl`` seconds or None. ``one``: ``items`` is a single pair already."""
        if one:
            prepared = [self._prepare_set(items[0], items[1], ttl)]
        else:
            pairs = context_pairs(items)
            require_ttl(ttl)
            prepared = prepare_each(
                pairs, lambda pair: self._prepare_set(pair[0], pair[1], ttl), "items")
        if not prepared:
            return None
        now = now_utc(self.store.clock)
        if len(prepared) > 1 and len({cid for cid, _, _ in prepared}) == len(prepared):
            return self._plan_set_distinct(prepared, ttl, now)

        def steps() -> Steps[list[ContextRecord]]:
            records = []
            for cid, payload, seconds in prepared:
                expires_at = now + dt.timedelta(seconds=seconds) if seconds is not None else None
                row = yield Stmt("context.set", {
                    "id": cid, "data": payload, "ttl": seconds, "now": now,
                    "expires_at": expires_at,
                    **audit_params("context.set", cid, {"ttl": seconds})})
                version, created_at, stored = need_row(row)
                records.append(ContextRecord(
                    context_id=cid, data=stored, created_at=iso(created_at),
                    updated_at=iso(now), version=version, ttl=seconds,
                    expires_at=opt_iso(expires_at)))
            return records

        return Op(steps, idempotent=False, autocommit=len(prepared) == 1, partitions_at=now,
                  purge_after=True)

    def _plan_set_distinct(self, prepared: list[tuple[str, str, int | None]],
                           ttl: int | None, now: dt.datetime) -> Op[list[ContextRecord]]:
        """Distinct contexts in one statement (:data:`SET_MANY`), records in input order."""
        ttl = prepared[0][2]  # the checked TTL, the same for every item
        expires_at = now + dt.timedelta(seconds=ttl) if ttl is not None else None
        audit = audit_params("context.set", prepared[0][0], {})
        params = {"ids": [cid for cid, _, _ in prepared],
                  "data": [payload for _, payload, _ in prepared], "ttl": ttl, "now": now,
                  "expires_at": expires_at, "a_flow": audit["a_flow"],
                  "a_task": audit["a_task"]}

        def steps() -> Steps[list[ContextRecord]]:
            rows = yield Stmt("context.set_many", params, "all")
            stored = {row[0]: row[1:] for row in rows}
            return [ContextRecord(context_id=cid, data=stored[cid][2],
                                  created_at=iso(stored[cid][1]), updated_at=iso(now),
                                  version=stored[cid][0], ttl=ttl,
                                  expires_at=opt_iso(expires_at))
                    for cid, _, _ in prepared]

        return Op(steps, idempotent=False, partitions_at=now, purge_after=True)

    def plan_get(self, context_id: str) -> Op[ContextRecord | None]:
        """The stored context, or None when absent or expired."""
        context_id = require_id(context_id, "context_id")
        return single(Stmt("context.get", {"id": context_id, "now": now_utc(self.store.clock)}),
                      lambda row: None if row is None else build_records(
                          [row], lambda r: _record(context_id, r), backend="postgres",
                          table="memory_context", key=lambda r: context_id,
                          columns={"data": 0})[0],
                      read_only=True)

    def plan_get_many(self, context_ids: Any) -> Op[list[ContextRecord | None]] | None:
        """The stored contexts of ``context_ids``, in order, in one statement."""
        ids = id_list(context_ids, "context_ids")
        if not ids:
            return None

        def decode(rows: Any) -> list[ContextRecord | None]:
            records = build_records(
                rows, lambda row: _record(row[0], row[1:]), backend="postgres",
                table="memory_context", key=lambda row: str(row[0]), columns={"data": 1})
            found = {record["context_id"]: record for record in records}
            return [found.get(cid) for cid in ids]

        return single(Stmt("context.get_many", {"ids": ids, "now": now_utc(self.store.clock)},
                           "all"), decode, read_only=True)

    def plan_clear(self, context_id: str) -> Op[bool]:
        """Remove the context and its events in one statement; True if any was visible."""
        context_id = require_id(context_id, "context_id")
        now = now_utc(self.store.clock)
        params = {"id": context_id, "now": now, **audit_params("context.clear", context_id, {})}
        return single(Stmt("context.clear", params), lambda row: bool(need_row(row)[0]),
                      partitions_at=now)

    def plan_append(self, context_id: str, events: Any, *, one: bool = False
                    ) -> Op[list[EventRecord]] | None:
        """Append ``events`` in order in ONE transaction (all or nothing; not retried);
        ``one``: ``events`` is a single event."""
        context_id = require_id(context_id, "context_id")
        max_bytes = self.store.max_payload_bytes
        if one:
            payloads = [to_json(require_dict(events, "event"), "event", max_bytes)]
        else:
            payloads = prepare_each(
                batch_list(events, "events"),
                lambda event: to_json(require_dict(event, ""), "", max_bytes), "events")
        if not payloads:
            return None
        now = now_utc(self.store.clock)
        audit = audit_params("event.append", context_id, {})
        stamp = iso(now)
        if len(payloads) > 1:
            params = {"id": context_id, "data": payloads, "n": len(payloads), "now": now,
                      "a_flow": audit["a_flow"], "a_task": audit["a_task"]}

            def many() -> Steps[list[EventRecord]]:
                rows = yield Stmt("event.append_many", params, "all")
                return [EventRecord(id=str(seq), context_id=context_id, timestamp=stamp,
                                    data=stored) for seq, stored in rows]

            return Op(many, idempotent=False, partitions_at=now)

        def steps() -> Steps[list[EventRecord]]:
            records = []
            for payload in payloads:
                row = yield Stmt("event.append",
                                 {"id": context_id, "data": payload, "now": now, **audit})
                seq, stored = need_row(row)
                records.append(EventRecord(id=str(seq), context_id=context_id,
                                           timestamp=stamp, data=stored))
            return records

        return Op(steps, idempotent=False, autocommit=len(payloads) == 1, partitions_at=now)

    def plan_events(self, context_id: str, since: str | None = None,
                    limit: int | None = None) -> Op[list[EventRecord]]:
        """Events in append order after the exclusive cursor ``since``, at most ``limit``."""
        context_id = require_id(context_id, "context_id")
        cursor = parse_cursor(since)
        count = None if limit is None else require_positive_int(
            limit, "limit", maximum=MAX_EVENTS_LIMIT)

        def decode(rows: Any) -> list[EventRecord]:
            return build_records(
                rows, lambda r: EventRecord(id=str(r[0]), context_id=context_id,
                                            timestamp=iso(r[1]), data=r[2]),
                backend="postgres", table="memory_events",
                key=lambda r: f"{context_id}/{r[0]}", columns={"data": 2})

        return single(Stmt("event.list", {"id": context_id, "since": cursor, "limit": count,
                                          "now": now_utc(self.store.clock)}, "all"),
                      decode, read_only=True)

    def plan_purge(self) -> Op[int]:
        """Delete every expired context and its events now; returns contexts removed."""
        return single(Stmt("context.purge", {"now": now_utc(self.store.clock)}),
                      lambda row: int(need_row(row)[0]))

    def set_context(self, context_id: str, data: JSONDict, ttl: int | None = None
                    ) -> ContextRecord:
        op = self.plan_set_many((context_id, data), ttl, one=True)
        assert op is not None
        return self.run(op)[0]

    def set_contexts(self, items: Any, ttl: int | None = None) -> list[ContextRecord]:
        op = self.plan_set_many(items, ttl)
        return [] if op is None else self.run(op)

    def get_context(self, context_id: str) -> ContextRecord | None:
        return self.run(self.plan_get(context_id))

    def get_contexts(self, context_ids: Any) -> list[ContextRecord | None]:
        op = self.plan_get_many(context_ids)
        return [] if op is None else self.run(op)

    def clear_context(self, context_id: str) -> bool:
        return self.run(self.plan_clear(context_id))

    def append_event(self, context_id: str, event: JSONDict) -> EventRecord:
        op = self.plan_append(context_id, event, one=True)
        assert op is not None
        return self.run(op)[0]

    def append_events(self, context_id: str, events: Any) -> list[EventRecord]:
        op = self.plan_append(context_id, events)
        return [] if op is None else self.run(op)

    def get_events(self, context_id: str, since: str | None = None,
                   limit: int | None = None) -> list[EventRecord]:
        return self.run(self.plan_events(context_id, since, limit))

    def purge_expired(self) -> int:
        return self.run(self.plan_purge())


def _record(context_id: str, row: Any) -> ContextRecord:
    data, created_at, updated_at, version, ttl, expires_at = row
    return ContextRecord(context_id=context_id, data=data, created_at=iso(created_at),
                         updated_at=iso(updated_at), version=version, ttl=ttl,
                         expires_at=opt_iso(expires_at))
