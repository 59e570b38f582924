"""Retention on the embedded SQLite file: old history and audit rows go, newer ones and
task outputs stay, expired contexts are purged, and VACUUM makes the file smaller."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memory_resources.cli import app
from memory_resources.clock import ManualClock
from memory_resources.config import EmbeddedConfig
from memory_resources.errors import MemoryValidationError
from memory_resources.records import FlowRunWrite
from memory_resources.stores.sqlite import SQLiteStore

DAY = 86_400.0
runner = CliRunner()


def _fill(path: Path, old_runs: int = 400) -> ManualClock:
    """``old_runs`` bulky runs written 100 days ago, two runs and a task output today, one
    context that expired; returns the clock (at today)."""
    clock = ManualClock()
    store = SQLiteStore(EmbeddedConfig(path=str(path)), clock=clock)
    bulk = {"notes": "x" * 4000}
    store.write_flow_runs([FlowRunWrite("agent", f"old-{i}", data=bulk)
                           for i in range(old_runs)])
    store.set_context("short-lived", {"a": 1}, ttl=60)
    clock.advance(100 * DAY)
    store.write_flow_run(FlowRunWrite("agent", "new-1", data={"n": 1}))
    store.write_flow_run(FlowRunWrite("agent", "new-2", data={"n": 2}))
    store.write_task_output("task-a", {"answer": 42})
    store.close()
    return clock


def _on_disk(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def _count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_prune_deletes_old_rows_and_the_file_shrinks(tmp_path: Path) -> None:
    """prune(30 days) removes the 100-day-old runs and their audit rows, keeps today's runs
    and the task output, purges the expired context, and the file gets smaller on disk."""
    path = tmp_path / "memory.db"
    clock = _fill(path)
    size_before = _on_disk(path)
    store = SQLiteStore(EmbeddedConfig(path=str(path)), clock=clock)
    result = store.prune(dt.timedelta(days=30))
    store.close()
    assert result["deleted_rows"]["flow_run_history"] == 400
    assert result["deleted_rows"]["audit_log"] >= 400
    assert result["expired_contexts_purged"] == 1
    assert result["bytes_before"] == size_before
    assert result["bytes_after"] < size_before / 4
    assert _on_disk(path) == result["bytes_after"]
    assert _count(path, "flow_run_history") == 2
    assert _count(path, "task_outputs") == 1
    assert _count(path, "memory_context") == 0


def test_dry_run_counts_and_changes_nothing(tmp_path: Path) -> None:
    """prune(dry_run=True) reports what would go while the rows and the file stay."""
    path = tmp_path / "memory.db"
    clock = _fill(path, old_runs=20)
    store = SQLiteStore(EmbeddedConfig(path=str(path)), clock=clock)
    preview = store.prune(30 * DAY, dry_run=True)
    store.close()
    assert preview["dry_run"] is True
    assert preview["deleted_rows"]["flow_run_history"] == 20
    assert preview["expired_contexts_purged"] == 1
    assert _count(path, "flow_run_history") == 22
    assert _count(path, "memory_context") == 1


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), 1e300, dt.timedelta.max,
                                 "30d", True])
def test_bad_ages_are_typed_errors(tmp_path: Path, bad: object) -> None:
    """A non-positive, non-finite or non-numeric age is a MemoryValidationError naming
    older_than, and nothing is deleted."""
    store = SQLiteStore(EmbeddedConfig(path=str(tmp_path / "m.db")))
    with pytest.raises(MemoryValidationError) as caught:
        store.prune(bad)  # type: ignore[arg-type]
    store.close()
    assert caught.value.field == "older_than"


def test_cli_prune_sqlite_dry_run_then_prune(tmp_path: Path) -> None:
    """``prune --sqlite PATH --dry-run`` says what would go and keeps it; without
    --dry-run the rows go and the JSON reports a smaller file. Not a terminal: no spinner."""
    path = tmp_path / "memory.db"
    _fill(path, old_runs=50)
    dry = runner.invoke(app, ["prune", "--sqlite", str(path), "--older-than", "1s",
                              "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would delete 52 row(s) from flow_run_history" in dry.output
    assert _count(path, "flow_run_history") == 52
    real = runner.invoke(app, ["prune", "--sqlite", str(path), "--older-than", "1s",
                               "--json"])
    assert real.exit_code == 0, real.output
    report = json.loads(real.output)
    assert report["deleted_rows"]["flow_run_history"] == 52
    assert report["bytes_after"] < report["bytes_before"]
    assert _count(path, "flow_run_history") == 0


def test_cli_prune_sqlite_missing_file_exits_2(tmp_path: Path) -> None:
    """A --sqlite path that is not a file exits 2 and creates nothing."""
    missing = tmp_path / "nope.db"
    result = runner.invoke(app, ["prune", "--sqlite", str(missing), "--older-than", "1d"])
    assert result.exit_code == 2
    assert not missing.exists()
