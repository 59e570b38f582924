"""ContextStore contract: the behaviour every backend's context storage must show.

Uses only the Protocol methods through the ``context_store`` fixture (the project's
``memory_context_store``); each call of it gives a fresh, isolated store.
The TTL tests use real time (``ttl=1``, then ~1.2 s of sleep) because Redis expires keys on
the server, not through our clock.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest

from memory_resources.errors import (
    MemoryValidationError,
    PayloadTooLargeError,
    SerializationError,
)
from memory_resources.protocols import ContextStore
from memory_resources.testing.suites import roles

context_store = roles.context_store

ENVELOPE_KEYS = {"context_id", "data", "created_at", "updated_at", "version", "ttl",
                 "expires_at"}
ODD_IDS = [
    "with spaces in it",
    "star*glob?[x]",
    "{hash}tag{}",
    "quotes ' \" ` and \\ backslash",
    "unicode: ünïcødé — 日本語 🚀",
    "new\nline\ttab",
    "a:b:c/d.e",
]


def _utc(text: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(text)
    assert parsed.utcoffset() == dt.timedelta(0), f"{text} is not UTC"
    return parsed


def _cid() -> str:
    return f"ctx-{uuid.uuid4().hex}"


def test_fixture_implements_protocol(context_store: Any) -> None:
    """The fixture object satisfies the ContextStore protocol."""
    assert isinstance(context_store, ContextStore)


def test_set_returns_full_envelope_and_get_round_trips(context_store: ContextStore) -> None:
    """set_context returns the ContextRecord envelope and get_context returns the same data."""
    cid = _cid()
    data = {"user_id": "user_123", "nested": {"list": [1, 2.5, None, True], "s": "x"}}
    written = context_store.set_context(cid, data)
    assert set(written) == ENVELOPE_KEYS
    assert written["context_id"] == cid
    assert written["data"] == data
    assert written["version"] == 1
    assert written["ttl"] is None and written["expires_at"] is None
    assert written["created_at"] == written["updated_at"]
    _utc(written["created_at"])
    read = context_store.get_context(cid)
    assert read is not None
    assert set(read) == ENVELOPE_KEYS
    assert read == written


def test_get_absent_returns_none(context_store: ContextStore) -> None:
    """get_context of an id never set returns None."""
    assert context_store.get_context(_cid()) is None


def test_version_increments_and_created_at_is_kept(context_store: ContextStore) -> None:
    """Each set bumps version by one, replaces data, keeps created_at and moves updated_at."""
    cid = _cid()
    first = context_store.set_context(cid, {"n": 1, "old": True})
    time.sleep(0.002)
    second = context_store.set_context(cid, {"n": 2})
    third = context_store.set_context(cid, {"n": 3})
    assert [first["version"], second["version"], third["version"]] == [1, 2, 3]
    read = context_store.get_context(cid)
    assert read is not None
    assert read["data"] == {"n": 3}, "set replaces the whole data, it does not merge"
    assert read["version"] == 3
    assert read["created_at"] == first["created_at"]
    assert _utc(read["updated_at"]) > _utc(first["updated_at"])


def test_ttl_is_reported_and_removed_by_a_set_without_ttl(context_store: ContextStore) -> None:
    """A TTL shows as ttl/expires_at (updated_at + ttl); a later set without one clears it."""
    cid = _cid()
    written = context_store.set_context(cid, {"a": 1}, ttl=3600)
    assert written["ttl"] == 3600
    assert written["expires_at"] is not None
    delta = _utc(written["expires_at"]) - _utc(written["updated_at"])
    assert abs(delta.total_seconds() - 3600) < 1
    read = context_store.get_context(cid)
    assert read is not None and read["ttl"] == 3600 and read["expires_at"] is not None
    context_store.set_context(cid, {"a": 2})
    read = context_store.get_context(cid)
    assert read is not None and read["ttl"] is None and read["expires_at"] is None


def test_expired_context_is_invisible_and_restarts_at_version_one(
    context_store: ContextStore,
) -> None:
    """After its TTL a context reads as None, clears as nothing, and a new set is version 1."""
    cid, kept = _cid(), _cid()
    context_store.set_context(cid, {"a": 1}, ttl=1)
    context_store.set_context(cid, {"a": 2}, ttl=1)
    context_store.set_context(kept, {"b": 1}, ttl=60)
    time.sleep(1.2)
    assert context_store.get_context(cid) is None
    assert context_store.get_context(kept) is not None
    again = context_store.set_context(cid, {"a": 3})
    assert again["version"] == 1
    assert context_store.get_context(cid) == again
    context_store.set_context(kept, {"b": 2}, ttl=1)
    time.sleep(1.2)
    assert context_store.clear_context(kept) is False


def test_clear_removes_and_reports(context_store: ContextStore) -> None:
    """clear_context removes the context and returns True, then False once nothing is left."""
    cid = _cid()
    context_store.set_context(cid, {"a": 1})
    assert context_store.clear_context(cid) is True
    assert context_store.get_context(cid) is None
    assert context_store.clear_context(cid) is False
    assert context_store.clear_context(_cid()) is False
    again = context_store.set_context(cid, {"a": 2})
    assert again["version"] == 1


def test_codec_types_round_trip(context_store: ContextStore) -> None:
    """Datetimes, UUIDs, Decimals, bytes and sets inside data come back as the same types."""
    cid = _cid()
    when = dt.datetime(2026, 1, 31, 12, 0, 0, 123456, tzinfo=dt.timezone.utc)
    ident = uuid.uuid4()
    data = {"when": when, "id": ident, "price": Decimal("10.25"), "blob": b"\x00\xff",
            "tags": {"a", "b"}, "text": "ünïcødé 🚀 \"quoted\""}
    written = context_store.set_context(cid, data)
    assert written["data"] == data
    read = context_store.get_context(cid)
    assert read is not None and read["data"] == data


@pytest.mark.parametrize("odd_id", ODD_IDS)
def test_odd_ids_are_plain_data(context_store: ContextStore, odd_id: str) -> None:
    """Ids with spaces, globs, braces, quotes and unicode store and read back exactly."""
    cid = f"{odd_id}-{uuid.uuid4().hex[:8]}"
    context_store.set_context(cid, {"id": cid})
    read = context_store.get_context(cid)
    assert read is not None and read["context_id"] == cid and read["data"] == {"id": cid}
    assert context_store.clear_context(cid) is True


def test_similar_ids_do_not_collide(context_store: ContextStore) -> None:
    """A glob-like id never matches or clears other ids."""
    base = uuid.uuid4().hex
    context_store.set_context(f"{base}-a", {"v": "a"})
    context_store.set_context(f"{base}-ab", {"v": "ab"})
    assert context_store.get_context(f"{base}-*") is None
    assert context_store.clear_context(f"{base}-*") is False
    read = context_store.get_context(f"{base}-ab")
    assert read is not None and read["data"] == {"v": "ab"}


@pytest.mark.parametrize(
    ("context_id", "data", "ttl", "field"),
    [
        ("", {"a": 1}, None, "context_id"),
        (123, {"a": 1}, None, "context_id"),
        ("x" * 513, {"a": 1}, None, "context_id"),
        ("nul\x00id", {"a": 1}, None, "context_id"),
        ("lone\ud800surrogate", {"a": 1}, None, "context_id"),
        ("ok", {"a": "lone\udfffsurrogate"}, None, "data"),
        ("ok", {"lone\ud800key": 1}, None, "data"),
        ("ok", ["not", "a", "dict"], None, "data"),
        ("ok", "text", None, "data"),
        ("ok", {1: "int key"}, None, "data"),
        ("ok", {"a": 1}, 0, "ttl"),
        ("ok", {"a": 1}, -5, "ttl"),
        ("ok", {"a": 1}, 1.5, "ttl"),
        ("ok", {"a": 1}, "60", "ttl"),
        ("ok", {"a": object()}, None, "data"),
        ("ok", {"a": float("nan")}, None, "data"),
    ],
)
def test_bad_input_is_refused_before_any_write(
    context_store: ContextStore, context_id: Any, data: Any, ttl: Any, field: str
) -> None:
    """Bad ids, data or TTL raise MemoryValidationError naming the argument; nothing changes."""
    target = context_id if isinstance(context_id, str) and context_id == "ok" else None
    real_id = f"ok-{uuid.uuid4().hex}"
    before = context_store.set_context(real_id, {"kept": True}) if target else None
    with pytest.raises(MemoryValidationError) as info:
        context_store.set_context(real_id if target else context_id, data, ttl=ttl)
    assert info.value.field == field
    if before is not None:
        assert context_store.get_context(real_id) == before


def test_unserialisable_value_names_its_path(context_store: ContextStore) -> None:
    """A value the codec cannot store raises SerializationError naming where it sits."""
    cid = _cid()
    with pytest.raises(SerializationError) as info:
        context_store.set_context(cid, {"items": [1, 2, object()]})
    assert info.value.field == "data"
    assert "['items'][2]" in info.value.path
    assert context_store.get_context(cid) is None


def test_payload_over_limit_is_refused_and_nothing_written(context_store: ContextStore) -> None:
    """Data above max_payload_bytes (1 MiB default) raises PayloadTooLargeError, keeps the old."""
    cid = _cid()
    before = context_store.set_context(cid, {"small": 1})
    with pytest.raises(PayloadTooLargeError) as info:
        context_store.set_context(cid, {"big": "x" * (1024 * 1024 + 1)})
    assert info.value.field == "data"
    assert context_store.get_context(cid) == before
    fresh = _cid()
    with pytest.raises(PayloadTooLargeError):
        context_store.set_context(fresh, {"big": "é" * (600 * 1024)})
    assert context_store.get_context(fresh) is None


TAG_SHAPED: dict[str, Any] = {
    "__type__": "datetime", "value": "zzz",
    "nested": [{"__type__": "set", "value": [1, 2]}, {"~__type__": "uuid", "value": "x"}],
    "real": {1, 2}, "big": 2**80, "float": 1e20,
}


def test_tag_shaped_data_reads_back_as_written(context_store: ContextStore) -> None:
    """Dicts shaped like the codec's tags (even malformed ones), escaped-looking keys, big
    ints and big floats read back exactly; a real set stays a set."""
    context_store.set_context("tags", TAG_SHAPED)
    data = context_store.get_context("tags")["data"]  # type: ignore[index]
    assert data == TAG_SHAPED and type(data["float"]) is float
