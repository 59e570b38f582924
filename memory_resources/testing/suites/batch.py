"""Batch contract: set_contexts / get_contexts, append_events, write_task_outputs,
write_flow_runs and a large vector upsert behave like their single calls, item by item.

Every batch validates all items before writing: a bad item raises a MemoryValidationError
naming ``<argument>[i]`` and nothing of the batch is stored. Each item is audited like
the single call on the SQL backends.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest

from memory_resources.errors import MemoryValidationError, SerializationError
from memory_resources.protocols import ContextStore, EventLog, RunHistory, TaskOutputs, VectorIndex
from memory_resources.records import FlowRunWrite, TaskOutputWrite
from memory_resources.runinfo import acting_as
from memory_resources.testing.suites import roles

audit_log = roles.audit_log
context_store = roles.context_store
event_log = roles.event_log
run_history = roles.run_history
task_outputs = roles.task_outputs
vector_index = roles.vector_index


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


# -- contexts --------------------------------------------------------------------------------

def test_set_contexts_stores_each_like_set_context(context_store: ContextStore) -> None:
    """set_contexts returns one envelope per item in order; get_contexts reads them back in
    the order asked, None for an absent id; a second batch bumps each version."""
    a, b, absent = _uid("a"), _uid("b"), _uid("absent")
    written = context_store.set_contexts({a: {"n": 1}, b: {"n": 2}}, ttl=60)
    assert [r["context_id"] for r in written] == [a, b]
    assert [r["data"] for r in written] == [{"n": 1}, {"n": 2}]
    assert all(r["version"] == 1 and r["ttl"] == 60 and r["expires_at"] for r in written)
    assert context_store.get_contexts([b, absent, a]) == [written[1], None, written[0]]
    again = context_store.set_contexts([(a, {"n": 3}), (b, {"n": 4})])
    assert [(r["version"], r["ttl"], r["expires_at"]) for r in again] == [(2, None, None)] * 2
    assert context_store.get_context(a) == again[0]


def test_set_contexts_same_id_twice_applies_in_order(context_store: ContextStore) -> None:
    """A batch naming one context twice stores both writes in order (versions 1 and 2);
    the second one's data is what reads back."""
    cid, other = _uid("twice"), _uid("other")
    written = context_store.set_contexts([(cid, {"n": 1}), (other, {"n": 0}), (cid, {"n": 2})])
    assert [(r["context_id"], r["version"]) for r in written] == [(cid, 1), (other, 1),
                                                                   (cid, 2)]
    stored = context_store.get_context(cid)
    assert stored is not None and stored["data"] == {"n": 2} and stored["version"] == 2


def test_set_contexts_bad_item_writes_nothing(context_store: ContextStore) -> None:
    """One item that is not a dict, or holds a value the codec cannot encode, fails the
    whole batch naming the item, and none of the batch's contexts is stored."""
    good, other = _uid("good"), _uid("other")
    with pytest.raises(MemoryValidationError, match=r"items\[1\]\.data"):
        context_store.set_contexts([(good, {"ok": 1}), (other, ["not", "a", "dict"])])  # type: ignore[list-item]
    with pytest.raises(SerializationError, match=r"items\[1\]\.data"):
        bad: dict[str, Any] = {good: {"ok": 1}, other: {"bad": object()}}
        context_store.set_contexts(bad)
    with pytest.raises(MemoryValidationError, match=r"items\[0\]\.context_id"):
        context_store.set_contexts([("", {"ok": 1}), (good, {"ok": 1})])
    with pytest.raises(MemoryValidationError, match="ttl"):
        context_store.set_contexts({good: {"ok": 1}}, ttl=0)
    assert context_store.get_contexts([good, other]) == [None, None]


def test_batch_shapes_and_empty_batches(context_store: ContextStore) -> None:
    """Empty batches return []; a string where a list of ids belongs and a non-pair item
    are refused with a typed error."""
    assert context_store.set_contexts({}) == []
    assert context_store.get_contexts([]) == []
    with pytest.raises(MemoryValidationError, match="context_ids"):
        context_store.get_contexts("abc")
    with pytest.raises(MemoryValidationError, match=r"items\[0\]"):
        context_store.set_contexts([("only-id",)])  # type: ignore[list-item]
    with pytest.raises(MemoryValidationError, match=r"context_ids\[1\]"):
        context_store.get_contexts(["x", 5])  # type: ignore[list-item]


# -- events ----------------------------------------------------------------------------------

def test_append_events_appends_in_order(event_log: EventLog) -> None:
    """append_events returns each event with an id, in order; get_events lists them after
    an earlier single append, and a later single append follows them."""
    cid = _uid("ctx")
    first = event_log.append_event(cid, {"n": 0})
    batch = event_log.append_events(cid, [{"n": 1}, {"n": 2}, {"n": 3}])
    last = event_log.append_event(cid, {"n": 4})
    assert [e["data"] for e in batch] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert all(e["context_id"] == cid and e["timestamp"] for e in batch)
    listed = event_log.get_events(cid)
    assert [e["id"] for e in listed] == [first["id"], *(e["id"] for e in batch), last["id"]]
    assert [e["data"]["n"] for e in listed] == [0, 1, 2, 3, 4]
    assert event_log.get_events(cid, since=batch[0]["id"], limit=2) == listed[2:4]
    assert event_log.append_events(cid, []) == []


def test_append_events_bad_event_writes_nothing(event_log: EventLog) -> None:
    """A non-dict or unencodable event fails the batch naming ``events[i]``; no event of
    the batch is stored."""
    cid = _uid("ctx")
    with pytest.raises(MemoryValidationError, match=r"events\[1\]"):
        event_log.append_events(cid, [{"ok": 1}, "nope"])  # type: ignore[list-item]
    with pytest.raises(SerializationError, match=r"events\[2\]"):
        event_log.append_events(cid, [{"ok": 1}, {"ok": 2}, {"bad": object()}])
    with pytest.raises(MemoryValidationError, match="events"):
        event_log.append_events(cid, {"not": "a list"})  # type: ignore[arg-type]
    assert event_log.get_events(cid) == []


# -- task outputs ----------------------------------------------------------------------------

def test_write_task_outputs_versions_each_item(task_outputs: TaskOutputs) -> None:
    """Items of one task get consecutive versions in batch order; dicts and TaskOutputWrite
    items are both accepted; reads return what the batch returned."""
    tid, other = _uid("task"), _uid("task")
    task_outputs.write_task_output(tid, "v1")
    written = task_outputs.write_task_outputs([
        TaskOutputWrite(tid, {"r": 2}, {"m": 1}, task_run_id="tr-2", flow_run_id="fr"),
        {"task_id": other, "output": [1, 2]},  # type: ignore[list-item]
        TaskOutputWrite(tid, None),
    ])
    assert [(w["task_id"], w["version"]) for w in written] == [(tid, 2), (other, 1), (tid, 3)]
    assert written[0]["metadata"] == {"m": 1} and written[0]["task_run_id"] == "tr-2"
    assert task_outputs.list_task_outputs(tid)[:2] == [written[2], written[0]]
    assert task_outputs.read_task_output(other) == written[1]
    assert task_outputs.write_task_outputs([]) == []


def test_write_task_outputs_stores_each_task_run_once(task_outputs: TaskOutputs) -> None:
    """A batch item whose task run id is already stored (earlier, or earlier in the same
    batch) stores nothing and returns the stored record."""
    tid, run_a, run_b = _uid("task"), _uid("tr"), _uid("tr")
    first = task_outputs.write_task_output(tid, "a", task_run_id=run_a)
    written = task_outputs.write_task_outputs([
        TaskOutputWrite(tid, "a again", task_run_id=run_a),
        TaskOutputWrite(tid, "b", task_run_id=run_b),
        TaskOutputWrite(tid, "b again", task_run_id=run_b),
    ])
    assert written[0] == first
    assert written[1]["version"] == 2 and written[1]["output"] == "b"
    assert written[2]["version"] == 2 and written[2]["output"] == "b"
    assert [r["version"] for r in task_outputs.list_task_outputs(tid)] == [2, 1]


def test_write_task_outputs_bad_item_writes_nothing(task_outputs: TaskOutputs) -> None:
    """An item missing its output, with an unknown key, an empty task id or an
    unencodable output fails the batch naming ``items[i]``; nothing is stored."""
    tid = _uid("task")
    bad_items: list[tuple[Any, str]] = [
        ({"task_id": tid}, r"items\[1\]\.output"),
        ({"task_id": tid, "output": 1, "extra": 2}, r"items\[1\]"),
        (TaskOutputWrite("", 1), r"items\[1\]\.task_id"),
        (TaskOutputWrite(tid, {"x": object()}), r"items\[1\]\.output"),
        (TaskOutputWrite(tid, 1, metadata=[1]), r"items\[1\]\.metadata"),  # type: ignore[arg-type]
    ]
    for bad, match in bad_items:
        with pytest.raises(MemoryValidationError, match=match):
            task_outputs.write_task_outputs([TaskOutputWrite(tid, "fine"), bad])
    assert task_outputs.read_task_output(tid) is None


# -- run history -----------------------------------------------------------------------------

def test_write_flow_runs_bad_record_writes_nothing(run_history: RunHistory) -> None:
    """A bad record in a bulk history write fails it naming ``records[i]``; nothing of the
    batch is stored."""
    flow = _uid("flow")
    with pytest.raises(MemoryValidationError, match=r"records\[1\]\.run_id"):
        run_history.write_flow_runs([FlowRunWrite(flow_id=flow, run_id="r1"),
                                     FlowRunWrite(flow_id=flow, run_id="")])
    assert run_history.read_flow_runs(flow) == []


# -- vectors ---------------------------------------------------------------------------------

def test_large_upsert_is_one_all_or_nothing_write(vector_index: Any) -> None:
    """100 vectors (pgvector's binary COPY path) go in with one call and read back; a batch
    with one bad metadata item writes none of its vectors."""
    index: VectorIndex = vector_index(dimension=8, metric="cosine")
    rng = np.random.default_rng(7)
    ids = [f"v{i}" for i in range(100)]
    matrix = rng.standard_normal((100, 8)).astype(np.float32)
    assert index.upsert(ids, matrix, [{"i": i} for i in range(100)]) == 100
    assert index.count() == 100
    stored = index.get("v42")
    assert stored is not None and stored[1] == {"i": 42}
    # float16 storage (pgvector_storage="halfvec") keeps 11 significant bits
    lossy = index.stats().get("storage") == "halfvec"  # type: ignore[attr-defined]
    np.testing.assert_allclose(stored[0], matrix[42], rtol=1e-3 if lossy else 1e-6)
    fresh = [f"w{i}" for i in range(50)]
    metadata: list[Any] = [{}] * 49 + [{"bad": object()}]
    with pytest.raises(MemoryValidationError, match=r"metadata\[49\]"):
        index.upsert(fresh, matrix[:50], metadata)
    assert index.count() == 100 and index.get("w0") is None


# -- audit -----------------------------------------------------------------------------------

def test_each_batch_item_is_audited(audit_log: Any) -> None:
    """Batch writes leave one audit row per item, like the single calls, attributed to the
    acting run."""
    flow_run = str(uuid.uuid4())
    a, b, tid = _uid("a"), _uid("b"), _uid("task")
    with acting_as(flow_run, None):
        audit_log.set_contexts({a: {"n": 1}, b: {"n": 2}})
        audit_log.write_task_outputs([TaskOutputWrite(tid, 1), TaskOutputWrite(tid, 2)])
        expected = [("context.set", a), ("context.set", b), ("output.write", tid),
                    ("output.write", tid)]
        if isinstance(audit_log, EventLog):
            audit_log.append_events(a, [{"e": 1}, {"e": 2}])
            expected += [("event.append", a), ("event.append", a)]
    rows = audit_log.read_audit(flow_run_id=flow_run)
    assert sorted((r["operation"], r["target"]) for r in rows) == sorted(expected)
