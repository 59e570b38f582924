"""Hostile data on real backends: any JSON value round-trips, corrupt rows are named and
never hide the others, out-of-range numbers and deep values are refused before any write."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from psycopg2 import sql

from memory_resources.codec import MAX_DEPTH
from memory_resources.errors import CorruptRecordError, DepthLimitError, MemoryValidationError
from memory_resources.records import FlowRunWrite
from memory_resources.stores.postgres import PostgresStore
from memory_resources.stores.redis import RedisStore
from memory_resources.stores.sqlite import SQLiteStore
from tests.fixtures.sqlite import make_sqlite_store
from tests.json_strategies import json_objects, json_values, same

PROPERTY = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
BAD_TEXT = '{"not json'
DEEP_JSON = '{"a":' + "[" * 3000 + "]" * 3000 + "}"
"""Valid JSON (JSONB accepts it) that Python cannot parse: PostgreSQL's corrupt row."""


class Raw:
    """Writes rows behind the store's back with the backend's own client."""

    def __init__(self, store: Any, kind: str, target: Any) -> None:
        self.store = store
        self.kind = kind
        self.target = target

    def sql(self, statement: str, params: tuple[Any, ...]) -> None:
        """Run one UPDATE on SQLite or PostgreSQL (``{t}`` is the table)."""
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.target)
            with conn:
                conn.execute(statement.replace("{t}", params[0]), params[1:])
            conn.close()
            return
        dsn, schema = self.target
        conn = psycopg2.connect(dsn)
        with conn, conn.cursor() as cur:
            text = sql.SQL(statement.replace("?", "%s")).format(
                t=sql.Identifier(schema, params[0]))
            cur.execute(text, params[1:])
        conn.close()

    @property
    def bad(self) -> str:
        return BAD_TEXT if self.kind == "sqlite" else DEEP_JSON

    def corrupt_context(self, context_id: str) -> None:
        if self.kind == "redis":
            self.target.set(self.store.keys.context(context_id), BAD_TEXT)
        else:
            self.sql("UPDATE {t} SET data = ? WHERE context_id = ?",
                     ("memory_context", self.bad, context_id))

    def corrupt_event(self, context_id: str, event_id: str) -> None:
        if self.kind == "redis":  # a stream entry cannot be changed: replace the stream
            key = self.store.keys.events(context_id)
            entries = self.target.xrange(key)
            self.target.delete(key)
            for entry_id, fields in entries:
                if entry_id in (event_id, event_id.encode()):
                    fields = {**fields, b"d": BAD_TEXT} if b"d" in fields else {
                        **fields, "d": BAD_TEXT}
                self.target.xadd(key, fields, id=entry_id)
        else:
            column = "id" if self.kind == "sqlite" else "seq"
            self.sql(f"UPDATE {{t}} SET data = ? WHERE context_id = ? AND {column} = ?",
                     ("memory_events", self.bad, context_id, int(event_id)))


@pytest.fixture
def sqlite_raw(tmp_path: Path) -> Iterator[Raw]:
    store = make_sqlite_store(tmp_path / "memory.db")
    yield Raw(store, "sqlite", str(store.path))
    store.close()


@pytest.fixture
def postgres_raw(postgres_store: PostgresStore, postgres_dsn: str,
                 postgres_contract_schema: str) -> Raw:
    return Raw(postgres_store, "postgres", (postgres_dsn, postgres_contract_schema))


@pytest.fixture
def redis_raw(redis_store: RedisStore, redis_client: redis.Redis) -> Raw:
    return Raw(redis_store, "redis", redis_client)


def _raw(request: pytest.FixtureRequest) -> Raw:
    return request.getfixturevalue(f"{request.param}_raw")  # type: ignore[no-any-return]


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def raw(request: pytest.FixtureRequest) -> Raw:
    """A store of each backend with context and events, and its raw client."""
    return _raw(request)


@pytest.fixture(params=["sqlite", "postgres"])
def sql_raw(request: pytest.FixtureRequest) -> Raw:
    """A store of each SQL backend (history, outputs, audit too), and its raw client."""
    return _raw(request)


# -- any JSON value reads back as written ----------------------------------------------------


@PROPERTY
@given(data=json_objects, event=json_objects)
def test_contexts_and_events_round_trip_any_json(raw: Raw, data: dict[str, Any],
                                                 event: dict[str, Any]) -> None:
    """Property: set_context/get_context and append_event/get_events give back exactly what
    was written, tag-shaped dicts, big ints and floats included, on every backend."""
    store = raw.store
    assert same(store.set_context("ctx", data)["data"], data)
    assert same(store.get_context("ctx")["data"], data)
    store.append_event("ctx", event)
    assert same(store.get_events("ctx")[-1]["data"], event)


@PROPERTY
@given(output=json_values, data=json_objects)
def test_outputs_and_history_round_trip_any_json(sql_raw: Raw, output: Any,
                                                 data: dict[str, Any]) -> None:
    """Property: task outputs (any JSON value) and history data/parameters read back
    exactly as written on SQLite and PostgreSQL."""
    store = sql_raw.store
    store.write_task_output("task", output, {"m": output})
    read = store.read_task_output("task")
    assert same(read["output"], output) and same(read["metadata"], {"m": output})
    store.write_flow_run(FlowRunWrite(flow_id="f", run_id="r", data=data, parameters=data))
    row = store.read_flow_runs("f", "r")[0]
    assert same(row["parameters"], data)
    assert all(same(row["data"][key], value) for key, value in data.items())


def test_the_issue_case_reads_back_everywhere(raw: Raw) -> None:
    """The malformed tag of the report ({"__type__": "datetime", "value": "zzz"}) is stored
    and read back as written by every read (context, events)."""
    value = {"__type__": "datetime", "value": "zzz"}
    raw.store.set_context("c", {"v": value, **value})
    raw.store.append_event("c", value)
    assert raw.store.get_context("c")["data"] == {"v": value, **value}
    assert raw.store.get_events("c")[0]["data"] == value


def test_history_merges_keep_escaped_keys_apart(sql_raw: Raw) -> None:
    """History data merged key by key across writes still reads back as the user's keys
    (a tag-like key written first and a "value" key written later never form a tag)."""
    store = sql_raw.store
    store.write_flow_run(FlowRunWrite(flow_id="f", run_id="r", data={"__type__": "set"}))
    store.write_flow_run(FlowRunWrite(flow_id="f", run_id="r", data={"value": [1, 2]}))
    assert store.read_flow_runs("f", "r")[0]["data"] == {"__type__": "set", "value": [1, 2]}


# -- corrupt rows ------------------------------------------------------------------------------


def test_corrupt_context_raises_corrupt_record_error_naming_it(raw: Raw) -> None:
    """A context row that cannot be decoded raises CorruptRecordError naming the backend,
    table and context id; another context still reads."""
    raw.store.set_context("bad", {"a": 1})
    raw.store.set_context("good", {"a": 2})
    raw.corrupt_context("bad")
    with pytest.raises(CorruptRecordError) as info:
        raw.store.get_context("bad")
    assert info.value.key == "bad" and info.value.backend == raw.kind.replace("_", "")
    assert isinstance(info.value, ValueError)
    assert raw.store.get_context("good")["data"] == {"a": 2}


def test_corrupt_event_does_not_hide_the_other_events(raw: Raw) -> None:
    """get_events over a corrupt event raises one CorruptRecordError whose records are the
    other events in order and whose key names the bad one."""
    ids = [raw.store.append_event("c", {"n": n})["id"] for n in range(3)]
    raw.corrupt_event("c", ids[1])
    with pytest.raises(CorruptRecordError) as info:
        raw.store.get_events("c")
    assert info.value.key == f"c/{ids[1]}"
    assert [event["data"]["n"] for event in info.value.records] == [0, 2]
    assert len(info.value.corrupt) == 1


def test_corrupt_history_row_does_not_hide_the_flows_other_runs(sql_raw: Raw) -> None:
    """read_flow_runs for a whole flow names the corrupt run and keeps the others; reading
    the bad run alone raises; writing to it refuses (nothing half-merged)."""
    store = sql_raw.store
    for run in ("r1", "r2", "r3"):
        store.write_flow_run(FlowRunWrite(flow_id="f", run_id=run, data={"run": run}))
    sql_raw.sql("UPDATE {t} SET data = ? WHERE run_id = ?",
                ("flow_run_history", sql_raw.bad, "r2"))
    with pytest.raises(CorruptRecordError) as info:
        store.read_flow_runs("f")
    assert (info.value.table, info.value.key, info.value.field) == (
        "flow_run_history", "f/r2", "data")
    assert sorted(row["run_id"] for row in info.value.records) == ["r1", "r3"]
    with pytest.raises(CorruptRecordError):
        store.read_flow_runs("f", "r2")


def test_corrupt_output_and_audit_rows_are_named(sql_raw: Raw) -> None:
    """A corrupt task output raises CorruptRecordError naming task and version; a corrupt
    audit row does not hide the other audit rows."""
    store = sql_raw.store
    store.write_task_output("t", {"v": 1})
    store.write_task_output("t", {"v": 2})
    sql_raw.sql("UPDATE {t} SET output = ? WHERE task_id = ? AND version = ?",
                ("task_outputs", sql_raw.bad, "t", 2))
    with pytest.raises(CorruptRecordError) as info:
        store.read_task_output("t")
    assert (info.value.key, info.value.field) == ("t/v2", "output")
    with pytest.raises(CorruptRecordError) as info:
        store.list_task_outputs("t")
    assert [row["version"] for row in info.value.records] == [1]
    audit = store.read_audit()
    sql_raw.sql("UPDATE {t} SET details = ? WHERE id = ?",
                ("audit_log", sql_raw.bad, audit[0]["id"]))
    with pytest.raises(CorruptRecordError) as info:
        store.read_audit()
    assert info.value.key == str(audit[0]["id"])
    assert [row["id"] for row in info.value.records] == [row["id"] for row in audit[1:]]


# -- limits, refused before any write ----------------------------------------------------------


@pytest.mark.parametrize("ttl", [10**12, 2**63, 1e300, 100 * 365 * 24 * 3600 + 1])
def test_out_of_range_ttl_is_refused_before_any_write(raw: Raw, ttl: Any) -> None:
    """A TTL past 100 years is a MemoryValidationError naming ttl; nothing is stored, so the
    context reads as absent (on SQLite it used to commit a row that broke get_context)."""
    with pytest.raises(MemoryValidationError) as info:
        raw.store.set_context("c", {"a": 1}, ttl=ttl)
    assert info.value.field == "ttl"
    assert raw.store.get_context("c") is None


def test_deep_values_are_refused_before_any_write(raw: Raw) -> None:
    """A value nested 1,000 levels deep raises DepthLimitError; nothing is stored."""
    deep: Any = "x"
    for _ in range(1_000):
        deep = [deep]
    with pytest.raises(DepthLimitError):
        raw.store.set_context("c", {"deep": deep})
    with pytest.raises(DepthLimitError):
        raw.store.append_event("c", {"deep": deep})
    assert raw.store.get_context("c") is None and raw.store.get_events("c") == []
    shallow: Any = "x"
    for _ in range(MAX_DEPTH - 2):
        shallow = [shallow]
    raw.store.set_context("c", {"ok": shallow})
    assert raw.store.get_context("c")["data"] == {"ok": shallow}


@pytest.mark.parametrize("call", [
    lambda s: s.get_events("c", limit=10**30),
    lambda s: s.get_events("c", since="9" * 40),
    lambda s: s.try_acquire("lock", "me", 10**15),
    lambda s: s.extend("lock", "me", 10**15),
])
def test_out_of_range_numbers_are_typed_errors(raw: Raw, call: Callable[[Any], Any]) -> None:
    """Huge limits, cursors and lease lengths raise MemoryValidationError, never a raw
    OverflowError or a backend error."""
    with pytest.raises(MemoryValidationError):
        call(raw.store)


def test_sqlite_store_is_a_real_sqlite_store(sqlite_raw: Raw) -> None:
    """The SQLite fixture writes where its raw client reads (guards the corrupt tests)."""
    assert isinstance(sqlite_raw.store, SQLiteStore)
    sqlite_raw.store.set_context("c", {"a": 1})
    conn = sqlite3.connect(sqlite_raw.target)
    assert conn.execute("SELECT count(*) FROM memory_context").fetchone() == (1,)
    conn.close()


def test_write_merging_into_a_corrupt_history_row_writes_nothing(sqlite_raw: Raw) -> None:
    """On SQLite a history write that must merge into a corrupt row raises
    CorruptRecordError and leaves the row (and the audit log) as they were."""
    store = sqlite_raw.store
    store.write_flow_run(FlowRunWrite(flow_id="f", run_id="r", data={"a": 1}))
    sqlite_raw.sql("UPDATE {t} SET data = ? WHERE run_id = ?", ("flow_run_history", BAD_TEXT, "r"))
    audit_rows = len(store.read_audit())
    with pytest.raises(CorruptRecordError) as info:
        store.write_flow_run(FlowRunWrite(flow_id="f", run_id="r", status="completed",
                                          data={"b": 2}))
    assert (info.value.key, info.value.field) == ("f/r", "data")
    conn = sqlite3.connect(sqlite_raw.target)
    assert conn.execute("SELECT data, status FROM flow_run_history").fetchone() == (
        BAD_TEXT, None)
    conn.close()
    assert len(store.read_audit()) == audit_rows


def test_redis_batch_get_keeps_the_good_contexts(redis_raw: Raw) -> None:
    """get_contexts over a corrupt context names it and keeps the others (None for absent)."""
    store = redis_raw.store
    store.set_context("a", {"n": 1})
    store.set_context("b", {"n": 2})
    redis_raw.corrupt_context("b")
    with pytest.raises(CorruptRecordError) as info:
        store.get_contexts(["a", "b", "missing"])
    assert info.value.key == "b"
    assert [None if r is None else r["data"] for r in info.value.records] == [{"n": 1}, None]


def test_pgvector_corrupt_metadata_is_named_and_other_matches_kept(
        make_pgvector_index: Callable[..., Any], pgvector_dsn: str) -> None:
    """A pgvector row whose metadata Python cannot decode raises CorruptRecordError from
    get() and from query(), whose records keep the other matches."""
    index = make_pgvector_index(4)
    index.upsert(["a", "b", "c"], [[1, 0, 0, 0], [0.9, 0.1, 0, 0], [0.8, 0.2, 0, 0]],
                 [{"n": 1}, {"n": 2}, {"n": 3}])
    conn = psycopg2.connect(pgvector_dsn)
    with conn, conn.cursor() as cur:
        cur.execute(sql.SQL("UPDATE {} SET metadata = %s::jsonb WHERE id = 'b'").format(
            sql.Identifier(index.schema, index.table)), (DEEP_JSON,))
    conn.close()
    with pytest.raises(CorruptRecordError) as info:
        index.get("b")
    assert (info.value.backend, info.value.key, info.value.field) == ("pgvector", "b", "metadata")
    with pytest.raises(CorruptRecordError) as info:
        index.query([1, 0, 0, 0], top_k=3)
    assert [match["id"] for match in info.value.records] == ["a", "c"]


def test_async_redis_store_names_corrupt_rows_too(redis_raw: Raw, redis_url: str) -> None:
    """AsyncMemoryAPI's Redis transport shares the decoding: a corrupt context or event is a
    CorruptRecordError there as well, with the good events kept."""
    import asyncio

    from memory_resources.stores.redis.aio import AsyncRedisStore

    sync = redis_raw.store
    ids = [sync.append_event("c", {"n": n})["id"] for n in range(3)]
    redis_raw.corrupt_event("c", ids[0])
    sync.set_context("bad", {"a": 1})
    redis_raw.corrupt_context("bad")

    async def main() -> tuple[CorruptRecordError, CorruptRecordError]:
        store = AsyncRedisStore({"url": redis_url, "key_prefix": sync.config.key_prefix})
        try:
            errors = []
            for call in (store.get_events("c"), store.get_context("bad")):
                try:
                    await call
                except CorruptRecordError as exc:
                    errors.append(exc)
            return errors[0], errors[1]
        finally:
            await store.close()

    events_error, context_error = asyncio.run(main())
    assert [event["data"] for event in events_error.records] == [{"n": 1}, {"n": 2}]
    assert context_error.key == "bad"


def test_vector_filters_match_tag_like_metadata_keys_on_both_backends(
        make_pgvector_index: Callable[..., Any], tmp_path: Path) -> None:
    """A metadata key spelled like the codec's tag is filtered the same on pgvector (where
    it is stored escaped) as on the numpy index."""
    from memory_resources.config import VectorConfig
    from memory_resources.stores.numpy_index import NumpyVectorIndex

    numpy_index = NumpyVectorIndex.from_config(
        VectorConfig(dimension=4, path=str(tmp_path / "vectors")))
    for index in (make_pgvector_index(4), numpy_index):
        index.upsert(["a", "b"], [[1, 0, 0, 0], [0, 1, 0, 0]],
                     [{"__type__": "set", "value": 1}, {"__type__": "other", "value": 2}])
        assert index.get("a")[1] == {"__type__": "set", "value": 1}
        found = index.query([1, 0, 0, 0], top_k=2, filter={"__type__": "set"})
        assert [match["id"] for match in found] == ["a"]
        found = index.query([1, 0, 0, 0], top_k=2, filter={"value": {"$gt": 1}})
        assert [match["id"] for match in found] == ["b"]


def test_async_postgres_store_names_corrupt_rows_under_concurrency(
        postgres_raw: Raw) -> None:
    """AsyncPostgresStore (asyncpg) marks undecodable JSONB instead of failing the fetch:
    a corrupt event is a CorruptRecordError with the other events kept, even while other
    coroutines read good rows on the same event loop."""
    import asyncio

    from memory_resources.stores.postgres.aio import AsyncPostgresStore

    sync = postgres_raw.store
    dsn, schema = postgres_raw.target
    ids = [sync.append_event("bad", {"n": n})["id"] for n in range(3)]
    for n in range(3):
        sync.append_event("good", {"n": n})
    postgres_raw.corrupt_event("bad", ids[1])

    async def main() -> tuple[list[Any], CorruptRecordError | None]:
        store = AsyncPostgresStore({"dsn": dsn, "schema": schema, "auto_migrate": False})
        await store.connect()
        try:
            results = await asyncio.gather(
                *[store.get_events("good") for _ in range(5)], store.get_events("bad"),
                *[store.get_events("good") for _ in range(5)], return_exceptions=True)
        finally:
            await store.close()
        errors = [r for r in results if isinstance(r, CorruptRecordError)]
        return [r for r in results if isinstance(r, list)], errors[0] if errors else None

    good, error = asyncio.run(main())
    assert len(good) == 10 and all(len(events) == 3 for events in good)
    assert error is not None and error.key == f"bad/{ids[1]}"
    assert [event["data"]["n"] for event in error.records] == [0, 2]
    assert sync.get_events("good")[0]["data"] == {"n": 0}  # later reads unaffected


def test_numpy_index_names_a_corrupt_metadata_row(tmp_path: Path) -> None:
    """The numpy index persisted in SQLite names a row whose metadata text is not JSON
    (CorruptRecordError with its id) instead of failing with a raw ValueError."""
    from memory_resources.config import EmbeddedConfig, VectorConfig
    from memory_resources.stores.numpy_index import NumpyVectorIndex

    config, embedded = VectorConfig(dimension=4), EmbeddedConfig(path=str(tmp_path / "v.db"))
    index = NumpyVectorIndex.from_config(config, embedded)
    index.upsert(["a", "b"], [[1, 0, 0, 0], [0, 1, 0, 0]], [{"n": 1}, {"n": 2}])
    index.close()
    conn = sqlite3.connect(tmp_path / "v.db")
    with conn:
        conn.execute("UPDATE vector_embeddings SET metadata = ? WHERE id = 'b'", (BAD_TEXT,))
    conn.close()
    reopened = NumpyVectorIndex.from_config(config, embedded)
    with pytest.raises(CorruptRecordError) as info:
        reopened.query([1, 0, 0, 0], top_k=2)
    assert (info.value.backend, info.value.key, info.value.field) == ("numpy", "b", "metadata")
    reopened.close()
