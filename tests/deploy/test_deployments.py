"""prefect.yaml against a real ``prefect server start``: deploy, run by a process worker,
and cancel a served flow run through the API.

The tests share one server (session fixture, tests/fixtures/prefect_server.py); each has
its own store files under its ``tmp_path``. A deployment run costs a worker start plus a
fresh flow-run process, so the waits below are generous: they bound a hang, they do not
measure speed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from .server import PREFECT, REPO, VENV_BIN, PrefectServer, terminate, wait_for

MEMORY_RESOURCES_CLI = str(VENV_BIN / "memory-resources")

pytestmark = [pytest.mark.prefect, pytest.mark.slow, pytest.mark.timeout(420)]

_SETUP = """
import asyncio, sys
from memory_resources.blocks import MemoryStore
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists

MemoryStore(embedded_path=sys.argv[1], outbox_path=sys.argv[2]).save("agent-memory",
                                                                     overwrite=True)

async def pool():
    async with get_client() as client:
        try:
            await client.create_work_pool(WorkPoolCreate(name="agents", type="process"))
        except ObjectAlreadyExists:  # the server is shared by this folder's tests
            pass

asyncio.run(pool())
"""


def _history(store: Any, run_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = store.api.read_flow_run_history(None, run_id)
    return rows


def test_prefect_yaml_deploys_and_a_worker_run_writes_its_history(
    prefect_server: PrefectServer, prefect_client: Any, memory_store: Any
) -> None:
    """`prefect deploy --all` accepts prefect.yaml, and a worker run of the rag-agent
    deployment, whose `memory` parameter names a saved MemoryStore block, writes its history
    row and task outputs to that block's store (also shown by `memory-resources history
    --block`)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    prefect_server.cli_python(_SETUP, memory_store.embedded_path, memory_store.outbox_path)
    prefect_server.cli(["--no-prompt", "deploy", "--all"], cwd=REPO)

    rag = prefect_client.read_deployment_by_name("rag-agent/rag-agent")
    demo = prefect_client.read_deployment_by_name("demo-agent/demo-agent")
    assert rag.parameters["memory"] == "agent-memory"
    assert rag.work_pool_name == demo.work_pool_name == "agents"
    assert rag.enforce_parameter_schema is False
    assert rag.pull_steps == [{"prefect.deployments.steps.set_working_directory": {
        "directory": str(REPO)}}]

    run = prefect_client.create_flow_run_from_deployment(
        rag.id, parameters={"question": "How does a lock protect a resource?"})
    run_id = str(run.id)
    worker = prefect_server.popen(
        [PREFECT, "worker", "start", "--pool", "agents", "--run-once"], "worker.log")
    try:
        worker.wait(timeout=300)
    finally:
        terminate(worker)

    final = prefect_client.read_flow_run(run.id)
    assert final.state is not None and final.state.is_completed(), (
        f"{final.state}\n{prefect_server.log_of('worker.log')}")
    rows = _history(memory_store, run_id)
    assert len(rows) == 1, prefect_server.log_of("worker.log")
    row = rows[0]
    assert row["flow_name"] == "rag-agent"
    assert row["status"] == "completed"
    assert row["deployment_id"] == str(rag.id)
    assert row["parameters"] is not None
    assert row["parameters"]["question"] == "How does a lock protect a resource?"
    assert row["parameters"]["memory"] == "agent-memory"
    assert row["tags"] == ["example", "memory-resources"]
    assert row["started_at"] is not None and row["ended_at"] is not None

    task_runs = prefect_client.read_task_runs(
        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
    names = sorted(task_run.name.rsplit("-", 1)[0] for task_run in task_runs)
    assert names == ["compose", "ingest", "retrieve"]
    for task_run in task_runs:
        output = memory_store.api.read_task_output(str(task_run.id))
        assert output is not None, task_run.name
        assert output["flow_run_id"] == run_id
    answer = next(memory_store.api.read_task_output(str(t.id)) for t in task_runs
                  if t.name.startswith("compose"))
    assert answer is not None and "locks" in answer["output"]["citations"]

    # the operator's view: the CLI reads the same row through the saved block
    shown = prefect_server.cli(["history", "--flow", "rag-agent", "--block", "agent-memory",
                                "--json"], program=MEMORY_RESOURCES_CLI)
    assert [r["run_id"] for r in json.loads(shown.stdout)] == [run_id]


def test_cancelling_a_served_flow_run_records_cancelled(
    prefect_server: PrefectServer, prefect_client: Any, memory_store: Any, tmp_path: Path
) -> None:
    """A served, captured flow run cancelled through the API (state Cancelling) ends with
    its history row in status "cancelled", written by the runner's cancellation hook."""
    from prefect.states import Cancelling

    served = prefect_server.popen(
        [sys.executable, str(Path(__file__).with_name("served_flow.py")), "cancel-me"],
        "served.log", cwd=tmp_path,
        MEMORY_RESOURCES_TEST_DB=str(memory_store.embedded_path),
        MEMORY_RESOURCES_TEST_OUTBOX=str(memory_store.outbox_path),
        PREFECT_RUNNER_POLL_FREQUENCY="1",
    )
    try:
        deployment = wait_for(
            lambda: _deployment_or_none(prefect_client, "served-sleeper/cancel-me"),
            timeout=120, what=f"the served deployment\n{prefect_server.log_of('served.log')}")
        run = prefect_client.create_flow_run_from_deployment(
            deployment.id, parameters={"seconds": 240.5})
        run_id = str(run.id)
        wait_for(lambda: [r for r in _history(memory_store, run_id) if r["status"] == "running"],
                 timeout=180, what=f"the running row\n{prefect_server.log_of('served.log')}")

        prefect_client.set_flow_run_state(run.id, Cancelling(), force=True)

        rows = wait_for(
            lambda: [r for r in _history(memory_store, run_id) if r["status"] == "cancelled"],
            timeout=120, what=f"the cancelled row\n{prefect_server.log_of('served.log')}")
    finally:
        terminate(served)
    row = rows[0]
    assert row["flow_name"] == "served-sleeper"
    assert row["deployment_id"] == str(deployment.id)
    assert row["ended_at"] is not None
    assert row["data"]["state_type"] in ("CANCELLING", "CANCELLED")
    final = prefect_client.read_flow_run(run.id)
    assert final.state is not None and final.state.type.value in ("CANCELLING", "CANCELLED")
    assert json.dumps(row["parameters"]) == json.dumps({"seconds": 240.5})


def _deployment_or_none(client: Any, name: str) -> Any:
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(name)
    except ObjectNotFound:
        return None
