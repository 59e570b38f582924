"""Two real processes using MemoryAPI on one embedded file lose no write."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

from memory_resources.api import MemoryAPI

from . import _workers

CTX = multiprocessing.get_context("spawn")


def test_two_processes_share_the_embedded_default(tmp_path: Path) -> None:
    """Lock-protected increments from two processes add up exactly; every event and output
    version is present once and the file passes SQLite's integrity check."""
    path = str(tmp_path / "shared.db")
    rounds = 25
    start = CTX.Event()
    processes = [CTX.Process(target=_workers.increment_under_lock,
                             args=(path, worker, rounds, start)) for worker in range(2)]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(180)
    assert [p.exitcode for p in processes] == [0, 0]

    with MemoryAPI(embedded_config={"path": path}, vector_config={"dimension": 4}) as api:
        counter = api.get_context("counter")
        assert counter is not None
        assert counter["data"]["value"] == 2 * rounds
        assert counter["version"] == 2 * rounds
        events = api.get_events("log")
        for worker in range(2):
            mine = [e["data"]["i"] for e in events if e["data"]["worker"] == worker]
            assert mine == list(range(rounds))
            versions = api.list_task_outputs(f"task-{worker}", limit=1000)
            assert [v["version"] for v in versions] == list(range(rounds, 0, -1))
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        raw.close()
