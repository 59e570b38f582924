"""EventLog contract: append-only, ordered event streams per context.

Uses only Protocol methods through the ``event_log`` fixture. Tests about clearing and
expiry also need the ContextStore methods; every backend that offers events offers contexts
on the same object, and those tests skip a fixture that is not also a ContextStore.
Event ids are opaque strings; they are compared through :func:`_id_key`, which reads the
integer (``"42"``) and stream (``"1700000000000-3"``) id forms the backends use.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import pytest

from memory_resources.errors import MemoryValidationError, PayloadTooLargeError
from memory_resources.protocols import ContextStore, EventLog
from memory_resources.testing.suites import roles

event_log = roles.event_log

EVENT_KEYS = {"id", "context_id", "timestamp", "data"}


def _id_key(event_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in event_id.split("-"))


def _cid() -> str:
    return f"events-{uuid.uuid4().hex}"


def _contexts(event_log: Any) -> ContextStore:
    if not isinstance(event_log, ContextStore):
        pytest.skip("this backend's event log is not also a ContextStore")
    return event_log


def test_fixture_implements_protocol(event_log: Any) -> None:
    """The fixture object satisfies the EventLog protocol."""
    assert isinstance(event_log, EventLog)


def test_append_returns_record_with_increasing_ids(event_log: EventLog) -> None:
    """append_event returns the EventRecord with a fresh id, larger than the previous one."""
    cid = _cid()
    records = [event_log.append_event(cid, {"type": "step", "n": n}) for n in range(5)]
    for n, record in enumerate(records):
        assert set(record) == EVENT_KEYS
        assert record["context_id"] == cid
        assert record["data"] == {"type": "step", "n": n}
        assert isinstance(record["id"], str)
        stamp = dt.datetime.fromisoformat(record["timestamp"])
        assert stamp.utcoffset() == dt.timedelta(0)
    keys = [_id_key(record["id"]) for record in records]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_get_events_returns_append_order(event_log: EventLog) -> None:
    """get_events returns every event in append order, equal to what append returned."""
    cid = _cid()
    appended = [event_log.append_event(cid, {"n": n, "text": f"é{n}"}) for n in range(30)]
    assert event_log.get_events(cid) == appended


def test_since_is_exclusive_and_limit_pages(event_log: EventLog) -> None:
    """since skips up to and including that id; limit caps; paging visits each event once."""
    cid = _cid()
    appended = [event_log.append_event(cid, {"n": n}) for n in range(10)]
    ids = [record["id"] for record in appended]
    assert [e["id"] for e in event_log.get_events(cid, since=ids[3])] == ids[4:]
    assert event_log.get_events(cid, since=ids[-1]) == []
    assert [e["id"] for e in event_log.get_events(cid, limit=3)] == ids[:3]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = event_log.get_events(cid, since=cursor, limit=4)
        if not page:
            break
        seen.extend(e["id"] for e in page)
        cursor = page[-1]["id"]
    assert seen == ids


def test_streams_are_isolated_per_context(event_log: EventLog) -> None:
    """Events of one context never show in another, even with glob-like or prefix ids."""
    base = uuid.uuid4().hex
    a, ab, star = f"{base}-a", f"{base}-ab", f"{base}-*"
    event_log.append_event(a, {"in": "a"})
    event_log.append_event(ab, {"in": "ab"})
    event_log.append_event(a, {"in": "a2"})
    assert [e["data"]["in"] for e in event_log.get_events(a)] == ["a", "a2"]
    assert [e["data"]["in"] for e in event_log.get_events(ab)] == ["ab"]
    assert event_log.get_events(star) == []
    assert event_log.get_events(_cid()) == []


def test_odd_ids_and_rich_events_round_trip(event_log: EventLog) -> None:
    """Unicode, quotes and braces in ids, and codec types in events, round-trip exactly."""
    cid = f"quo'te \"{{x}}\" ünï 🚀 {uuid.uuid4().hex[:6]}"
    data = {"at": dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc), "id": uuid.uuid4(),
            "bytes": b"\x01\x02", "nested": {"k": [1, {"z": None}]}}
    record = event_log.append_event(cid, data)
    assert record["data"] == data
    assert event_log.get_events(cid) == [record]


def test_clear_context_removes_events(event_log: Any) -> None:
    """clear_context removes the stream too (True even when only events existed)."""
    contexts = _contexts(event_log)
    with_ctx, only_events = _cid(), _cid()
    contexts.set_context(with_ctx, {"a": 1})
    event_log.append_event(with_ctx, {"n": 1})
    event_log.append_event(only_events, {"n": 1})
    assert contexts.clear_context(with_ctx) is True
    assert event_log.get_events(with_ctx) == []
    assert contexts.clear_context(only_events) is True
    assert event_log.get_events(only_events) == []
    fresh = event_log.append_event(with_ctx, {"n": 2})
    assert event_log.get_events(with_ctx) == [fresh]


def test_events_expire_with_their_context(event_log: Any) -> None:
    """Setting a context with a TTL makes its events invisible when it expires."""
    contexts = _contexts(event_log)
    cid, kept = _cid(), _cid()
    contexts.set_context(cid, {"a": 1}, ttl=1)
    event_log.append_event(cid, {"n": 1})
    event_log.append_event(cid, {"n": 2})
    event_log.append_event(kept, {"n": 1})
    assert len(event_log.get_events(cid)) == 2
    time.sleep(1.2)
    assert event_log.get_events(cid) == []
    assert len(event_log.get_events(kept)) == 1
    after = event_log.append_event(cid, {"n": 3})
    assert event_log.get_events(cid) == [after]


@pytest.mark.parametrize(
    ("context_id", "event", "field"),
    [
        ("", {"a": 1}, "context_id"),
        (None, {"a": 1}, "context_id"),
        ("ok", ["not", "a", "dict"], "event"),
        ("ok", None, "event"),
        ("ok", {"bad": object()}, "event"),
        ("ok", {"inf": float("inf")}, "event"),
        ("lone\ud800surrogate", {"a": 1}, "context_id"),
        ("ok", {"a": "lone\ud800surrogate"}, "event"),
    ],
)
def test_bad_append_is_refused_and_nothing_appended(
    event_log: EventLog, context_id: Any, event: Any, field: str
) -> None:
    """A bad id or event raises MemoryValidationError naming the argument; no event lands."""
    cid = _cid() if context_id == "ok" else context_id
    with pytest.raises(MemoryValidationError) as info:
        event_log.append_event(cid, event)
    assert info.value.field == field
    if context_id == "ok":
        assert event_log.get_events(cid) == []


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"limit": 0}, "limit"), ({"limit": -1}, "limit"), ({"limit": "10"}, "limit"),
    ({"since": 5}, "since"),
])
def test_bad_read_arguments_are_refused(
    event_log: EventLog, kwargs: dict[str, Any], field: str
) -> None:
    """get_events refuses a non-positive or non-integer limit and a non-string cursor."""
    with pytest.raises(MemoryValidationError) as info:
        event_log.get_events(_cid(), **kwargs)
    assert info.value.field == field


def test_oversized_event_is_refused(event_log: EventLog) -> None:
    """An event above max_payload_bytes raises PayloadTooLargeError and is not appended."""
    cid = _cid()
    first = event_log.append_event(cid, {"small": True})
    with pytest.raises(PayloadTooLargeError) as info:
        event_log.append_event(cid, {"big": "x" * (1024 * 1024 + 10)})
    assert info.value.field == "event"
    assert event_log.get_events(cid) == [first]
