"""Every state on record: a captured run keeps its state timeline (Scheduled, Pending,
Running, retries, the end state) with times, and ``duration`` is set for every end state
that has a start; ``memory-resources history --timeline`` shows it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.flow_engine import run_flow_sync
from prefect.states import Crashed, Pending, Scheduled
from typer.testing import CliRunner

from memory_resources import default
from memory_resources.blocks import MemoryStore
from memory_resources.cli import app
from memory_resources.cli.capture_commands import run_phases
from memory_resources.prefect import remember
from memory_resources.prefect.runrecord import flow_run_write

pytestmark = [pytest.mark.prefect, pytest.mark.usefixtures("prefect_harness")]


@pytest.fixture
def home_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryStore]:
    """The embedded default under this test's MEMORY_RESOURCES_HOME (what the CLI reads)."""
    monkeypatch.setenv("MEMORY_RESOURCES_HOME", str(tmp_path / "home"))
    for name in (default.ENV_REDIS_URL, default.ENV_POSTGRES_DSN, default.ENV_VECTOR_BACKEND,
                 default.ENV_VECTOR_DIMENSION):
        monkeypatch.delenv(name, raising=False)
    default.reset_memory_api()
    store = MemoryStore()
    yield store
    store.close()
    default.reset_memory_api()


def _row(store: MemoryStore, run_id: Any) -> dict[str, Any]:
    (row,) = store.api.read_flow_run_history(None, str(run_id))
    return dict(row)


def test_scheduled_run_keeps_scheduled_pending_running_completed(
    home_store: MemoryStore
) -> None:
    """A run created Scheduled and set Pending (as a deployment run and its worker do), then
    executed, records the
    timeline Scheduled -> Pending -> Running -> Completed with increasing times; the queue
    time and the attempt can be read from it, and the CLI shows them."""

    @remember(home_store)
    @flow(name="timeline-scheduled")
    def job() -> int:
        return 1

    with get_client(sync_client=True) as client:
        flow_run = client.create_flow_run(job, state=Scheduled())
        client.set_flow_run_state(flow_run.id, Pending())  # as a worker does on pickup
        flow_run = client.read_flow_run(flow_run.id)
    run_flow_sync(job, flow_run=flow_run)
    row = _row(home_store, flow_run.id)
    timeline = row["data"]["timeline"]
    assert [e["name"] for e in timeline] == ["Scheduled", "Pending", "Running", "Completed"]
    assert [e["type"] for e in timeline] == ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"]
    stamps = [e["timestamp"] for e in timeline]
    assert stamps == sorted(stamps) and all(stamps)
    queue, attempts = run_phases(timeline)
    assert queue is not None and queue >= 0 and len(attempts) == 1
    assert row["duration"] is not None and row["duration"] >= 0
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        app, ["history", "--flow", "timeline-scheduled", "--timeline"])
    assert result.exit_code == 0, result.output
    for name in ("Scheduled", "Pending", "Running", "Completed", "queued", "attempts"):
        assert name in result.output


def test_retries_are_on_record_with_each_attempt(home_store: MemoryStore) -> None:
    """A flow that fails once and is retried keeps both attempts: Running, AwaitingRetry,
    Running again and Completed, so each attempt's time can be read."""
    attempts: list[int] = []

    @remember(home_store)
    @flow(name="timeline-retry", retries=1, retry_delay_seconds=0)
    def flaky() -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")
        from prefect.runtime import flow_run
        return flow_run.id

    run_id = flaky()
    row = _row(home_store, run_id)
    types = [e["type"] for e in row["data"]["timeline"]]
    assert types[0] == "PENDING" and types[-1] == "COMPLETED"
    assert types.count("RUNNING") == 2 and "SCHEDULED" in types  # AwaitingRetry
    assert len(run_phases(row["data"]["timeline"])[1]) == 2
    assert row["run_count"] == 2 and row["duration"] is not None


def test_end_state_written_without_a_known_start_gets_its_duration(
    home_store: MemoryStore
) -> None:
    """An end state recorded where the start is not known (a crash seen by another
    process: no start time on the flow run object, none remembered) still gets started_at
    and duration, from the first Running of the run's timeline."""

    @flow(name="timeline-crash")
    def job() -> Any:
        from prefect.runtime import flow_run
        return flow_run.id

    run_id = job()
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(run_id)
    lost_start = flow_run.model_copy(update={"start_time": None})
    record = flow_run_write(home_store, job, lost_start, Crashed(message="process killed"))
    assert record.status == "crashed" and record.started_at is not None
    assert record.duration is not None and record.duration >= 0
    assert record.data["timeline"][-1]["type"] == "CRASHED"
