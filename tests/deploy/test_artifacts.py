"""The end-of-run memory summary artifact (``summarize``) on real Prefect flow runs."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from memory_resources.errors import ConfigurationError, MemoryValidationError
from memory_resources.prefect import remember
from memory_resources.prefect.artifacts import artifact_key, run_summary, summarize

pytestmark = pytest.mark.prefect


def _artifacts(flow_run_id: Any, key: str) -> list[Any]:
    """The artifacts of the flow run, re-read for up to 10 s until one has ``key`` (a bound
    on a slow API on a loaded machine; when it never shows, the caller's assertion prints
    the hook's logs)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    found: list[Any] = []
    deadline = time.monotonic() + 10
    with get_client(sync_client=True) as client:
        while True:
            found = client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
            if any(a.key == key for a in found) or time.monotonic() > deadline:
                return found
            time.sleep(0.2)


def _diagnose(found: list[Any], caplog: pytest.LogCaptureFixture,
              capsys: pytest.CaptureFixture[str]) -> str:
    """The artifacts found and the run's logs (Prefect's and structlog's), for a failure."""
    return f"{found}\n{caplog.text[-3000:]}\n{capsys.readouterr().out[-3000:]}"


def test_summary_artifact_lists_what_a_completed_run_wrote(
    prefect_harness: None, memory_store: Any, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A completed captured run gets a markdown artifact (key memory-<flow>) showing its
    final status, the context/event/lock/output writes attributed to it and its task
    outputs, plus a table artifact of the outputs with tables=True."""
    from prefect import flow, task
    from prefect.context import get_run_context

    name = f"Summary Agent {uuid.uuid4().hex[:6]}"

    @task
    def plan(goal: str) -> dict[str, Any]:
        """Return a plan for ``goal``."""
        return {"goal": goal, "steps": ["a", "b"]}

    @summarize(tables=True)
    @remember(memory_store)
    @flow(name=name)
    def agent(goal: str) -> str:
        """Write context, an event and a task output under a lock."""
        ctx = memory_store.context("summary-session")
        ctx.update(goal=goal)
        ctx.append_event({"type": "goal"})
        with memory_store.lock("summary-lock"):
            plan(goal)
        return str(get_run_context().flow_run.id)  # type: ignore[union-attr]

    run_id = agent("find notes")
    found = _artifacts(run_id, artifact_key(name))
    artifacts = {a.type: a for a in found}
    assert set(artifacts) == {"markdown", "table"}, _diagnose(found, caplog, capsys)
    markdown = artifacts["markdown"]
    assert markdown.key == artifact_key(name) == f"memory-summary-agent-{name[-6:]}"
    text = markdown.data
    assert f"`{run_id}`" in text
    assert f"| {name} | **completed** | 1 |" in text
    for row in ("| context.set | 1 | `summary-session` |",
                "| event.append | 1 | `summary-session` |",
                "| lock.acquire | 1 | `summary-lock` |",
                "| lock.release | 1 | `summary-lock` |",
                "| output.write | 1 |"):
        assert row in text, row
    assert "| history.write | 2 |" in text
    assert "| plan | `" in text and "| 1 |" in text
    table = json.loads(artifacts["table"].data)
    assert [r["task_name"] for r in table] == ["plan"]
    stored = memory_store.api.read_task_output(table[0]["task_id"])
    assert stored["output"] == {"goal": "find notes", "steps": ["a", "b"]}
    assert table[0]["bytes"] == len(json.dumps(stored["output"]).encode())


def test_summary_artifact_of_a_failed_run_names_the_error(
    prefect_harness: None, memory_store: Any, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A failed captured run's artifact shows status failed and the error type and message,
    and the flow's failure is what the caller sees (the hook adds nothing to it)."""
    from prefect import flow
    from prefect.context import get_run_context

    seen: list[str] = []

    @summarize(key="failing-agent-memory")
    @remember(memory_store)
    @flow(name=f"failing-{uuid.uuid4().hex[:6]}")
    def failing() -> None:
        """Fail after recording the run id."""
        seen.append(str(get_run_context().flow_run.id))  # type: ignore[union-attr]
        raise ValueError("no notes found")

    state = failing(return_state=True)
    assert state.is_failed()
    found = _artifacts(seen[0], "failing-agent-memory")
    ours = [a for a in found if a.key == "failing-agent-memory"]
    assert len(ours) == 1, _diagnose(found, caplog, capsys)
    markdown = ours[0]
    assert markdown.type == "markdown"
    assert "**failed**" in markdown.data
    assert "ValueError: no notes found" in markdown.data


def test_run_summary_reads_back_only_the_runs_writes(memory_store: Any) -> None:
    """run_summary counts the audit rows attributed to the given run id only."""
    from memory_resources.runinfo import acting_as

    api = memory_store.api
    with acting_as("run-a"):
        api.set_context("shared", {"x": 1})
        api.write_task_output("task-a", [1, 2, 3], {"task_name": "t"})
    with acting_as("run-b"):
        api.set_context("shared", {"x": 2})
    summary = run_summary(api, "run-a", store="test")
    assert summary["operations"] == {"context.set": 1, "output.write": 1}
    assert summary["history"] is None
    assert summary["outputs"] == [{"task_id": "task-a", "task_name": "t", "version": 1,
                                   "bytes": len(b"[1, 2, 3]"), "truncated": False}]


def test_summarize_checks_its_arguments(memory_store: Any) -> None:
    """summarize refuses a non-flow, a flow without remember() and a malformed key."""
    from prefect import flow

    @flow
    def plain() -> None:
        """Do nothing."""

    with pytest.raises(ConfigurationError, match="remember"):
        summarize()(plain)
    with pytest.raises(ConfigurationError, match="Prefect flow"):
        summarize(memory_store)(lambda: None)
    with pytest.raises(MemoryValidationError, match="key"):
        summarize(memory_store, key="Not Valid")(plain)
