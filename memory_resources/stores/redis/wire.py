"""The Redis wire format of contexts and events: inputs checked and encoded, script
arguments, and replies turned into records (shared by the sync and asyncio stores).

A context is one string key holding a JSON envelope (``context_id``, ``data``,
``created_at``, ``updated_at``, ``version``, ``ttl``, ``expires_at``); an event is a stream
entry with fields ``t`` (timestamp) and ``d`` (JSON data)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring
from typing import Any

from ...codec import decode, encode
from ...config import RedisConfig
from ...decoding import build_records
from ...errors import CorruptRecordError, MemoryValidationError
from ...records import ContextRecord, EventRecord
from ...validation import require_dict, require_id, require_positive_int, require_ttl
from .keys import KeySpace

_STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
MAX_EVENTS_LIMIT = 1_000_000


def prepare_context(keys: KeySpace, config: RedisConfig, context_id: Any, data: Any,
                    ttl: Any) -> tuple[tuple[str, str], str, int | None]:
    """The keys, encoded data and TTL (``default_ttl`` when None) of one context write."""
    pair = keys.checked_pair(context_id, "context_id")
    payload = encode(require_dict(data, "data"), field="data",
                     max_bytes=config.max_payload_bytes)
    return pair, payload, config.default_ttl if ttl is None else require_ttl(ttl)


def prepare_event(keys: KeySpace, config: RedisConfig, context_id: Any, event: Any
                  ) -> tuple[tuple[str, str], str]:
    """The keys and encoded event of one append."""
    pair = keys.checked_pair(context_id, "context_id")
    return pair, encode(require_dict(event, "event"), field="event",
                        max_bytes=config.max_payload_bytes)


def event_args(config: RedisConfig, payload: str, timestamp: str) -> tuple[str, str, str]:
    """ARGV of the APPEND_EVENT script."""
    maxlen = config.events_maxlen
    return payload, timestamp, "" if maxlen is None else str(maxlen)


def event_record(cid: str, event_id: Any, timestamp: str, payload: str) -> EventRecord:
    if isinstance(event_id, bytes):
        event_id = event_id.decode()
    return {"id": str(event_id), "context_id": cid, "timestamp": timestamp,
            "data": decode(payload)}


def event_range(context_id: Any, since: Any, limit: Any) -> tuple[str, str, int | None]:
    """The context id, ``XRANGE`` start (exclusive ``since``) and count of a read."""
    cid = require_id(context_id, "context_id")
    if since is not None and (not isinstance(since, str) or not _STREAM_ID.fullmatch(since)):
        raise MemoryValidationError(
            "since", f"must be an event id returned by this store, got {since!r}",
            hint="Redis event ids look like 1700000000000-0")
    count = None if limit is None else require_positive_int(
        limit, "limit", maximum=MAX_EVENTS_LIMIT)
    return cid, "-" if since is None else f"({since}", count


def scrub_url(text: str) -> str:
    return re.sub(r"//[^/@\s]*@", "//***@", text)


def set_args(cid: str, payload: str, ttl: int | None, updated_at: str,
              expires_at: str | None) -> tuple[str, str, str]:
    """ARGV of the SET_CONTEXT script: now, the envelope after its fixed head, ttl in ms."""
    expires = "null" if expires_at is None else f'"{expires_at}"'
    tail = (f',"updated_at":"{updated_at}","ttl":{"null" if ttl is None else ttl},'
            f'"expires_at":{expires},"context_id":{encode_basestring(cid)},"data":{payload}}}')
    return updated_at, tail, "" if ttl is None else str(ttl * 1000)


def context_record(cid: str, payload: str, ttl: int | None, updated_at: str,
                    expires_at: str | None, reply: Sequence[Any]) -> ContextRecord:
    """The record of a context just written; ``reply`` is the script's (version, created)."""
    return {
        "context_id": cid,
        "data": decode(payload),
        "created_at": reply[1],
        "updated_at": updated_at,
        "version": reply[0],
        "ttl": ttl,
        "expires_at": expires_at,
    }


def parse_envelope(cid: str, raw: str) -> ContextRecord:
    try:
        env = decode(raw)
        return {
            "context_id": env["context_id"],
            "data": env["data"],
            "created_at": env["created_at"],
            "updated_at": env["updated_at"],
            "version": env["version"],
            "ttl": env["ttl"],
            "expires_at": env["expires_at"],
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptRecordError("redis", "context", cid, "envelope",
                                 f"not a valid context envelope ({exc!r:.200})") from None


def parse_envelopes(context_ids: Sequence[str], raws: Sequence[str | None]
                    ) -> list[ContextRecord | None]:
    """The records of GET replies in order (None where absent); corrupt ones are named by
    one CorruptRecordError that keeps the others."""
    return build_records(
        list(zip(context_ids, raws, strict=True)),
        lambda row: None if row[1] is None else parse_envelope(row[0], row[1]),
        backend="redis", table="context", key=lambda row: str(row[0]), columns={})


def parse_events(cid: str, entries: Sequence[tuple[Any, Mapping[str, str]]]
                 ) -> list[EventRecord]:
    """The records of XRANGE entries; corrupt ones are named by one CorruptRecordError that
    keeps the others."""
    return build_records(entries, lambda entry: parse_event(cid, entry[0], entry[1]),
                         backend="redis", table="events", key=lambda entry: f"{cid}/{entry[0]}",
                         columns={})


def parse_event(cid: str, entry_id: Any, fields: Mapping[str, str]) -> EventRecord:
    try:
        return {"id": str(entry_id), "context_id": cid, "timestamp": fields["t"],
                "data": decode(fields["d"])}
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptRecordError("redis", "events", f"{cid}/{entry_id}", "data",
                                 f"malformed event ({exc!r:.200})") from None
