"""Several real processes (spawn) on one SQLite file: no corruption, no lost write, and
mutual exclusion with strictly increasing fencing tokens."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import sqlite3
from pathlib import Path

from memory_resources.config import EmbeddedConfig
from memory_resources.locking import Lock
from memory_resources.stores.sqlite import SQLiteStore

from . import workers

CTX = multiprocessing.get_context("spawn")


def _run_all(processes: list[multiprocessing.process.BaseProcess], start: object) -> None:
    """Start the processes, release them together, wait, and require a clean exit."""
    for process in processes:
        process.start()
    start.set()  # type: ignore[attr-defined]
    for process in processes:
        process.join(180)
    assert [p.exitcode for p in processes] == [0] * len(processes)


def test_two_processes_writing_lose_nothing_and_keep_the_file_sound(tmp_path: Path) -> None:
    """Two processes writing the same contexts, streams, runs and outputs concurrently leave
    an intact file with every write present exactly once."""
    path = str(tmp_path / "shared.db")
    rounds = 60
    start = CTX.Event()
    _run_all([CTX.Process(target=workers.write_everything, args=(path, w, rounds, start))
              for w in range(2)], start)

    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        raw.close()
    store = SQLiteStore(EmbeddedConfig(path=path))
    try:
        shared = store.get_context("shared-context")
        assert shared is not None and shared["version"] == 2 * rounds
        for worker, i in itertools.product(range(2), range(rounds)):
            own = store.get_context(f"own-{worker}-{i}")
            assert own is not None and own["data"] == {"i": i} and own["version"] == 1
        events = store.get_events("shared-events")
        assert len(events) == 2 * rounds
        ids = [int(e["id"]) for e in events]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        for worker in range(2):
            mine = [e["data"]["i"] for e in events if e["data"]["worker"] == worker]
            assert mine == list(range(rounds)), "each writer's events keep their order"
        runs = store.read_flow_runs("flow", limit=1000)
        assert len(runs) == rounds
        for run in runs:
            i = int(run["run_id"].split("-")[1])
            assert run["data"] == {"w0": i, "w1": i}, "both upserts were merged"
        outputs = store.list_task_outputs("shared-task", limit=1000)
        assert sorted(o["version"] for o in outputs) == list(range(1, 2 * rounds + 1))
        audit_rows = store.stats()["tables"]["audit_log"]
        assert audit_rows == 2 * rounds * 5
    finally:
        store.close()


def test_lock_excludes_across_processes_with_increasing_tokens(tmp_path: Path) -> None:
    """4 processes x 50 increments of a plain file under the lock give exactly 200, and the
    fencing tokens seen inside the critical section strictly increase."""
    path = str(tmp_path / "locks.db")
    counter = tmp_path / "counter.txt"
    log = tmp_path / "tokens.log"
    counter.write_text("0")
    log.write_text("")
    SQLiteStore(EmbeddedConfig(path=path)).connect()
    start = CTX.Event()
    _run_all([CTX.Process(target=workers.count_under_lock,
                          args=(path, str(counter), str(log), 50, start))
              for _ in range(4)], start)
    assert counter.read_text() == "200"
    tokens = [int(line) for line in log.read_text().split()]
    assert len(tokens) == 200
    assert all(b > a for a, b in itertools.pairwise(tokens))


def test_abandoned_lease_is_taken_after_its_ttl(tmp_path: Path) -> None:
    """A lease whose holder process died is taken by another owner once its TTL passes,
    with a larger fencing token."""
    path = str(tmp_path / "abandoned.db")
    taken = CTX.Queue()
    process = CTX.Process(target=workers.take_lock_and_die, args=(path, 400, taken))
    process.start()
    dead_token = taken.get(timeout=60)
    process.join(60)
    store = SQLiteStore(EmbeddedConfig(path=path))
    try:
        with Lock(store, "abandoned", timeout=5, blocking_timeout=10) as lock:
            assert lock.fencing_token is not None and lock.fencing_token > dead_token
        rows = store.read_audit(target="abandoned", operation="lock.acquire")
        assert [r["details"]["fencing_token"] for r in rows] == [lock.fencing_token, dead_token]
    finally:
        store.close()


def test_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    """A store used in a forked child opens a new connection instead of the parent's."""
    store = SQLiteStore(EmbeddedConfig(path=str(tmp_path / "fork.db")))
    store.set_context("parent", {"n": 1})
    fork = multiprocessing.get_context("fork")
    parent_connection = id(store._db.conn())

    def child() -> None:
        if id(store._db.conn()) == parent_connection:
            os._exit(3)  # reusing the parent's SQLite connection would be unsafe
        store.set_context("child", {"n": 2})
        store.append_event("child", {"e": 1})

    process = fork.Process(target=child)
    process.start()
    process.join(60)
    assert process.exitcode == 0
    try:
        record = store.get_context("child")
        assert record is not None and record["data"] == {"n": 2}
        store.set_context("parent", {"n": 3})  # the parent's connection still works
        assert len(store.get_events("child")) == 1
        assert store.stats()["active_connections"] == 1
    finally:
        store.close()
