"""TaskOutputs contract: each write adds a version; reads return the latest.

Uses only the Protocol methods through the ``task_outputs`` fixture (fresh store per test).
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import threading
import uuid
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from memory_resources.errors import (
    MemoryValidationError,
    PayloadTooLargeError,
    SerializationError,
)
from memory_resources.protocols import TaskOutputs
from memory_resources.testing.suites import roles

task_outputs = roles.task_outputs

RECORD_KEYS = {"task_id", "version", "output", "metadata", "task_run_id", "flow_run_id",
               "created_at"}


def _tid() -> str:
    return f"task-{uuid.uuid4().hex}"


def test_fixture_implements_protocol(task_outputs: Any) -> None:
    """The fixture object satisfies the TaskOutputs protocol."""
    assert isinstance(task_outputs, TaskOutputs)


def test_write_returns_record_and_read_returns_it(task_outputs: TaskOutputs) -> None:
    """write_task_output returns a full record (version 1) and read_task_output returns it."""
    tid = _tid()
    written = task_outputs.write_task_output(
        tid, {"result": "success", "data": [1, 2, 3]}, {"model": "m1"},
        task_run_id="task-run-1", flow_run_id="flow-run-1")
    assert set(written) == RECORD_KEYS
    assert written["version"] == 1
    assert written["output"] == {"result": "success", "data": [1, 2, 3]}
    assert written["metadata"] == {"model": "m1"}
    assert written["task_run_id"] == "task-run-1" and written["flow_run_id"] == "flow-run-1"
    assert dt.datetime.fromisoformat(written["created_at"]).utcoffset() == dt.timedelta(0)
    assert task_outputs.read_task_output(tid) == written


def test_versions_increase_and_list_is_newest_first(task_outputs: TaskOutputs) -> None:
    """Each write is version N+1; read returns the latest; list is newest first with limit."""
    tid, other = _tid(), _tid()
    written = [task_outputs.write_task_output(tid, {"n": n}) for n in range(4)]
    task_outputs.write_task_output(other, "independent")
    assert [w["version"] for w in written] == [1, 2, 3, 4]
    latest = task_outputs.read_task_output(tid)
    assert latest is not None and latest["version"] == 4 and latest["output"] == {"n": 3}
    assert task_outputs.list_task_outputs(tid) == list(reversed(written))
    assert [r["version"] for r in task_outputs.list_task_outputs(tid, limit=2)] == [4, 3]
    other_latest = task_outputs.read_task_output(other)
    assert other_latest is not None and other_latest["version"] == 1


def test_absent_task_reads_none_and_lists_empty(task_outputs: TaskOutputs) -> None:
    """A task never written reads as None and lists as []."""
    tid = _tid()
    assert task_outputs.read_task_output(tid) is None
    assert task_outputs.list_task_outputs(tid) == []


@pytest.mark.parametrize("output", [
    "plain text", 42, 3.5, None, True, [1, "two", {"three": 3}],
    {"when": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), "id": uuid.UUID(int=7),
     "amount": Decimal("1.10"), "raw": b"\x00\x01", "set": {1, 2}},
])
def test_any_codec_value_round_trips(task_outputs: TaskOutputs, output: Any) -> None:
    """Outputs of any JSON or codec-supported type come back equal and of the same type."""
    tid = _tid()
    task_outputs.write_task_output(tid, output)
    read = task_outputs.read_task_output(tid)
    assert read is not None and read["output"] == output
    assert type(read["output"]) is type(output)
    assert read["metadata"] == {}


def test_numpy_array_output_round_trips(task_outputs: TaskOutputs) -> None:
    """A numpy array output comes back with the same dtype, shape and values."""
    tid = _tid()
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    task_outputs.write_task_output(tid, {"embedding": array})
    read = task_outputs.read_task_output(tid)
    assert read is not None
    got = read["output"]["embedding"]
    assert got.dtype == np.float32 and got.shape == (3, 4) and np.array_equal(got, array)


@pytest.mark.parametrize(("task_id", "output", "metadata", "field"), [
    ("", {"a": 1}, None, "task_id"),
    (7, {"a": 1}, None, "task_id"),
    ("ok", {"a": 1}, ["not a dict"], "metadata"),
    ("ok", {"a": object()}, None, "output"),
    ("ok", {"a": 1}, {"m": object()}, "metadata"),
    ("lone\ud800surrogate", {"a": 1}, None, "task_id"),
    ("ok", {"a": ["lone\ud800surrogate"]}, None, "output"),
    ("ok", {"a": 1}, {"m": "lone\udfffsurrogate"}, "metadata"),
])
def test_bad_write_is_refused_and_nothing_written(
    task_outputs: TaskOutputs, task_id: Any, output: Any, metadata: Any, field: str
) -> None:
    """Bad ids, outputs or metadata raise MemoryValidationError naming them; no version lands."""
    tid = _tid() if task_id == "ok" else task_id
    with pytest.raises(MemoryValidationError) as info:
        task_outputs.write_task_output(tid, output, metadata)
    assert info.value.field == field
    if task_id == "ok":
        assert task_outputs.read_task_output(tid) is None


def test_bad_run_ids_are_refused(task_outputs: TaskOutputs) -> None:
    """Empty task_run_id / flow_run_id strings are refused, naming the argument."""
    tid = _tid()
    with pytest.raises(MemoryValidationError) as info:
        task_outputs.write_task_output(tid, 1, task_run_id="")
    assert info.value.field == "task_run_id"
    with pytest.raises(MemoryValidationError) as info:
        task_outputs.write_task_output(tid, 1, flow_run_id="")
    assert info.value.field == "flow_run_id"
    assert task_outputs.list_task_outputs(tid) == []


def test_unserialisable_output_names_its_path(task_outputs: TaskOutputs) -> None:
    """An output the codec cannot store raises SerializationError naming the bad item."""
    tid = _tid()
    with pytest.raises(SerializationError) as info:
        task_outputs.write_task_output(tid, {"items": [1, 2, 3, object()]})
    assert info.value.path == "output['items'][3]"
    assert task_outputs.read_task_output(tid) is None


def test_oversized_output_is_refused_and_latest_kept(task_outputs: TaskOutputs) -> None:
    """An output above max_payload_bytes raises PayloadTooLargeError; the latest stays."""
    tid = _tid()
    first = task_outputs.write_task_output(tid, "small")
    with pytest.raises(PayloadTooLargeError) as info:
        task_outputs.write_task_output(tid, "x" * (1024 * 1024 + 1))
    assert info.value.field == "output"
    assert task_outputs.list_task_outputs(tid) == [first]


def test_bad_list_limit_is_refused(task_outputs: TaskOutputs) -> None:
    """list_task_outputs refuses limit <= 0 naming limit."""
    with pytest.raises(MemoryValidationError) as info:
        task_outputs.list_task_outputs(_tid(), limit=0)
    assert info.value.field == "limit"


def test_odd_task_ids_round_trip(task_outputs: TaskOutputs) -> None:
    """Task ids with quotes, globs, braces and unicode are stored exactly and kept apart."""
    base = f"task 'q' \"dq\" {{x}} ü 🚀 {uuid.uuid4().hex[:6]}"
    task_outputs.write_task_output(base, "a")
    task_outputs.write_task_output(base + "*", "b")
    read = task_outputs.read_task_output(base)
    assert read is not None and read["task_id"] == base and read["output"] == "a"
    assert read["version"] == 1


def test_same_task_run_is_stored_once(task_outputs: Any) -> None:
    """A second write with the same task_run_id stores nothing (no version, no audit row)
    and returns the first record, even when the output differs."""
    tid, run = _tid(), f"task-run-{uuid.uuid4().hex}"
    first = task_outputs.write_task_output(tid, {"n": 1}, {"m": 1}, task_run_id=run,
                                           flow_run_id="flow-run-1")
    again = task_outputs.write_task_output(tid, {"n": 2}, task_run_id=run)
    assert again == first
    record, created = task_outputs.write_task_output_once(tid, {"n": 3}, task_run_id=run)
    assert (record, created) == (first, False)
    assert task_outputs.list_task_outputs(tid) == [first]
    audit = task_outputs.read_audit(operation="output.write", target=tid)
    assert len(audit) == 1 and audit[0]["details"]["task_run_id"] == run
    later = task_outputs.write_task_output(tid, {"n": 4}, task_run_id=run + "-2")
    assert later["version"] == 2  # another task run of the same task: versions stay gap-free


def test_concurrent_writers_of_one_task_run_store_it_once(task_outputs: Any) -> None:
    """Eight threads writing the same task run at once leave exactly one version; each
    caller gets that record back, and exactly one of them reports it stored it."""
    tid, run = _tid(), f"task-run-{uuid.uuid4().hex}"
    barrier = threading.Barrier(8)

    def write(n: int) -> tuple[Any, bool]:
        barrier.wait()
        result: tuple[Any, bool] = task_outputs.write_task_output_once(
            tid, {"n": n}, task_run_id=run)
        return result

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(write, range(8)))
    stored = task_outputs.list_task_outputs(tid)
    assert len(stored) == 1 and stored[0]["version"] == 1
    assert all(record == stored[0] for record, _ in results)
    assert sum(created for _, created in results) == 1


def test_tag_shaped_output_reads_back_as_written(task_outputs: TaskOutputs) -> None:
    """An output shaped like a codec tag, malformed or not, reads back as the same dict."""
    for output in ({"__type__": "datetime", "value": "zzz"}, {"__type__": "set", "value": [1]},
                   [{"~__type__": "bytes", "value": "AA=="}]):
        task_outputs.write_task_output("shaped", output)
        assert task_outputs.read_task_output("shaped")["output"] == output  # type: ignore[index]
