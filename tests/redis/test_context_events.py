"""Redis-specific context and event behaviour beyond the contract suites: the stored
envelope, key layout, TTL of contexts and their event streams, stream caps, payload limits
and the pipelined batch API."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from memory_resources.clock import ManualClock
from memory_resources.errors import MemoryValidationError, PayloadTooLargeError
from memory_resources.stores.redis import RedisStore, hash_tag
from tests.fixtures.redis import MakeRedisStore

ODD_IDS = ["with spaces", "new\nline", "star*?[x]", "{brace}{}", "ünïcødé 日本 🚀", "a}b{c"]


def _keys(client: redis.Redis, prefix: str) -> list[str]:
    return sorted(k.decode() for k in client.scan_iter(match=prefix + "*", count=1000))


def test_envelope_is_readable_json_under_the_prefix(
    redis_store: RedisStore, redis_client: redis.Redis, redis_prefix: str
) -> None:
    """The context is stored as one JSON envelope string under key_prefix, readable raw."""
    redis_store.set_context("s1", {"user_id": "u1"}, ttl=60)
    key = f"{redis_prefix}ctx:{hash_tag('s1')}:s1"
    raw = redis_client.get(key)
    assert raw is not None
    envelope = json.loads(raw)
    assert envelope["data"] == {"user_id": "u1"}
    assert envelope["context_id"] == "s1"
    assert envelope["version"] == 1 and envelope["ttl"] == 60
    assert 0 < redis_client.pttl(key) <= 60_000


@pytest.mark.parametrize("context_id", ODD_IDS)
def test_odd_ids_share_one_hash_tag_and_round_trip(
    redis_store: RedisStore, redis_client: redis.Redis, redis_prefix: str, context_id: str
) -> None:
    """Ids with spaces, newlines, glob characters, braces and unicode work and both keys of
    a context carry the same hash tag (one cluster slot)."""
    redis_store.set_context(context_id, {"v": context_id})
    redis_store.append_event(context_id, {"e": 1})
    record = redis_store.get_context(context_id)
    assert record is not None and record["data"] == {"v": context_id}
    keys = _keys(redis_client, redis_prefix)
    assert len(keys) == 2
    assert len({key_slot(k.encode()) for k in keys}) == 1, keys


def test_ttl_expires_context_and_its_events(redis_store: RedisStore) -> None:
    """A context set with ttl=1 and its events are gone after ~1.5 s."""
    redis_store.set_context("short", {"a": 1}, ttl=1)
    redis_store.append_event("short", {"e": 1})
    redis_store.append_event("short", {"e": 2})
    assert len(redis_store.get_events("short")) == 2
    time.sleep(1.5)
    assert redis_store.get_context("short") is None
    assert redis_store.get_events("short") == []


def test_events_take_the_context_ttl_and_lose_it_on_plain_set(
    redis_store: RedisStore, redis_client: redis.Redis
) -> None:
    """Appending to a TTL'd context gives the stream that TTL; a set without TTL removes it
    from both the context and the stream."""
    redis_store.set_context("c", {}, ttl=100)
    redis_store.append_event("c", {"e": 1})
    ctx_key, evt_key = redis_store.keys.context_pair("c")
    assert 0 < redis_client.pttl(evt_key) <= redis_client.pttl(ctx_key) + 5
    redis_store.set_context("c", {"again": True})
    assert redis_client.pttl(ctx_key) == -1
    assert redis_client.pttl(evt_key) == -1


def test_events_before_context_get_its_ttl_when_it_is_set(
    redis_store: RedisStore, redis_client: redis.Redis
) -> None:
    """Events appended before the context exists expire with it once it is set with a TTL."""
    redis_store.append_event("late", {"e": 1})
    _, evt_key = redis_store.keys.context_pair("late")
    assert redis_client.pttl(evt_key) == -1
    redis_store.set_context("late", {}, ttl=50)
    assert 0 < redis_client.pttl(evt_key) <= 50_000


def test_default_ttl_applies_when_none_given(make_redis_store: MakeRedisStore) -> None:
    """default_ttl from the config is used when set_context is given no ttl."""
    store = make_redis_store(default_ttl=30)
    record = store.set_context("d", {})
    assert record["ttl"] == 30 and record["expires_at"] is not None
    assert 0 < store.client.pttl(store.keys.context("d")) <= 30_000


def test_timestamps_come_from_the_injected_clock(make_redis_store: MakeRedisStore) -> None:
    """created_at/updated_at/expires_at and event timestamps use the store's clock."""
    clock = ManualClock(start=1_800_000_000.0)
    store = make_redis_store(clock=clock)
    first = store.set_context("k", {"a": 1}, ttl=10)
    clock.advance(5)
    second = store.set_context("k", {"a": 2}, ttl=10)
    event = store.append_event("k", {"x": 1})
    assert first["created_at"] == second["created_at"] == "2027-01-15T08:00:00.000000+00:00"
    assert second["updated_at"] == "2027-01-15T08:00:05.000000+00:00"
    assert second["expires_at"] == "2027-01-15T08:00:15.000000+00:00"
    assert event["timestamp"] == "2027-01-15T08:00:05.000000+00:00"
    assert second["version"] == 2


def test_events_maxlen_caps_the_stream(make_redis_store: MakeRedisStore) -> None:
    """With events_maxlen the stream is trimmed approximately (XADD MAXLEN ~)."""
    store = make_redis_store(events_maxlen=10)
    for i in range(600):
        store.append_event("capped", {"i": i})
    events = store.get_events("capped")
    assert 10 <= len(events) < 600
    assert events[-1]["data"] == {"i": 599}


def test_since_must_be_a_stream_id(redis_store: RedisStore) -> None:
    """A since cursor that is not a Redis stream id is a validation error naming 'since'."""
    with pytest.raises(MemoryValidationError) as info:
        redis_store.get_events("c", since="12abc")
    assert info.value.field == "since"


def test_pagination_walks_every_event_once(redis_store: RedisStore) -> None:
    """Pages of get_events(since=last id, limit=n) return every event once, in order."""
    for i in range(25):
        redis_store.append_event("p", {"i": i})
    seen: list[int] = []
    cursor = None
    while True:
        page = redis_store.get_events("p", since=cursor, limit=7)
        if not page:
            break
        seen += [e["data"]["i"] for e in page]
        cursor = page[-1]["id"]
    assert seen == list(range(25))


def test_oversized_payload_writes_nothing(
    make_redis_store: MakeRedisStore, redis_client: redis.Redis, redis_prefix: str
) -> None:
    """Values over max_payload_bytes raise PayloadTooLargeError and no key is written."""
    store = make_redis_store(max_payload_bytes=1000)
    with pytest.raises(PayloadTooLargeError) as info:
        store.set_context("big", {"blob": "x" * 2000})
    assert info.value.field == "data"
    with pytest.raises(PayloadTooLargeError):
        store.append_event("big", {"blob": "y" * 2000})
    with pytest.raises(PayloadTooLargeError):
        store.set_contexts({"ok": {"a": 1}, "big": {"blob": "z" * 2000}})
    assert _keys(redis_client, redis_prefix) == []


def test_default_payload_limit_is_one_mebibyte(redis_store: RedisStore) -> None:
    """The default max_payload_bytes is 1 MiB: just under passes, just over is refused."""
    assert redis_store.config.max_payload_bytes == 1024 * 1024
    overhead = len(json.dumps({"b": ""}, separators=(",", ":")))
    redis_store.set_context("fits", {"b": "x" * (1024 * 1024 - overhead)})
    with pytest.raises(PayloadTooLargeError):
        redis_store.set_context("over", {"b": "x" * (1024 * 1024 - overhead + 1)})
    assert redis_store.get_context("over") is None


def test_batch_set_and_get(redis_store: RedisStore) -> None:
    """set_contexts writes many contexts in one pipeline (versions per context) and
    get_contexts reads them back in order with None for missing ids."""
    items = {f"b{i}": {"i": i} for i in range(50)}
    first = redis_store.set_contexts(items, ttl=60)
    assert [r["version"] for r in first] == [1] * 50
    again = redis_store.set_contexts([("b0", {"i": "new"})])
    assert again[0]["version"] == 2
    got = redis_store.get_contexts(["b0", "missing", "b49"])
    assert got[0] is not None and got[0]["data"] == {"i": "new"}
    assert got[1] is None
    assert got[2] is not None and got[2]["data"] == {"i": 49} and got[2]["ttl"] == 60
    assert redis_store.set_contexts({}) == [] and redis_store.get_contexts([]) == []


@pytest.mark.parametrize("bad", [[("ok", {"a": 1}), ("", {"a": 1})], [("ok", {"a": 1}),
                                 ("x", "not a dict")], [("ok", {}), ("x",)]])
def test_batch_bad_item_writes_nothing(
    redis_store: RedisStore, redis_client: redis.Redis, redis_prefix: str, bad: Any
) -> None:
    """One bad item in set_contexts raises a validation error before anything is written."""
    with pytest.raises(MemoryValidationError):
        redis_store.set_contexts(bad)
    assert _keys(redis_client, redis_prefix) == []


def test_get_contexts_refuses_a_bare_string(redis_store: RedisStore) -> None:
    """get_contexts('abc') is refused rather than read as three ids."""
    with pytest.raises(MemoryValidationError) as info:
        redis_store.get_contexts("abc")
    assert info.value.field == "context_ids"


def test_lone_surrogates_are_refused_before_any_write(
    redis_store: RedisStore, redis_client: redis.Redis, redis_prefix: str
) -> None:
    """Text Redis cannot store as UTF-8 (a lone surrogate) in an id or a value is a
    validation error naming the argument, and nothing is written."""
    bad = "x\ud800y"
    calls = [
        ("context_id", lambda: redis_store.set_context(bad, {})),
        ("data", lambda: redis_store.set_context("ok", {"v": bad})),
        ("event", lambda: redis_store.append_event("ok", {"v": bad})),
        ("items[0].data", lambda: redis_store.set_contexts({"ok": {"v": bad}})),
        ("lock_name", lambda: redis_store.try_acquire(bad, "owner", 1000)),
    ]
    for field, call in calls:
        with pytest.raises(MemoryValidationError) as info:
            call()
        assert info.value.field == field
    assert _keys(redis_client, redis_prefix) == []
