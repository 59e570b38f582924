"""AuditLog contract: every write leaves an audit row, attributed to the acting run.

The ``audit_log`` fixture must be an object that is ALSO a RunHistory, TaskOutputs and
ContextStore (the SQL backends implement all of them on one store), so this suite can write
through those Protocol methods and then read the trail with ``read_audit``; operations the
object does not offer (events, locks) are skipped. The operations and targets checked:

* ``context.set`` / ``context.clear`` / ``event.append`` — target: the context id
* ``history.write`` — target: the run id
* ``output.write`` — target: the task id

Acting run ids come from :func:`memory_resources.runinfo.acting_as`.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import pytest

from memory_resources.errors import MemoryValidationError
from memory_resources.protocols import AuditLog, ContextStore, EventLog, RunHistory, TaskOutputs
from memory_resources.records import FlowRunWrite
from memory_resources.runinfo import acting_as
from memory_resources.testing.suites import roles

audit_log = roles.audit_log

RECORD_KEYS = {"id", "occurred_at", "operation", "target", "flow_run_id", "task_run_id",
               "details"}


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def test_fixture_is_all_the_audited_capabilities(audit_log: Any) -> None:
    """The audit_log fixture is an AuditLog that is also RunHistory, TaskOutputs and
    ContextStore."""
    for protocol in (AuditLog, RunHistory, TaskOutputs, ContextStore):
        assert isinstance(audit_log, protocol), protocol.__name__


def test_each_write_is_audited_with_the_acting_run(audit_log: Any) -> None:
    """context.set, event.append, context.clear, history.write and output.write each leave
    one row with their target and the acting flow run / task run ids."""
    flow_run, task_run = str(uuid.uuid4()), str(uuid.uuid4())
    cid, run_id, tid = _uid("ctx"), str(uuid.uuid4()), _uid("task")
    expected = [("context.set", cid)]
    with acting_as(flow_run, task_run):
        audit_log.set_context(cid, {"a": 1})
        if isinstance(audit_log, EventLog):
            audit_log.append_event(cid, {"e": 1})
            expected.append(("event.append", cid))
        audit_log.clear_context(cid)
        audit_log.write_flow_run(FlowRunWrite(flow_id="flow", run_id=run_id, status="running"))
        audit_log.write_task_output(tid, {"r": 1})
    expected += [("context.clear", cid), ("history.write", run_id), ("output.write", tid)]
    rows = audit_log.read_audit(flow_run_id=flow_run)
    assert [(r["operation"], r["target"]) for r in reversed(rows)] == expected
    for row in rows:
        assert set(row) == RECORD_KEYS
        assert row["flow_run_id"] == flow_run and row["task_run_id"] == task_run
        assert isinstance(row["id"], int) and isinstance(row["details"], dict)
        assert dt.datetime.fromisoformat(row["occurred_at"]).utcoffset() == dt.timedelta(0)
    ids = [r["id"] for r in rows]
    assert ids == sorted(ids, reverse=True), "newest first"


def test_writes_outside_a_run_have_no_run_ids(audit_log: Any) -> None:
    """A write made outside any run is audited with flow_run_id and task_run_id None."""
    cid = _uid("ctx")
    with acting_as(None, None):
        audit_log.set_context(cid, {"a": 1})
    rows = audit_log.read_audit(target=cid)
    assert len(rows) == 1
    assert rows[0]["flow_run_id"] is None and rows[0]["task_run_id"] is None


def test_filters_and_limit(audit_log: Any) -> None:
    """read_audit filters by operation, target, flow_run_id and since, and honours limit."""
    flow_run = str(uuid.uuid4())
    cid, tid = _uid("ctx"), _uid("task")
    with acting_as(flow_run):
        for n in range(3):
            audit_log.set_context(cid, {"n": n})
        audit_log.write_task_output(tid, "x")
    contexts = audit_log.read_audit(operation="context.set", target=cid)
    assert len(contexts) == 3 and all(r["operation"] == "context.set" for r in contexts)
    assert [r["target"] for r in audit_log.read_audit(operation="output.write",
                                                      flow_run_id=flow_run)] == [tid]
    assert len(audit_log.read_audit(flow_run_id=flow_run, limit=2)) == 2
    newest = audit_log.read_audit(flow_run_id=flow_run)[0]
    assert newest["operation"] == "output.write"
    assert audit_log.read_audit(target=_uid("nothing")) == []
    time.sleep(0.01)
    cut = dt.datetime.now(dt.timezone.utc).isoformat()
    time.sleep(0.01)
    with acting_as(flow_run):
        audit_log.set_context(cid, {"n": "after"})
    recent = audit_log.read_audit(flow_run_id=flow_run, since=cut)
    assert [(r["operation"], r["target"]) for r in recent] == [("context.set", cid)]


def test_refused_writes_leave_no_audit_row(audit_log: Any) -> None:
    """A write refused by validation (or payload size) writes no audit row either."""
    flow_run = str(uuid.uuid4())
    cid, tid = _uid("ctx"), _uid("task")
    with acting_as(flow_run):
        with pytest.raises(MemoryValidationError):
            audit_log.set_context(cid, {"bad": object()})
        with pytest.raises(MemoryValidationError):
            audit_log.set_context(cid, {"big": "x" * (1024 * 1024 + 1)})
        with pytest.raises(MemoryValidationError):
            audit_log.write_task_output(tid, {"bad": object()})
        with pytest.raises(MemoryValidationError):
            audit_log.write_flow_run(FlowRunWrite(flow_id="f", run_id="r", duration=-1))
    assert audit_log.read_audit(flow_run_id=flow_run) == []


def test_bulk_history_write_audits_every_row(audit_log: Any) -> None:
    """write_flow_runs leaves one history.write row per record."""
    flow_run = str(uuid.uuid4())
    with acting_as(flow_run):
        audit_log.write_flow_runs([FlowRunWrite(flow_id="bulk", run_id=f"r{n}")
                                   for n in range(4)])
    rows = audit_log.read_audit(flow_run_id=flow_run, operation="history.write")
    assert sorted(r["target"] for r in rows) == ["r0", "r1", "r2", "r3"]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"limit": 0}, "limit"), ({"limit": "5"}, "limit"), ({"since": "last week"}, "since"),
    ({"target": ""}, "target"),
])
def test_bad_read_arguments_are_refused(
    audit_log: Any, kwargs: dict[str, Any], field: str
) -> None:
    """read_audit refuses a bad limit, timestamp or empty filter naming the argument."""
    with pytest.raises(MemoryValidationError) as info:
        audit_log.read_audit(**kwargs)
    assert info.value.field == field
