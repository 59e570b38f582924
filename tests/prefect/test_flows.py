"""The example flows run for real: the demo agent (``make demo``) and the RAG agent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL

from memory_resources.blocks import MemoryStore

pytestmark = [pytest.mark.prefect, pytest.mark.usefixtures("prefect_harness")]

REPO = Path(__file__).resolve().parents[2]


def _run_demo(home: Path) -> str:
    env = {**os.environ, "MEMORY_RESOURCES_HOME": str(home),
           "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    done = subprocess.run([sys.executable, "-m", "flows.demo_agent"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_demo_agent_second_run_shows_the_first(tmp_path: Path) -> None:
    """``python -m flows.demo_agent`` twice on one embedded store: the second summary lists
    the first run's history, and the context, lock and task outputs persisted."""
    first = _run_demo(tmp_path)
    assert "run history of demo-agent (1 run(s)" in first
    assert "[this run]" in first and "[earlier]" not in first
    second = _run_demo(tmp_path)
    assert "run history of demo-agent (2 run(s)" in second
    assert second.count("completed") == 2 and "[earlier]" in second
    assert "runs=2" in second and "fencing token: 2" in second
    assert "output.write x4" in second and "demo:note-3" in second
    store = MemoryStore(embedded_path=str(tmp_path / "memory.db"))
    try:
        rows = store.api.read_flow_run_history(None)
        assert [r["status"] for r in rows] == ["completed", "completed"]
        assert (rows[0]["parameters"] or {})["session_id"] == "demo-session"
    finally:
        store.close()


def test_rag_agent_answers_remembers_and_ingests_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The RAG agent answers from the corpus with citations, keeps the conversation across
    runs, and re-indexes the corpus only when it changed (under its lock)."""
    monkeypatch.setenv("MEMORY_RESOURCES_HOME", str(tmp_path))
    from flows import rag_agent as rag

    first = rag.rag_agent("What happens when a hook cannot write a record?",
                          session_id="s1")
    assert "outbox" in first["citations"]
    assert first["corpus"]["indexed"] > 0 and first["turn"] == 1
    second = rag.rag_agent("How does a fencing token protect a resource?", session_id="s1")
    assert second["citations"] == ["locks"]
    assert second["corpus"]["indexed"] == 0, "same corpus version: not re-indexed"
    assert second["corpus"]["fencing_token"] > first["corpus"]["fencing_token"]
    assert second["turn"] == 2
    try:
        conversation = rag.memory.context("s1")
        assert conversation.data["turns"] == 2
        assert [e["data"]["type"] for e in conversation.events()] == [
            "question", "answer", "question", "answer"]
        runs = rag.memory.api.read_flow_run_history(None)
        assert len(runs) == 2 and {r["flow_name"] for r in runs} == {"rag-agent"}
    finally:
        rag.memory.close()


def test_rag_agent_run_can_choose_its_store(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Passing ``memory=`` to the RAG agent sends the run's data and history to that store."""
    monkeypatch.setenv("MEMORY_RESOURCES_HOME", str(tmp_path / "default"))
    from flows import rag_agent as rag

    other = MemoryStore(embedded_path=str(tmp_path / "other.db"),
                        outbox_path=str(tmp_path / "outbox.db"))
    try:
        result = rag.rag_agent("What do embeddings and metadata do?", session_id="s2",
                               memory=other)
        assert "vectors" in result["citations"]
        assert other.context("s2").data["turns"] == 1
        assert [r["flow_name"] for r in other.api.read_flow_run_history(None)] == ["rag-agent"]
        assert rag.memory.api.read_flow_run_history(None) == []
    finally:
        other.close()
        rag.memory.close()


def test_docs_quick_start_snippet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The quick start of docs/prefect.md (README text) runs as written on the embedded
    default and leaves the run's history and task output in the store."""
    monkeypatch.setenv("MEMORY_RESOURCES_HOME", str(tmp_path))
    text = (REPO / "docs" / "prefect.md").read_text()
    snippet = text.split("## Quick start", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {"__name__": "quick_start"}
    exec(compile(snippet, "docs/prefect.md#quick-start", "exec"), namespace)
    memory = namespace["memory"]
    try:
        rows = memory.api.read_flow_run_history(None)  # type: ignore[attr-defined]
        assert [(r["flow_name"], r["status"]) for r in rows] == [("agent", "completed")]
        outputs = memory.api.read_audit_log(operation="output.write")  # type: ignore[attr-defined]
        assert len(outputs) == 1
        ctx = memory.context("s-1")  # type: ignore[attr-defined]
        assert [e["data"]["type"] for e in ctx.events()] == ["goal"]
    finally:
        memory.close()  # type: ignore[attr-defined]
