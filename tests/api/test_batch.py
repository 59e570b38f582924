"""MemoryAPI batch calls: same results and errors as the single calls, named by the
facade's arguments, and all-or-nothing on the SQL backends even when the database fails
in the middle of a batch."""

from __future__ import annotations

import sqlite3
from typing import Any

import numpy as np
import psycopg2
import pytest
from psycopg2 import sql

from memory_resources.api import MemoryAPI
from memory_resources.errors import BackendError, MemoryValidationError, SerializationError
from memory_resources.stores.postgres import PostgresStore
from memory_resources.stores.sqlite import SQLiteStore
from tests.api.conftest import DIMENSION, unit
from tests.fixtures.postgres import make_postgres_store

POISON = "poison-task"


def test_batch_calls_round_trip(api: MemoryAPI) -> None:
    """Each batch call stores what the single calls would and returns it in order."""
    written = api.set_contexts({"s1": {"a": 1}, "s2": {"b": 2}}, ttl=60)
    assert [r["data"] for r in api.get_contexts(["s2", "nope", "s1"]) if r] == [{"b": 2},
                                                                                 {"a": 1}]
    assert written[0] == api.get_context("s1")
    events = api.append_events("s1", [{"e": 1}, {"e": 2}])
    assert api.get_events("s1") == events
    outputs = api.write_task_outputs([{"task_id": "t", "output": 1},
                                      {"task_id": "t", "output": 2, "metadata": {"m": 1}}])
    assert [o["version"] for o in outputs] == [1, 2] and api.read_task_output("t") == outputs[1]
    assert api.write_flow_run_histories([
        {"flow_id": "f", "run_id": "r1", "data": {"status": "Running", "tags": ["x"]}},
        {"flow_id": "f", "run_id": "r1", "data": {"status": "completed", "duration": 2}},
        {"flow_id": "f", "run_id": "r2", "data": {}},
    ]) == 3
    rows = {row["run_id"]: row for row in api.read_flow_run_history("f")}
    assert rows["r1"]["status"] == "completed" and rows["r1"]["tags"] == ["x"]
    assert rows["r1"]["duration"] == 2.0 and set(rows) == {"r1", "r2"}
    ids = [f"v{i}" for i in range(40)]
    vectors = np.eye(DIMENSION)[np.arange(40) % DIMENSION] + 0.01
    assert api.index_embeddings(ids, vectors, [{"i": i} for i in range(40)]) == 40
    best = api.query_embeddings(unit(1.0), top_k=1)[0]
    assert best["id"] in ids and best["metadata"]["i"] % DIMENSION == 0
    assert api.set_contexts({}) == [] and api.get_contexts([]) == []
    assert api.write_flow_run_histories([]) == 0 and api.index_embeddings([], []) == 0


@pytest.mark.parametrize(("call", "field"), [
    (lambda m: m.set_contexts([("s", {"a": 1}), ("t", [1])]), r"contexts\[1\]\.data"),
    (lambda m: m.set_contexts({"s": {"a": 1}, "": {}}), r"contexts\[1\]\.context_id"),
    (lambda m: m.set_contexts({"s": {"x": object()}}), r"contexts\[0\]\.data\["),
    (lambda m: m.append_events("s", [{"a": 1}, 7]), r"events\[1\]"),
    (lambda m: m.write_task_outputs([{"task_id": "t", "output": 1}, {"output": 2}]),
     r"outputs\[1\]\.task_id"),
    (lambda m: m.write_task_outputs([{"task_id": "t", "output": {1, object()}}]),
     r"outputs\[0\]\.output"),
    (lambda m: m.write_flow_run_histories([{"flow_id": "f", "run_id": "r", "data": {}},
                                           {"flow_id": "f", "run_id": "r2",
                                            "data": {"status": 5}}]),
     r'runs\[1\]\.data\["status"\]'),
    (lambda m: m.write_flow_run_histories([{"flow_id": "f", "run_id": "r", "oops": 1}]),
     r"runs\[0\]"),
    (lambda m: m.index_embeddings(["a", "b"], [unit(1.0), unit(float("nan"))]),
     "embeddings"),
    (lambda m: m.index_embeddings(["a", "a"], [unit(1.0), unit(1.0)]), "ids"),
    (lambda m: m.index_embeddings(["a", "b"], [unit(1.0), unit(0.0, 1.0)], [{}, 3]),
     r"metadata\[1\]"),
    (lambda m: m.get_contexts("s1"), "context_ids"),
])
def test_bad_item_names_the_argument_and_writes_nothing(api: MemoryAPI, call: Any,
                                                        field: str) -> None:
    """A bad item raises a typed error naming the facade's argument and item; nothing of
    the batch is stored."""
    with pytest.raises(MemoryValidationError, match=f"^{field}"):
        call(api)
    assert api.get_contexts(["s", "t"]) == [None, None] and api.get_events("s") == []
    assert api.read_task_output("t") is None and api.read_flow_run_history("f") == []
    assert api.store("vectors").count() == 0


def test_serialization_errors_keep_their_path(api: MemoryAPI) -> None:
    """An unencodable value deep in an item reports the item and the path inside it."""
    with pytest.raises(SerializationError) as caught:
        api.write_task_outputs([{"task_id": "t", "output": 1},
                                {"task_id": "t", "output": {"deep": [1, object()]}}])
    assert caught.value.field == "outputs[1].output"
    assert caught.value.path.startswith("outputs[1].output")


def test_too_many_items_are_refused(api: MemoryAPI) -> None:
    """A batch over MAX_BATCH items is refused before any work."""
    from memory_resources.batching import MAX_BATCH

    with pytest.raises(MemoryValidationError, match="at most"):
        api.get_contexts(["x"] * (MAX_BATCH + 1))


def _poison_sqlite(store: SQLiteStore) -> None:
    conn = sqlite3.connect(store.path)
    conn.execute(f"CREATE TRIGGER poison BEFORE INSERT ON task_outputs WHEN NEW.task_id ="
                 f" '{POISON}' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END")
    conn.commit()
    conn.close()


def _poison_postgres(dsn: str, schema: str) -> None:
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute(sql.SQL(
            "CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF NEW.task_id = %s THEN RAISE EXCEPTION 'poisoned row'; END IF;"
            " RETURN NEW; END $$").format(fn=sql.Identifier(schema, "poison")), (POISON,))
        cur.execute(sql.SQL(
            "CREATE TRIGGER poison BEFORE INSERT ON {t} FOR EACH ROW EXECUTE FUNCTION {fn}()"
        ).format(t=sql.Identifier(schema, "task_outputs"),
                 fn=sql.Identifier(schema, "poison")))
    conn.close()


def _assert_atomic(memory: MemoryAPI) -> None:
    with pytest.raises(BackendError):
        memory.write_task_outputs([{"task_id": "first", "output": 1},
                                   {"task_id": POISON, "output": 2}])
    assert memory.read_task_output("first") is None
    assert memory.read_audit_log(operation="output.write") == []
    assert memory.write_task_outputs([{"task_id": "first", "output": 1}])[0]["version"] == 1


def test_sqlite_batch_is_atomic_when_the_database_fails(api: MemoryAPI) -> None:
    """SQLite: the database refusing the 2nd item rolls back the 1st and its audit row."""
    _poison_sqlite(api.store("outputs"))
    _assert_atomic(api)


def test_postgres_batch_is_atomic_when_the_database_fails(
        postgres_dsn: str, pg_schema: str, embedded_config: dict[str, Any]) -> None:
    """PostgreSQL: the database refusing the 2nd item rolls back the 1st and its audit row
    (one transaction), and the pool stays usable."""
    store: PostgresStore = make_postgres_store(postgres_dsn, pg_schema)
    _poison_postgres(postgres_dsn, pg_schema)
    memory = MemoryAPI.from_stores(history=store, outputs=store, audit=store,
                                   embedded_config=embedded_config)
    try:
        _assert_atomic(memory)
    finally:
        memory.disconnect()


def test_batch_over_its_deadline_writes_nothing(pgvector_dsn: str, pgvector_schema: str,
                                                tmp_path: Any) -> None:
    """A pgvector batch that cannot finish within operation_timeout (its table is locked
    by another session) raises BackendTimeoutError and leaves no vector behind."""
    from memory_resources.errors import BackendTimeoutError

    vector_config = {"backend": "pgvector", "dimension": DIMENSION, "namespace": "batch"}
    postgres_config = {"dsn": pgvector_dsn, "schema": pgvector_schema}
    embedded_config = {"path": str(tmp_path / "memory.db")}
    with MemoryAPI(postgres_config=postgres_config, vector_config=vector_config,
                   embedded_config=embedded_config):
        pass  # migrations and the table, under the default deadline
    memory = MemoryAPI(
        postgres_config={**postgres_config, "auto_migrate": False, "operation_timeout": 1.0},
        vector_config=vector_config, embedded_config=embedded_config)
    blocker = psycopg2.connect(pgvector_dsn)
    try:
        memory.connect()
        with blocker.cursor() as cur:
            cur.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(
                sql.Identifier(pgvector_schema, "pgvector_batch")))
        ids = [f"v{i}" for i in range(100)]
        with pytest.raises(BackendTimeoutError):
            memory.index_embeddings(ids, np.ones((100, DIMENSION)))
        blocker.rollback()
        assert memory.store("vectors").count() == 0
        assert memory.index_embeddings(ids, np.ones((100, DIMENSION))) == 100
    finally:
        blocker.close()
        memory.disconnect()
