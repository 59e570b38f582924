"""Real flow runs through an outage: the outbox drains exactly once, also while another
process replays it and the flow is retried, and replayed writes keep their attribution.

The store is an embedded SQLite file whose directory cannot be created while a plain file
stands in its place (a real failure to open the store); removing that file ends the
outage.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prefect import flow, task

from memory_resources.blocks import MemoryStore
from memory_resources.blocks.targets import memory_store_for_target
from memory_resources.capture.outbox import Outbox
from memory_resources.capture.replay import replay_outbox
from memory_resources.prefect import remember, summarize

pytestmark = [pytest.mark.prefect, pytest.mark.usefixtures("prefect_harness")]

ROOT = Path(__file__).resolve().parents[2]


@task
def step(i: int) -> dict[str, int]:
    return {"i": i}


def _outage(tmp_path: Path) -> tuple[MemoryStore, Path]:
    blocker = tmp_path / "store"
    blocker.write_text("stands where the store's directory should be")
    memory = MemoryStore(embedded_path=str(blocker / "memory.db"),
                         outbox_path=str(tmp_path / "outbox.db"))
    return memory, blocker


def _end_outage(blocker: Path) -> None:
    blocker.unlink()
    blocker.mkdir()


def test_replayed_outputs_keep_their_flow_run_in_the_audit_log(tmp_path: Path) -> None:
    """40 task outputs captured during an outage and replayed later are all listed by
    read_audit_log(operation="output.write", flow_run_id=run), each with its task run id,
    like the history row's write."""
    memory, blocker = _outage(tmp_path)

    @remember(memory)
    @flow
    def forty() -> str:
        for i in range(40):
            step(i)
        return "ok"

    state = forty(return_state=True)
    run_id = str(state.state_details.flow_run_id)
    memory.close()
    assert Outbox(tmp_path / "outbox.db").left_by_flow_run(run_id) == {"history": 1,
                                                                        "output": 40}
    _end_outage(blocker)
    (result,) = replay_outbox(Outbox(tmp_path / "outbox.db"), resolve=memory_store_for_target)
    assert (result.written, result.remaining, result.error) == (41, 0, None)

    audit = memory.api.read_audit_log(operation="output.write", flow_run_id=run_id, limit=100)
    assert len(audit) == 40 and len({a["task_run_id"] for a in audit}) == 40
    assert all(a["task_run_id"] for a in audit)
    history = memory.api.read_audit_log(operation="history.write", flow_run_id=run_id)
    assert history and all(a["flow_run_id"] == run_id for a in history)
    memory.close()


def test_capture_failure_is_on_the_run_page_and_in_its_artifact(tmp_path: Path) -> None:
    """A run captured during an outage has WARNING logs on the Prefect API naming the outbox
    and the replay command (history and task output), and its summary artifact says how
    many records it left in the outbox."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.logging.handlers import APILogWorker

    memory, _ = _outage(tmp_path)

    @summarize()
    @remember(memory)
    @flow
    def visible() -> str:
        step(1)
        return "ok"

    state = visible(return_state=True)
    assert state.is_completed()
    run_id = state.state_details.flow_run_id
    APILogWorker.drain_all(timeout=30)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(
            flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200)
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    command = f"memory-resources outbox replay --outbox {tmp_path / 'outbox.db'}"
    warnings = [log for log in logs if log.message.startswith("memory capture:")]
    assert {log.level for log in warnings} == {30}
    assert all(command in log.message for log in warnings)
    assert any("history" in log.message for log in warnings)
    assert any("task output" in log.message and log.task_run_id for log in warnings)
    assert any("left 2 record(s) in the outbox" in str(a.data) for a in artifacts)
    memory.close()


def test_flow_retried_while_another_process_drains_its_outbox(tmp_path: Path) -> None:
    """A flow's first attempt runs during an outage and fails; while a replayer process
    drains the outbox over and over, the outage ends and the flow is retried. Every task
    run's output is stored exactly once, each attributed to the run, and the history row
    ends with the retry's final state (completed, attempt 2), never an older one."""
    memory, blocker = _outage(tmp_path)
    target = memory.outbox_target()
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.register_target(target)
    stop = tmp_path / "stop"
    replayer = subprocess.Popen(
        [sys.executable, "-m", "tests.capture.replayer", str(tmp_path / "outbox.db"),
         target.target, json.dumps({"sqlite": str(blocker / "memory.db")}), "--batch", "2",
         "--until", str(stop)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    memory.capture_writer().retry_after = 0.05  # the flow's writer competes with the drain
    attempts: list[int] = []

    @remember(memory)
    @flow(retries=1, retry_delay_seconds=0)
    def flaky() -> str:
        attempts.append(len(attempts) + 1)
        for i in range(5):
            step(i)
        if len(attempts) == 1:
            _end_outage(blocker)  # the store comes back while the first attempt fails
            raise RuntimeError("first attempt fails")
        return "ok"

    try:
        state = flaky(return_state=True)
    finally:
        stop.write_text("stop")
        out, err = replayer.communicate(timeout=120)
    assert replayer.returncode == 0, err
    assert state.is_completed() and attempts == [1, 2]
    run_id = str(state.state_details.flow_run_id)
    memory.capture_writer().replay()  # whatever the flow's own writer still held
    assert Outbox(tmp_path / "outbox.db").pending() == []
    drained: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    assert drained["rounds"] > 1  # it was draining while the flow ran

    audit = memory.api.read_audit_log(operation="output.write", flow_run_id=run_id, limit=100)
    task_runs = [a["task_run_id"] for a in audit]
    assert len(task_runs) == 10 and len(set(task_runs)) == 10  # 5 tasks x 2 attempts
    for task_run in task_runs:
        assert len(memory.api.list_task_outputs(task_run)) == 1
    (row,) = memory.api.read_flow_run_history(None, run_id)
    assert (row["status"], row["run_count"]) == ("completed", 2)
    memory.close()
