"""`memory-resources history` and `memory-resources outputs` on real stored data."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from memory_resources import default
from memory_resources.cli import app, capture_commands

runner = CliRunner(env={"COLUMNS": "240"})  # a wide terminal: table cells not folded

ALPHA = "11111111-1111-4111-8111-111111111111"
BETA = "22222222-2222-4222-8222-222222222222"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The process default store on an embedded SQLite file in this test's folder."""
    path = tmp_path / "home"
    monkeypatch.setenv("MEMORY_RESOURCES_HOME", str(path))
    for name in (default.ENV_REDIS_URL, default.ENV_POSTGRES_DSN, default.ENV_VECTOR_BACKEND,
                 default.ENV_VECTOR_DIMENSION):
        monkeypatch.delenv(name, raising=False)
    default.reset_memory_api()
    yield path
    default.reset_memory_api()


def _run(flow_id: str, run_id: str, name: str, minute: int, **data: Any) -> None:
    default.get_memory_api().write_flow_run_history(flow_id, run_id, {
        "flow_name": name, "created_at": f"2026-01-02T03:{minute:02d}:00+00:00",
        "started_at": f"2026-01-02T03:{minute:02d}:01+00:00", **data})


def _seed_runs() -> None:
    _run(ALPHA, "a-1", "alpha", 1, status="completed", duration=1.5, flow_run_name="first")
    _run(BETA, "b-1", "beta", 2, status="completed")
    _run(ALPHA, "a-2", "alpha", 3, status="failed", error_type="ValueError",
         error_message="bad goal", run_count=2, flow_run_name="second")
    _run(ALPHA, "a-3", "alpha", 4, status="running", flow_run_name="third")


def test_history_table_lists_the_flows_runs_newest_first(home: Path) -> None:
    """`history --flow NAME` renders only that flow's runs, newest first, with status,
    run name, duration, attempt and error."""
    _seed_runs()
    result = runner.invoke(app, ["history", "--flow", "alpha"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "history of alpha — 3 run(s), newest first" in out
    assert out.index("a-3") < out.index("a-2") < out.index("a-1")
    assert "b-1" not in out
    for text in ("third", "running", "failed", "ValueError: bad goal", "1.50s",
                 "2026-01-02 03:01:01"):
        assert text in out, text


def test_history_json_limit_and_flow_id(home: Path) -> None:
    """`--json` prints the stored rows; `--limit` keeps the newest; a flow id selects too."""
    _seed_runs()
    result = runner.invoke(app, ["history", "--flow", "alpha", "--limit", "2", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["run_id"] for r in rows] == ["a-3", "a-2"]
    stored = default.get_memory_api().read_flow_run_history(ALPHA, limit=2)
    assert rows == json.loads(json.dumps(stored, default=str))

    by_id = runner.invoke(app, ["history", "--flow", BETA, "--json"])
    assert by_id.exit_code == 0, by_id.output
    assert [r["run_id"] for r in json.loads(by_id.stdout)] == ["b-1"]


def test_history_by_name_pages_through_every_row(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Matching by name reads the flow's rows page by page, keeping rows that share a
    creation instant with a page boundary, without duplicates."""
    monkeypatch.setattr(capture_commands, "_SCAN_PAGE", 3)
    expected = []
    for index in range(10):
        name = "alpha" if index % 3 != 1 else "beta"
        minute = index // 2  # two rows per instant: ties fall on page boundaries
        _run(ALPHA if name == "alpha" else BETA, f"r-{index}", name, minute)
        if name == "alpha":
            expected.append(f"r-{index}")
    result = runner.invoke(app, ["history", "--flow", "alpha", "--limit", "100", "--json"])
    assert result.exit_code == 0, result.output
    got = [r["run_id"] for r in json.loads(result.stdout)]
    assert sorted(got) == sorted(expected)
    assert len(got) == len(set(got))
    created = [r["created_at"] for r in json.loads(result.stdout)]
    assert created == sorted(created, reverse=True)


def test_history_lets_the_store_filter_by_name_and_id(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`history --flow X` reads only rows of X from the store (flow_name / flow_id filters,
    no scan of other flows) and merges a non-UUID flow id with the same flow name."""
    _seed_runs()
    _run("etl", "e-1", "nightly", 5)
    _run(BETA, "e-2", "etl", 6)
    _run("etl", "e-3", "nightly", 7)
    api = default.get_memory_api()
    returned: list[dict[str, Any]] = []
    read = api.read_flow_run_history

    def spy(*args: Any, **kwargs: Any) -> Any:
        rows = read(*args, **kwargs)
        returned.extend(rows)
        return rows

    monkeypatch.setattr(api, "read_flow_run_history", spy)
    result = runner.invoke(app, ["history", "--flow", "etl", "--json"])
    assert result.exit_code == 0, result.output
    assert [r["run_id"] for r in json.loads(result.stdout)] == ["e-3", "e-2", "e-1"]
    assert {r["run_id"] for r in returned} == {"e-1", "e-2", "e-3"}

    returned.clear()
    by_name = runner.invoke(app, ["history", "--flow", "alpha", "--limit", "2", "--json"])
    assert [r["run_id"] for r in json.loads(by_name.stdout)] == ["a-3", "a-2"]
    assert {r["flow_name"] for r in returned} == {"alpha"}


def test_history_exit_codes(home: Path) -> None:
    """No run of the flow exits 1 with a message; an empty --flow exits 2 naming it."""
    _seed_runs()
    missing = runner.invoke(app, ["history", "--flow", "gamma"])
    assert missing.exit_code == 1
    assert "no captured runs of flow 'gamma'" in missing.stderr
    missing_json = runner.invoke(app, ["history", "--flow", "gamma", "--json"])
    assert missing_json.exit_code == 1 and json.loads(missing_json.stdout) == []
    bad = runner.invoke(app, ["history", "--flow", ""])
    assert bad.exit_code == 2
    assert "flow" in bad.stderr
    assert runner.invoke(app, ["history", "--flow", "alpha", "--limit", "0"]).exit_code == 2


def test_outputs_lists_versions_and_shortens_long_values(home: Path) -> None:
    """`outputs --task ID` shows every stored version newest first; long outputs are
    shortened unless --full; --json prints the records."""
    api = default.get_memory_api()
    api.write_task_output("task-run-1", {"answer": 41}, {"task_name": "answer",
                                                         "state_name": "Completed"},
                          task_run_id="task-run-1", flow_run_id="flow-run-9")
    long_text = "x" * 1000
    api.write_task_output("task-run-1", {"answer": 42, "notes": long_text},
                          {"task_name": "answer", "state_name": "Completed"},
                          task_run_id="task-run-1b", flow_run_id="flow-run-9")
    result = runner.invoke(app, ["outputs", "--task", "task-run-1"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "outputs of task task-run-1 — 2 version(s), newest first" in out
    assert "flow-run-9" in out and "answer" in out and "Completed" in out
    assert long_text not in "".join(out.split())  # shortened
    assert out.index('"answer": 42') < out.index('"answer": 41')

    full = runner.invoke(app, ["outputs", "--task", "task-run-1", "--full", "--limit", "1"])
    assert full.exit_code == 0
    assert long_text in "".join(full.stdout.replace("│", "").split())
    assert '"answer": 41' not in full.stdout

    as_json = runner.invoke(app, ["outputs", "--task", "task-run-1", "--json"])
    records = json.loads(as_json.stdout)
    assert [r["version"] for r in records] == [2, 1]
    assert records[0]["output"] == {"answer": 42, "notes": long_text}
    assert records[1]["task_run_id"] == "task-run-1"


def test_outputs_exit_codes(home: Path) -> None:
    """An unknown task exits 1 with a message; an empty task id exits 2 naming it."""
    missing = runner.invoke(app, ["outputs", "--task", "nope"])
    assert missing.exit_code == 1
    assert "no stored output for task 'nope'" in missing.stderr
    bad = runner.invoke(app, ["outputs", "--task", ""])
    assert bad.exit_code == 2
    assert "task" in bad.stderr


@pytest.mark.prefect
def test_block_option_reads_a_saved_memory_store(
    prefect_harness: None, tmp_path: Path, home: Path
) -> None:
    """With --block NAME both commands read the saved MemoryStore block's store, where a
    captured flow run wrote its history and its task's output."""
    from prefect import flow, task

    from memory_resources.blocks import MemoryStore
    from memory_resources.prefect import remember

    block_name = f"cli-{uuid.uuid4().hex[:10]}"
    store = MemoryStore(embedded_path=str(tmp_path / "block.db"),
                        outbox_path=str(tmp_path / "outbox.db"))
    store.save(block_name)
    flow_name = f"cli-flow-{uuid.uuid4().hex[:8]}"

    @task
    def double(x: int) -> dict[str, int]:
        """Return twice ``x``."""
        return {"doubled": 2 * x}

    @remember(store)
    @flow(name=flow_name)
    def doubling(x: int) -> Any:
        """Double ``x`` once, returning the task's state."""
        return double(x, return_state=True)

    try:
        task_state: Any = doubling(21)
        task_run_id = str(task_state.state_details.task_run_id)

        result = runner.invoke(app, ["history", "--flow", flow_name, "--block", block_name,
                                     "--json"])
        assert result.exit_code == 0, result.output
        rows = json.loads(result.stdout)
        assert [r["status"] for r in rows] == ["completed"]
        assert rows[0]["parameters"] == {"x": 21}
        # the process default store (another file) knows nothing of this flow
        assert runner.invoke(app, ["history", "--flow", flow_name]).exit_code == 1

        shown = runner.invoke(app, ["outputs", "--task", task_run_id, "--block", block_name])
        assert shown.exit_code == 0, shown.output
        assert '"doubled": 42' in shown.stdout
        assert rows[0]["run_id"] in shown.stdout

        unknown = runner.invoke(app, ["history", "--flow", flow_name, "--block", "no-such"])
        assert unknown.exit_code == 2
        assert "cannot load MemoryStore block 'no-such'" in unknown.stderr
    finally:
        store.close()


def test_history_with_a_corrupt_row_names_it_and_exits_2(home: Path) -> None:
    """A history row that cannot be decoded makes `history` print a message naming the
    run on stderr and exit 2 (no traceback)."""
    import sqlite3

    _seed_runs()
    conn = sqlite3.connect(home / "memory.db")
    with conn:
        conn.execute("UPDATE flow_run_history SET data = '{\"bad' WHERE run_id = 'a-2'")
    conn.close()
    result = runner.invoke(app, ["history", "--flow", "alpha"])
    assert result.exit_code == 2, result.output
    assert f"{ALPHA}/a-2" in result.stderr and "Traceback" not in result.output
