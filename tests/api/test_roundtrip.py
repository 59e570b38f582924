"""Every MemoryAPI method round-trips on the embedded default."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import pytest

from memory_resources.api import MemoryAPI
from memory_resources.clock import ManualClock
from memory_resources.errors import LockNotAcquiredError
from tests.concurrency import run_in_threads

from .conftest import DIMENSION, unit


def test_connect_returns_true_and_names_the_embedded_backends(api: MemoryAPI) -> None:
    """connect() returns True and every SQL role runs on sqlite, vectors on the numpy index."""
    assert api.connect() is True
    backends = api.backends
    assert {backends[r] for r in ("context", "events", "locks", "history", "outputs",
                                  "audit")} == {"sqlite"}
    assert backends["vectors"] == "numpy"


def test_set_and_get_context_return_the_spec_envelope(api: MemoryAPI) -> None:
    """set_context returns True and get_context(id)["data"] is the stored dict."""
    assert api.set_context("ctx-1", {"user_id": "u1", "n": [1, 2]}, ttl=3600) is True
    record = api.get_context("ctx-1")
    assert record is not None
    assert record["data"] == {"user_id": "u1", "n": [1, 2]}
    assert record["context_id"] == "ctx-1"
    assert record["ttl"] == 3600
    assert record["version"] == 1
    api.set_context("ctx-1", {"user_id": "u2"})
    again = api.get_context("ctx-1")
    assert again is not None
    assert again["data"] == {"user_id": "u2"}
    assert again["version"] == 2
    assert again["ttl"] is None


def test_get_context_of_unknown_id_is_none(api: MemoryAPI) -> None:
    """Reading a context that was never set returns None."""
    assert api.get_context("nobody") is None


def test_context_expires_after_its_ttl(embedded_config: dict[str, object]) -> None:
    """A context set with ttl=5 is invisible once the injected clock passes 5 seconds."""
    clock = ManualClock(start=1_800_000_000.0)
    with MemoryAPI(embedded_config=embedded_config, vector_config={"dimension": DIMENSION},
                   clock=clock) as memory:
        memory.set_context("short", {"x": 1}, ttl=5)
        clock.advance(4)
        assert memory.get_context("short") is not None
        clock.advance(2)
        assert memory.get_context("short") is None


def test_events_append_in_order_with_cursor_and_limit(api: MemoryAPI) -> None:
    """append_event returns True; get_events lists events in order, pages by since/limit."""
    for index in range(5):
        assert api.append_event("ctx-e", {"type": "step", "i": index}) is True
    events = api.get_events("ctx-e")
    assert [event["data"]["i"] for event in events] == [0, 1, 2, 3, 4]
    assert all(event["context_id"] == "ctx-e" and event["id"] for event in events)
    first_two = api.get_events("ctx-e", limit=2)
    assert [event["data"]["i"] for event in first_two] == [0, 1]
    rest = api.get_events("ctx-e", since=first_two[-1]["id"])
    assert [event["data"]["i"] for event in rest] == [2, 3, 4]


def test_clear_context_removes_context_and_events(api: MemoryAPI) -> None:
    """clear_context removes both and returns True; for an unknown id it returns False."""
    api.set_context("ctx-c", {"a": 1})
    api.append_event("ctx-c", {"type": "x"})
    assert api.clear_context("ctx-c") is True
    assert api.get_context("ctx-c") is None
    assert api.get_events("ctx-c") == []
    assert api.clear_context("ctx-c") is False


def test_flow_run_history_lifts_known_keys_and_keeps_data(api: MemoryAPI) -> None:
    """Known keys of data become columns, the whole dict stays in data, later writes upsert."""
    started = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert api.write_flow_run_history("flow-1", "run-1", {
        "status": "RUNNING", "flow_name": "agent", "started_at": started,
        "parameters": {"goal": "x"}, "tags": ["a", "b"], "custom": {"k": 1},
    }) is True
    api.write_flow_run_history("flow-1", "run-1", {
        "status": "failed", "duration": 12.5, "error": ValueError("boom"),
    })
    rows = api.read_flow_run_history("flow-1")
    assert len(rows) == 1
    row = rows[0]
    assert (row["flow_id"], row["run_id"], row["status"]) == ("flow-1", "run-1", "failed")
    assert row["flow_name"] == "agent"
    assert row["parameters"] == {"goal": "x"}
    assert row["tags"] == ["a", "b"]
    assert row["duration"] == 12.5
    assert (row["error_type"], row["error_message"]) == ("ValueError", "boom")
    assert row["started_at"] is not None and row["started_at"].startswith("2026-01-02T03:04:05")
    assert row["data"]["custom"] == {"k": 1}
    assert row["data"]["error"] == {"type": "ValueError", "message": "boom"}


def test_read_flow_run_history_filters_and_limits(api: MemoryAPI) -> None:
    """run_id, status, flow_name and limit select rows; newest first."""
    for index in range(4):
        api.write_flow_run_history("flow-f", f"run-{index}",
                                   {"status": "completed" if index % 2 else "failed",
                                    "flow_name": "named" if index < 2 else "other"})
    api.write_flow_run_history("flow-g", "run-g", {"flow_name": "named"})
    named = api.read_flow_run_history(None, flow_name="named")
    assert sorted(r["run_id"] for r in named) == ["run-0", "run-1", "run-g"]
    assert [r["run_id"] for r in api.read_flow_run_history(
        "flow-f", flow_name="named", status="completed")] == ["run-1"]
    assert len(api.read_flow_run_history("flow-f")) == 4
    assert [r["run_id"] for r in api.read_flow_run_history("flow-f", run_id="run-2")] == ["run-2"]
    completed = api.read_flow_run_history("flow-f", status="completed")
    assert sorted(r["run_id"] for r in completed) == ["run-1", "run-3"]
    assert len(api.read_flow_run_history("flow-f", limit=3)) == 3
    assert api.read_flow_run_history("other-flow") == []


def test_task_outputs_are_versioned(api: MemoryAPI) -> None:
    """write_task_output returns True, read_task_output the latest, list_task_outputs all."""
    assert api.write_task_output("task-1", {"result": "first"}) is True
    assert api.write_task_output("task-1", {"result": "second"}, {"attempt": 2},
                                 task_run_id="tr-1", flow_run_id="fr-1") is True
    latest = api.read_task_output("task-1")
    assert latest is not None
    assert latest["output"] == {"result": "second"}
    assert latest["metadata"] == {"attempt": 2}
    assert (latest["task_run_id"], latest["flow_run_id"]) == ("tr-1", "fr-1")
    assert latest["version"] == 2
    versions = api.list_task_outputs("task-1")
    assert [v["output"]["result"] for v in versions] == ["second", "first"]
    assert api.read_task_output("task-unknown") is None


def test_task_output_accepts_codec_types(api: MemoryAPI) -> None:
    """A non-dict output of a codec-supported type round-trips with its type."""
    moment = dt.datetime(2026, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
    api.write_task_output("task-typed", [moment, {1, 2}, b"raw"])
    record = api.read_task_output("task-typed")
    assert record is not None
    assert record["output"] == [moment, {1, 2}, b"raw"]


def test_every_write_is_in_the_audit_log(api: MemoryAPI) -> None:
    """Context, event, history and output writes each leave an audit row on the same store."""
    api.set_context("ctx-a", {"x": 1})
    api.append_event("ctx-a", {"type": "y"})
    api.write_flow_run_history("flow-a", "run-a", {"status": "completed"})
    api.write_task_output("task-a", {"ok": True})
    rows = api.read_audit_log(limit=50)
    assert len(rows) >= 4
    targets = " ".join(row["target"] for row in rows)
    for name in ("ctx-a", "run-a", "task-a"):
        assert name in targets
    only_outputs = api.read_audit_log(target="task-a")
    assert only_outputs and all("task-a" in row["target"] for row in only_outputs)


def test_embeddings_index_query_and_delete(api: MemoryAPI) -> None:
    """index_embedding/query_embeddings/delete_embedding round-trip with metadata filters."""
    assert api.index_embedding("a", unit(1, 0), {"type": "doc"}) is True
    assert api.index_embedding("b", unit(0, 1), {"type": "note"}) is True
    assert api.index_embedding("c", unit(1, 1), {"type": "doc"}) is True
    hits = api.query_embeddings(unit(1, 0.1), top_k=2)
    assert [hit["id"] for hit in hits] == ["a", "c"]
    assert set(hits[0]) == {"id", "score", "metadata"}
    assert hits[0]["metadata"] == {"type": "doc"}
    assert hits[0]["score"] == pytest.approx(0.995, abs=0.01)
    notes = api.query_embeddings(unit(1, 0), top_k=5, filter_metadata={"type": "note"})
    assert [hit["id"] for hit in notes] == ["b"]
    assert api.delete_embedding("a") is True
    assert api.delete_embedding("a") is False
    assert [hit["id"] for hit in api.query_embeddings(unit(1, 0), top_k=5)] == ["c", "b"]


def test_index_embedding_upserts_by_id(api: MemoryAPI) -> None:
    """Indexing an existing id replaces its vector and metadata."""
    api.index_embedding("x", unit(1, 0), {"v": 1})
    api.index_embedding("x", unit(0, 1), {"v": 2})
    hits = api.query_embeddings(unit(0, 1), top_k=5)
    assert [(hit["id"], hit["metadata"]) for hit in hits] == [("x", {"v": 2})]


def test_embeddings_persist_across_instances(embedded_config: dict[str, object]) -> None:
    """Embeddings written by one MemoryAPI are found by a new one on the same file."""
    config = {"dimension": DIMENSION}
    with MemoryAPI(vector_config=config, embedded_config=embedded_config) as first:
        first.index_embedding("kept", unit(0, 0, 1), {"n": 1})
        first.set_context("kept", {"n": 1})
    with MemoryAPI(vector_config=config, embedded_config=embedded_config) as second:
        assert [h["id"] for h in second.query_embeddings(unit(0, 0, 1), top_k=1)] == ["kept"]
        assert second.get_context("kept") is not None


def test_acquire_lock_gives_increasing_fencing_tokens(api: MemoryAPI) -> None:
    """acquire_lock is a context manager; each acquisition's fencing token is larger."""
    tokens = []
    for _ in range(3):
        with api.acquire_lock("critical", timeout=5, blocking_timeout=1) as lock:
            assert lock.held
            tokens.append(lock.fencing_token)
    assert all(isinstance(t, int) for t in tokens)
    assert tokens == sorted(tokens) and len(set(tokens)) == 3


def test_acquire_lock_blocks_a_second_holder(api: MemoryAPI) -> None:
    """While one holder has the lock a second acquire with blocking_timeout=0 is refused."""
    with api.acquire_lock("busy", timeout=10, blocking_timeout=0):
        with pytest.raises(LockNotAcquiredError) as caught:
            api.acquire_lock("busy", timeout=10, blocking_timeout=0).acquire()
        assert caught.value.lock_name == "busy"
    with api.acquire_lock("busy", blocking_timeout=0) as again:
        assert again.held


def test_lock_is_released_when_the_body_raises(api: MemoryAPI) -> None:
    """An exception inside the with-block releases the lock."""
    with pytest.raises(RuntimeError), api.acquire_lock("raising", blocking_timeout=0):
        raise RuntimeError("inside")
    with api.acquire_lock("raising", blocking_timeout=0) as lock:
        assert lock.held


def test_with_statement_connects_and_disconnects(embedded_config: dict[str, object]) -> None:
    """`with MemoryAPI(...) as m` yields a usable API and it reconnects lazily after exit."""
    memory = MemoryAPI(embedded_config=embedded_config, vector_config={"dimension": DIMENSION})
    with memory as m:
        assert m is memory
        m.set_context("w", {"v": 1})
    record = memory.get_context("w")  # lazy reconnect after disconnect
    assert record is not None and record["data"] == {"v": 1}
    memory.disconnect()
    memory.disconnect()  # idempotent


def test_lazy_connect_without_connect_call(embedded_config: dict[str, object]) -> None:
    """Methods work without an explicit connect()."""
    memory = MemoryAPI(embedded_config=embedded_config, vector_config={"dimension": DIMENSION})
    try:
        assert memory.set_context("lazy", {"v": 1}) is True
        assert memory.index_embedding("lazy", unit(1)) is True
    finally:
        memory.disconnect()


def test_embedded_default_path_follows_memory_resources_home(memory_home: Path) -> None:
    """MemoryAPI() with no configs writes its SQLite file under MEMORY_RESOURCES_HOME."""
    with MemoryAPI() as memory:
        memory.set_context("home", {"v": 1})
        assert memory.vector_dimension == 768
    assert (memory_home / "memory.db").exists()


def test_history_time_filters_accept_datetimes(embedded_config: dict[str, object]) -> None:
    """since (inclusive) and until (exclusive) select rows by creation time on the clock."""
    clock = ManualClock(start=1_800_000_000.0)
    with MemoryAPI(embedded_config=embedded_config, vector_config={"dimension": DIMENSION},
                   clock=clock) as memory:
        memory.write_flow_run_history("timed", "early", {"status": "completed"})
        clock.advance(3600)
        middle = dt.datetime.fromtimestamp(clock.time(), dt.timezone.utc)
        memory.write_flow_run_history("timed", "late", {"status": "completed"})
        assert [r["run_id"] for r in memory.read_flow_run_history("timed", since=middle)] == [
            "late"]
        assert [r["run_id"] for r in memory.read_flow_run_history(
            "timed", until=middle.isoformat())] == ["early"]
        audit = memory.read_audit_log(since=middle)
        assert [row["target"] for row in audit] == ["late"]


def test_store_returns_the_connected_store_of_a_role(api: MemoryAPI) -> None:
    """store(role) gives the backend object serving that role, connected."""
    history = api.store("history")
    assert history is api.store("context")
    assert history.backend_name == "sqlite"
    assert api.store("vectors").backend_name == "numpy"


def test_one_api_shared_by_many_threads(api: MemoryAPI) -> None:
    """Eight threads writing through one MemoryAPI lose no context, event or output."""
    def work(worker: int) -> None:
        for index in range(15):
            api.set_context(f"t{worker}-{index}", {"w": worker, "i": index})
            api.append_event(f"stream-{worker}", {"i": index})
            api.write_task_output(f"task-{worker}", {"i": index})

    errors = run_in_threads(*(functools.partial(work, w) for w in range(8)))
    assert errors == []
    for worker in range(8):
        assert [e["data"]["i"] for e in api.get_events(f"stream-{worker}")] == list(range(15))
        assert len(api.list_task_outputs(f"task-{worker}")) == 15
        for index in range(15):
            record = api.get_context(f"t{worker}-{index}")
            assert record is not None and record["data"] == {"w": worker, "i": index}
