"""RunHistory contract: flow-run rows upserted by (flow_id, run_id), read newest first.

Uses only the Protocol methods through the ``run_history`` fixture (a fresh, isolated store
per test, so ``flow_id=None`` sees only this test's rows). Timestamps are ISO-8601 UTC with
microseconds on every backend, so values written in another form read back normalised.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid
from typing import Any

import pytest

from memory_resources.errors import MemoryValidationError, PayloadTooLargeError
from memory_resources.protocols import RunHistory
from memory_resources.records import FlowRunWrite
from memory_resources.testing.suites import roles

run_history = roles.run_history

RECORD_KEYS = {
    "flow_id", "run_id", "flow_name", "status", "state_name", "started_at", "ended_at",
    "duration", "parameters", "tags", "error_type", "error_message", "deployment_id",
    "parent_run_id", "run_count", "data", "created_at", "updated_at",
}


def _ids() -> tuple[str, str]:
    return f"flow-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())


def _iso(year: int, month: int, day: int, hour: int = 0) -> str:
    return dt.datetime(year, month, day, hour, tzinfo=dt.timezone.utc).isoformat(
        timespec="microseconds")


def _full(flow_id: str, run_id: str) -> FlowRunWrite:
    return FlowRunWrite(
        flow_id=flow_id, run_id=run_id, data={"a": 1, "b": {"x": [1, 2]}},
        flow_name="agent", status="running", state_name="Running",
        started_at=_iso(2026, 1, 2, 3), ended_at=None, duration=None,
        parameters={"goal": "plan", "n": 3}, tags=["t1", "t2"], error_type=None,
        error_message=None, deployment_id="dep-1", parent_run_id="parent-1", run_count=1,
    )


def test_fixture_implements_protocol(run_history: Any) -> None:
    """The fixture object satisfies the RunHistory protocol."""
    assert isinstance(run_history, RunHistory)


def test_write_returns_record_and_read_round_trips(run_history: RunHistory) -> None:
    """write_flow_run returns the full FlowRunRecord and reading it back gives the same row."""
    flow_id, run_id = _ids()
    written = run_history.write_flow_run(_full(flow_id, run_id))
    assert set(written) == RECORD_KEYS
    assert written["flow_id"] == flow_id and written["run_id"] == run_id
    assert written["data"] == {"a": 1, "b": {"x": [1, 2]}}
    assert written["parameters"] == {"goal": "plan", "n": 3}
    assert written["tags"] == ["t1", "t2"]
    assert written["started_at"] == _iso(2026, 1, 2, 3)
    assert written["status"] == "running" and written["run_count"] == 1
    assert written["created_at"] == written["updated_at"]
    assert dt.datetime.fromisoformat(written["created_at"]).utcoffset() == dt.timedelta(0)
    assert run_history.read_flow_runs(flow_id, run_id) == [written]


def test_minimal_write_has_defaults(run_history: RunHistory) -> None:
    """A write with only ids stores empty data, no tags and None for the optional columns."""
    flow_id, run_id = _ids()
    written = run_history.write_flow_run(FlowRunWrite(flow_id=flow_id, run_id=run_id))
    assert written["data"] == {} and written["tags"] == []
    assert written["parameters"] is None and written["status"] is None
    assert written["duration"] is None and written["run_count"] is None


def test_upsert_keeps_unset_fields_and_merges_data(run_history: RunHistory) -> None:
    """A later write updates given fields, keeps None ones, merges data key by key and
    keeps created_at."""
    flow_id, run_id = _ids()
    first = run_history.write_flow_run(_full(flow_id, run_id))
    time.sleep(0.002)
    second = run_history.write_flow_run(FlowRunWrite(
        flow_id=flow_id, run_id=run_id, status="completed", state_name="Completed",
        ended_at="2026-01-02T04:00:00Z", duration=3600.5, data={"b": "replaced", "c": 3},
    ))
    assert second["status"] == "completed" and second["state_name"] == "Completed"
    assert second["ended_at"] == _iso(2026, 1, 2, 4)
    assert second["duration"] == 3600.5
    assert second["data"] == {"a": 1, "b": "replaced", "c": 3}
    for kept in ("flow_name", "started_at", "parameters", "tags", "deployment_id",
                 "parent_run_id", "run_count"):
        assert second[kept] == first[kept], kept
    assert second["created_at"] == first["created_at"]
    assert dt.datetime.fromisoformat(second["updated_at"]) > dt.datetime.fromisoformat(
        first["updated_at"])
    rows = run_history.read_flow_runs(flow_id)
    assert rows == [second], "an upsert never adds a second row"


def test_created_at_is_set_on_insert_only(run_history: RunHistory) -> None:
    """A given created_at is used on insert (normalised to UTC) and ignored on update."""
    flow_id, run_id = _ids()
    written = run_history.write_flow_run(FlowRunWrite(
        flow_id=flow_id, run_id=run_id, created_at="2026-03-01T12:00:00+02:00"))
    assert written["created_at"] == _iso(2026, 3, 1, 10)
    updated = run_history.write_flow_run(FlowRunWrite(
        flow_id=flow_id, run_id=run_id, status="failed", created_at=_iso(2030, 1, 1)))
    assert updated["created_at"] == _iso(2026, 3, 1, 10)
    assert updated["status"] == "failed"


def test_read_is_newest_first_with_filters_and_limit(run_history: RunHistory) -> None:
    """Rows come newest first by created_at; status, since (inclusive), until (exclusive),
    run_id, limit and flow_id=None filter them."""
    flow_a, flow_b = f"flow-a-{uuid.uuid4().hex[:6]}", f"flow-b-{uuid.uuid4().hex[:6]}"
    days = [5, 1, 3, 2, 4]
    for day in days:
        run_history.write_flow_run(FlowRunWrite(
            flow_id=flow_a, run_id=f"run-{day}", created_at=_iso(2026, 1, day),
            status="completed" if day % 2 else "failed"))
    run_history.write_flow_run(FlowRunWrite(flow_id=flow_b, run_id="other",
                                            created_at=_iso(2026, 1, 6), status="completed"))
    runs = run_history.read_flow_runs(flow_a)
    assert [r["run_id"] for r in runs] == ["run-5", "run-4", "run-3", "run-2", "run-1"]
    assert [r["run_id"] for r in run_history.read_flow_runs(flow_a, limit=2)] == [
        "run-5", "run-4"]
    assert [r["run_id"] for r in run_history.read_flow_runs(flow_a, status="failed")] == [
        "run-4", "run-2"]
    window = run_history.read_flow_runs(flow_a, since=_iso(2026, 1, 2), until=_iso(2026, 1, 4))
    assert [r["run_id"] for r in window] == ["run-3", "run-2"]
    assert [r["run_id"] for r in run_history.read_flow_runs(flow_a, "run-3")] == ["run-3"]
    assert run_history.read_flow_runs(flow_b, "run-3") == []
    everything = run_history.read_flow_runs(None)
    assert [r["run_id"] for r in everything][:2] == ["other", "run-5"]
    assert len(everything) == 6
    assert [r["run_id"] for r in run_history.read_flow_runs(None, status="completed")] == [
        "other", "run-5", "run-3", "run-1"]


def test_read_filters_by_flow_name(run_history: RunHistory) -> None:
    """flow_name keeps only rows whose flow_name equals it exactly (case and wildcards
    included), alone or with flow_id, status and limit, newest first."""
    name = f"agent-{uuid.uuid4().hex[:6]}"
    flow_a, flow_b = f"flow-a-{uuid.uuid4().hex[:6]}", f"flow-b-{uuid.uuid4().hex[:6]}"
    rows = [(flow_a, "a1", name, 1, "completed"), (flow_b, "b1", name, 2, "failed"),
            (flow_a, "a2", name, 3, "completed"), (flow_a, "x1", f"{name}-2", 4, "completed"),
            (flow_b, "u1", name.upper(), 5, "completed"), (flow_b, "n1", None, 6, "completed")]
    for flow_id, run_id, flow_name, day, status in rows:
        run_history.write_flow_run(FlowRunWrite(
            flow_id=flow_id, run_id=run_id, flow_name=flow_name, status=status,
            created_at=_iso(2026, 2, day)))

    def runs(**kwargs: Any) -> list[str]:
        flow_id = kwargs.pop("flow_id", None)
        return [r["run_id"] for r in run_history.read_flow_runs(flow_id, **kwargs)]

    assert runs(flow_name=name) == ["a2", "b1", "a1"]
    assert runs(flow_id=flow_a, flow_name=name) == ["a2", "a1"]
    assert runs(flow_name=name, status="completed") == ["a2", "a1"]
    assert runs(flow_name=name, limit=1) == ["a2"]
    assert runs(flow_name=name, until=_iso(2026, 2, 3)) == ["b1", "a1"]
    assert runs(flow_id=flow_b, run_id="b1", flow_name=name) == ["b1"]
    assert runs(flow_id=flow_b, run_id="u1", flow_name=name) == []
    assert runs(flow_name=f"{name[:-1]}%") == [] and runs(flow_name=f"{name[:-1]}_") == []
    assert all(r["flow_name"] == name for r in run_history.read_flow_runs(None, flow_name=name))


def test_bulk_write_is_one_unit(run_history: RunHistory) -> None:
    """write_flow_runs writes every row and returns the count; upserts within it merge."""
    flow_id = f"bulk-{uuid.uuid4().hex[:6]}"
    records = [FlowRunWrite(flow_id=flow_id, run_id=f"r{n}", data={"n": n}) for n in range(5)]
    records.append(FlowRunWrite(flow_id=flow_id, run_id="r0", status="completed",
                                data={"extra": True}))
    assert run_history.write_flow_runs(records) == 6
    rows = {r["run_id"]: r for r in run_history.read_flow_runs(flow_id)}
    assert set(rows) == {f"r{n}" for n in range(5)}
    assert rows["r0"]["data"] == {"n": 0, "extra": True}
    assert rows["r0"]["status"] == "completed"
    assert run_history.write_flow_runs([]) == 0


def test_bulk_write_with_a_bad_record_writes_nothing(run_history: RunHistory) -> None:
    """One invalid record in write_flow_runs raises naming it (``records[i].<field>``)
    before any row is written."""
    flow_id = f"bulk-{uuid.uuid4().hex[:6]}"
    records = [FlowRunWrite(flow_id=flow_id, run_id=f"r{n}") for n in range(3)]
    records.append(FlowRunWrite(flow_id=flow_id, run_id=""))
    with pytest.raises(MemoryValidationError) as info:
        run_history.write_flow_runs(records)
    assert info.value.field == "records[3].run_id"
    assert run_history.read_flow_runs(flow_id) == []
    records[-1] = FlowRunWrite(flow_id=flow_id, run_id="r3", tags=["lone\ud800surrogate"])
    with pytest.raises(MemoryValidationError) as info:
        run_history.write_flow_runs(records)
    assert info.value.field == "records[3].tags"
    assert run_history.read_flow_runs(flow_id) == []


@pytest.mark.parametrize(("changes", "field"), [
    ({"flow_id": ""}, "flow_id"),
    ({"run_id": 42}, "run_id"),
    ({"data": ["list"]}, "data"),
    ({"data": {"bad": object()}}, "data"),
    ({"started_at": "yesterday"}, "started_at"),
    ({"created_at": "2026-13-45"}, "created_at"),
    ({"duration": -1.0}, "duration"),
    ({"duration": float("nan")}, "duration"),
    ({"tags": "not-a-list"}, "tags"),
    ({"parameters": ["x"]}, "parameters"),
    ({"run_count": -1}, "run_count"),
    ({"run_id": "lone\ud800surrogate"}, "run_id"),
    ({"status": "lone\ud800surrogate"}, "status"),
    ({"flow_name": "lone\udfffsurrogate"}, "flow_name"),
    ({"tags": ["ok", "lone\ud800surrogate"]}, "tags"),
    ({"data": {"text": "lone\ud800surrogate"}}, "data"),
    ({"parameters": {"p": ["lone\ud800surrogate"]}}, "parameters"),
])
def test_bad_write_is_refused_and_nothing_written(
    run_history: RunHistory, changes: dict[str, Any], field: str
) -> None:
    """Each bad field raises MemoryValidationError naming it, and no row appears."""
    flow_id, run_id = _ids()
    record = dataclasses.replace(FlowRunWrite(flow_id=flow_id, run_id=run_id), **changes)
    with pytest.raises(MemoryValidationError) as info:
        run_history.write_flow_run(record)
    assert info.value.field == field
    assert run_history.read_flow_runs(flow_id) == []


def test_bad_update_leaves_the_row_unchanged(run_history: RunHistory) -> None:
    """A refused update (bad value or oversized data) keeps the stored row as it was."""
    flow_id, run_id = _ids()
    stored = run_history.write_flow_run(_full(flow_id, run_id))
    with pytest.raises(MemoryValidationError):
        run_history.write_flow_run(FlowRunWrite(flow_id=flow_id, run_id=run_id,
                                                status="failed", duration=-5))
    with pytest.raises(PayloadTooLargeError) as info:
        run_history.write_flow_run(FlowRunWrite(flow_id=flow_id, run_id=run_id,
                                                data={"big": "x" * (1024 * 1024 + 1)}))
    assert info.value.field == "data"
    assert run_history.read_flow_runs(flow_id, run_id) == [stored]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"limit": 0}, "limit"), ({"limit": -3}, "limit"), ({"since": "not a time"}, "since"),
    ({"until": "31/01/2026"}, "until"), ({"run_id": ""}, "run_id"),
    ({"flow_name": ""}, "flow_name"), ({"flow_name": 7}, "flow_name"),
])
def test_bad_read_arguments_are_refused(
    run_history: RunHistory, kwargs: dict[str, Any], field: str
) -> None:
    """read_flow_runs refuses a bad limit, timestamp, id or flow name naming the argument."""
    with pytest.raises(MemoryValidationError) as info:
        run_history.read_flow_runs("flow", **kwargs)
    assert info.value.field == field


def test_odd_ids_round_trip(run_history: RunHistory) -> None:
    """Flow and run ids with quotes, spaces, globs and unicode are stored exactly."""
    flow_id = f"flow 'quoted' \"{{x}}\" * ü {uuid.uuid4().hex[:6]}"
    run_id = "run / % _ 🚀"
    run_history.write_flow_run(FlowRunWrite(flow_id=flow_id, run_id=run_id, status="running"))
    rows = run_history.read_flow_runs(flow_id, run_id)
    assert len(rows) == 1 and rows[0]["flow_id"] == flow_id and rows[0]["run_id"] == run_id
    assert run_history.read_flow_runs(flow_id.replace("*", "%")) == []
