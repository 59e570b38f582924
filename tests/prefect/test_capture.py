"""Declare-once capture on real Prefect runs: history at each state, task outputs, injection."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prefect import flow, tags, task
from prefect.context import FlowRunContext
from pydantic import SecretStr

from memory_resources.blocks import MemoryStore, RedisMemory
from memory_resources.errors import ConfigurationError
from memory_resources.prefect import MASK, current_memory, remember

pytestmark = [pytest.mark.prefect, pytest.mark.usefixtures("prefect_harness")]

SEEN: dict[str, Any] = {}


@task
def double(x: int) -> int:
    SEEN["task_memory"] = current_memory()
    return x * 2


@task(tags=["memory:skip"])
def skipped_by_tag(x: int) -> str:
    return f"secret-ish {x}"


@task
def excluded(x: int) -> int:
    return x + 100


@task
async def async_square(x: int) -> int:
    return x * x


def _rows(memory: MemoryStore) -> list[dict[str, Any]]:
    return [dict(r) for r in memory.api.read_flow_run_history(None, limit=100)]


def _outputs_of(memory: MemoryStore, flow_run_id: str) -> list[dict[str, Any]]:
    audit = memory.api.read_audit_log(operation="output.write", flow_run_id=flow_run_id,
                                      limit=100)
    records = [memory.api.read_task_output(row["target"]) for row in audit]
    return [dict(r) for r in records if r is not None]


def test_sync_flow_captures_history_outputs_and_attribution(memory_store: MemoryStore) -> None:
    """One sync run writes a full history row, its tasks' outputs (mapped too, opt-outs not),
    masks secrets, and attributes in-flow writes to the run in the audit log."""

    @remember(memory_store, exclude=[excluded])
    @flow(name="capture-sync")
    def capture_sync(n: int, token: SecretStr, conn: RedisMemory, big: str) -> list[int]:
        SEEN["flow_memory"] = current_memory()
        memory_store.context("session-a").append_event({"type": "step", "n": n})
        skipped_by_tag(n)
        excluded(n)
        return double.map([1, 2, n]).result()

    with tags("team-a", "nightly"):
        block_as_dict: Any = {"host": "h", "port": 6390, "password": "pw-456"}
        result = capture_sync(3, SecretStr("tok-123"), block_as_dict, "x" * 200_000)
    assert result == [2, 4, 6]
    rows = [r for r in _rows(memory_store) if r["flow_name"] == "capture-sync"]
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "completed" and row["state_name"] == "Completed"
    assert row["run_count"] == 1 and row["parent_run_id"] is None
    assert row["deployment_id"] is None
    assert row["tags"] == ["nightly", "team-a"]
    assert row["started_at"] and row["ended_at"] and row["started_at"] <= row["ended_at"]
    assert row["duration"] is not None and row["duration"] >= 0
    assert row["data"]["flow_run_name"]
    params = row["parameters"]
    assert params["n"] == 3 and params["token"] == MASK
    assert params["conn"]["password"] == MASK and params["conn"]["host"] == "h"
    assert params["big"]["__truncated__"] is True and params["big"]["size"] > 200_000
    text = repr(row)
    assert "tok-123" not in text and "pw-456" not in text

    outputs = _outputs_of(memory_store, row["run_id"])
    assert sorted(o["output"] for o in outputs) == [2, 4, 6]
    assert {o["metadata"]["task_name"] for o in outputs} == {"double"}
    assert all(o["flow_run_id"] == row["run_id"] and o["task_run_id"] == o["task_id"]
               for o in outputs)
    assert SEEN["flow_memory"] is memory_store and SEEN["task_memory"] is memory_store

    events = memory_store.api.read_audit_log(operation="event.append",
                                             flow_run_id=row["run_id"])
    assert len(events) == 1 and events[0]["target"] == "session-a"


DEFAULT_TOKEN = SecretStr("default-secret")


def test_parameters_left_to_their_defaults_are_recorded(memory_store: MemoryStore) -> None:
    """A run given no value for a parameter records the default it ran with (as a
    deployment run started with no parameters does), secret defaults masked."""

    @remember(memory_store)
    @flow(name="capture-defaults")
    def capture_defaults(n: int = 7, label: str = "plain",
                         token: SecretStr = DEFAULT_TOKEN) -> int:
        return n

    assert capture_defaults(label="given") == 7
    row = next(r for r in _rows(memory_store) if r["flow_name"] == "capture-defaults")
    assert row["parameters"] == {"n": 7, "label": "given", "token": MASK}


def test_retry_attempts_and_failure_are_recorded(memory_store: MemoryStore) -> None:
    """A retried run ends as one row with run_count 2; a failed run records the error."""
    attempts = {"n": 0}

    @remember(memory_store)
    @flow(name="capture-retry", retries=1)
    def flaky() -> str:
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    @remember(memory_store)
    @flow(name="capture-fail")
    def broken() -> None:
        raise ValueError("bad input 42")

    assert flaky() == "ok"
    with pytest.raises(ValueError, match="bad input 42"):
        broken()
    rows = {r["flow_name"]: r for r in _rows(memory_store)}
    retried = rows["capture-retry"]
    assert retried["status"] == "completed" and retried["run_count"] == 2
    assert retried["error_type"] is None
    failed = rows["capture-fail"]
    assert failed["status"] == "failed" and failed["state_name"] == "Failed"
    assert failed["error_type"] == "ValueError" and failed["error_message"] == "bad input 42"
    assert failed["ended_at"] is not None
    assert len(_rows(memory_store)) == 2


class Interrupted(BaseException):
    """Not an Exception: Prefect treats it as a crash."""


def test_crashed_run_is_recorded(memory_store: MemoryStore) -> None:
    """A run interrupted by a BaseException is stored as crashed with the exception."""

    @remember(memory_store)
    @flow(name="capture-crash")
    def crashes() -> None:
        raise Interrupted("pulled the plug")

    with pytest.raises(Interrupted):
        crashes()
    (row,) = _rows(memory_store)
    assert row["status"] == "crashed" and row["state_name"] == "Crashed"
    assert row["error_type"] == "Interrupted" and "pulled the plug" in row["error_message"]


def test_async_flow_with_captured_subflow(memory_store: MemoryStore) -> None:
    """An async flow and its async subflow are both captured; the subflow row names the
    parent run and async task outputs are stored."""

    @remember(memory_store)
    @flow(name="capture-child")
    async def child(x: int) -> int:
        return await async_square(x)

    @remember(memory_store)
    @flow(name="capture-parent")
    async def parent(x: int) -> int:
        run_id = str(FlowRunContext.get().flow_run.id)  # type: ignore[union-attr]
        SEEN["parent_run_id"] = run_id
        return await child(x) + 1

    assert asyncio.run(parent(4)) == 17
    rows = {r["flow_name"]: r for r in _rows(memory_store)}
    assert rows["capture-parent"]["status"] == "completed"
    assert rows["capture-child"]["status"] == "completed"
    assert rows["capture-child"]["parent_run_id"] == SEEN["parent_run_id"]
    assert rows["capture-child"]["data"]["parent_task_run_id"]
    outputs = _outputs_of(memory_store, rows["capture-child"]["run_id"])
    assert [o["output"] for o in outputs] == [16]


def test_current_memory_outside_a_captured_run_is_an_error() -> None:
    """current_memory() outside a captured run raises a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="captured"):
        current_memory()


def test_remember_refuses_a_plain_function(memory_store: MemoryStore) -> None:
    """remember() must sit above @flow: a plain function is refused with a clear error."""
    with pytest.raises(ConfigurationError, match="above @flow"):
        remember(memory_store)(lambda: None)


def test_memory_task_captures_outputs_in_any_flow_with_truncation(tmp_path: Any) -> None:
    """``@memory.task`` stores each run's output even in a flow that is not captured, and an
    output over max_output_bytes is stored truncated (marked in metadata)."""
    small = MemoryStore(embedded_path=str(tmp_path / "m.db"), max_output_bytes=1000,
                        outbox_path=str(tmp_path / "o.db"))

    @small.task
    def tiny(x: int) -> int:
        return x + 1

    @small.task(name="huge", retries=1)  # type: ignore[untyped-decorator]
    def huge() -> str:
        return "y" * 5000

    @flow(name="plain-flow")
    def plain() -> tuple[int, int]:
        return tiny(1), len(huge())

    try:
        assert plain() == (2, 5000)
        assert small.api.read_flow_run_history(None) == [], "the flow itself is not captured"
        audit = small.api.read_audit_log(operation="output.write")
        outputs = {small.api.read_task_output(a["target"])["metadata"]["task_name"]:  # type: ignore[index]
                   small.api.read_task_output(a["target"]) for a in audit}
        assert outputs["tiny"]["output"] == 2  # type: ignore[index]
        assert outputs["tiny"]["metadata"]["truncated"] is False  # type: ignore[index]
        big = outputs["huge"]
        assert big["output"]["__truncated__"] is True  # type: ignore[index]
        assert big["output"]["size"] > 5000 and big["metadata"]["truncated"] is True  # type: ignore[index]
    finally:
        small.close()
