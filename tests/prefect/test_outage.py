"""Never fail the user's flow: a store outage sends records to the outbox, replay completes
the history with nothing lost and nothing duplicated."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prefect import flow, task
from typer.testing import CliRunner

from memory_resources.blocks import MemoryStore, PostgresMemory
from memory_resources.capture.outbox import Outbox, OutboxTarget
from memory_resources.capture.writer import CaptureStores, CaptureWriter
from memory_resources.cli import app
from memory_resources.config import EmbeddedConfig
from memory_resources.prefect import remember
from memory_resources.stores.sqlite import SQLiteStore

pytestmark = [pytest.mark.prefect, pytest.mark.usefixtures("prefect_harness")]


@task
def produce(x: int) -> dict[str, int]:
    return {"x": x}


class DownTarget:
    """A capture target whose SQLite store cannot be opened while ``down``: a plain file
    stands where the store's directory should be (a real BackendUnavailableError)."""

    max_param_bytes: int | None = 10_000
    max_output_bytes: int | None = 10_000
    capture_task_outputs: bool = True

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "store"
        self.folder.write_text("in the way")
        self._store: SQLiteStore | None = None
        self.outbox = Outbox(folder / "outbox.db")
        self.writer = CaptureWriter(self._stores, self.outbox,
                                    OutboxTarget("down-" + uuid.uuid4().hex[:8], "down", None,
                                                 None), retry_after=0)

    @property
    def down(self) -> bool:
        return self.folder.is_file()

    @down.setter
    def down(self, value: bool) -> None:
        if not value and self.folder.is_file():
            self.folder.unlink()

    @property
    def store(self) -> SQLiteStore:
        if self._store is None:
            store = SQLiteStore(EmbeddedConfig(path=str(self.folder / "memory.db")))
            store.connect()
            self._store = store
        return self._store

    def _stores(self) -> CaptureStores:
        return CaptureStores(history=self.store, outputs=self.store)

    def capture_writer(self) -> CaptureWriter:
        return self.writer


def test_hook_whose_store_raises_keeps_records_and_replay_writes_once(tmp_path: Path) -> None:
    """The flow completes while every write fails; the records wait in the outbox, and two
    replays write the history row and each output exactly once."""
    target = DownTarget(tmp_path)

    @remember(target)
    @flow(name="outage-unreachable-store")
    def during_outage() -> int:
        return sum(produce(i)["x"] for i in range(3))

    assert during_outage() == 3
    kinds = sorted(entry.kind for entry in target.outbox.pending())
    assert kinds == ["history", "output", "output", "output"], "running+completed merged"
    target.down = False
    first = target.writer.replay()
    assert (first.written, first.remaining) == (4, 0)
    second = target.writer.replay()
    assert (second.written, second.skipped) == (0, 0)
    rows = target.store.read_flow_runs(None)
    assert len(rows) == 1 and rows[0]["status"] == "completed"
    assert rows[0]["started_at"] and rows[0]["ended_at"]
    audit = target.store.read_audit(operation="output.write")
    assert len(audit) == 3
    for row in audit:
        assert len(target.store.list_task_outputs(row["target"])) == 1
    target.outbox.close()
    target.store.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_stopped_mid_run_history_completed_after_restart(
    tmp_path: Path, postgres_server_factory: Callable[..., Any]
) -> None:
    """A real PostgreSQL stops in the middle of a captured run: the flow completes, and once
    the server is back the next captured run replays the outbox; the CLI replay then finds
    nothing left, and no row or output version is duplicated."""
    server = postgres_server_factory()
    memory = MemoryStore(
        postgres=PostgresMemory(dsn=server.dsn, connection_timeout=2, retry_attempts=1),
        embedded_path=str(tmp_path / "memory.db"),
        outbox_path=str(tmp_path / "outbox.db"),
    )

    @task
    def stop_database(stop: bool) -> str:
        if stop:
            server.stop()
        return "stopped" if stop else "running"

    @remember(memory, tasks=[stop_database])
    @flow(name="outage-real")
    def agent(n: int, stop: bool) -> list[Any]:
        before = produce(n)
        stopped = stop_database(stop)
        after = [produce(n + 1), produce(n + 2)]
        return [before, stopped, *after]

    # no back-off window after a failure, so "the next write" is deterministic here
    memory.capture_writer().retry_after = 0
    try:
        result = agent(1, True)
        assert result[1] == "stopped" and result[2] == {"x": 2}
        outbox = Outbox(tmp_path / "outbox.db")
        pending = outbox.pending()
        assert {e.kind for e in pending} == {"history", "output"}
        assert sum(e.kind == "output" for e in pending) >= 3  # stop_database + 2 after

        server.start()
        first_run = memory.api.read_flow_run_history(None, limit=10)
        assert [r["status"] for r in first_run] == ["running"], "only the start landed"
        assert agent(10, False)[1] == "running"
        assert outbox.pending() == [], "the second run's first write replayed the outbox"
        runner = CliRunner()
        done = runner.invoke(app, ["outbox", "replay", "--outbox", str(tmp_path / "outbox.db")])
        assert done.exit_code == 0, done.output
        assert "nothing to replay" in done.output

        runs = memory.api.read_flow_run_history(None, limit=10)
        assert len(runs) == 2
        assert all(r["status"] == "completed" and r["ended_at"] for r in runs)
        outputs = memory.api.read_audit_log(operation="output.write", limit=100)
        task_runs = [row["target"] for row in outputs]
        assert len(task_runs) == len(set(task_runs)) == 8  # 4 tasks x 2 runs, once each
        for task_run_id in task_runs:
            assert len(memory.api.list_task_outputs(task_run_id)) == 1
        outbox.close()
    finally:
        memory.close()
