"""Exactly once across processes: replayers claim outbox records; the store keeps one
output per task run id; replays keep the original flow run / task run attribution.

Every test replays a real outbox file into a real store (SQLite file or the PostgreSQL
server) from real OS processes (``tests/capture/replayer.py`` or the CLI).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memory_resources.capture.outbox import Outbox, OutboxTarget
from memory_resources.capture.writer import CaptureStores, CaptureWriter, ReplayReport
from memory_resources.records import FlowRunWrite
from tests.capture.replayer import build_store

ROOT = Path(__file__).resolve().parents[2]
TARGET = "target-1"


def fill(path: Path, outputs: int, runs: int, target: str = TARGET) -> None:
    """Keep ``outputs`` task outputs (task runs ``tr-<i>`` of flow runs ``fr-<i % runs>``)
    and one history record per flow run, as the capture writer keeps them."""
    box = Outbox(path)
    for i in range(outputs):
        box.add(target, target, "output", f"tr-{i}",
                {"task_id": f"tr-{i}", "output": {"i": i}, "metadata": {"task_name": "t"},
                 "task_run_id": f"tr-{i}", "flow_run_id": f"fr-{i % runs}"}, "outage")
    for j in range(runs):
        record = FlowRunWrite(flow_id="flow-1", run_id=f"fr-{j}", flow_name="agent",
                              status="completed", run_count=1)
        box.add(target, target, "history", f"flow-1/fr-{j}", dataclasses.asdict(record),
                "outage")
    box.close()


def spawn(outbox: Path, spec: dict[str, Any], *extra: str) -> subprocess.Popen[str]:
    """A replayer process (see replayer.py)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.capture.replayer", str(outbox), TARGET,
         json.dumps(spec), *extra],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def report_of(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """The JSON report a replayer printed last (it must have exited 0)."""
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report


def replay_here(outbox: Path, spec: dict[str, Any]) -> ReplayReport:
    """Replay in this process (a second machine's replayer, as far as the file knows)."""
    store = build_store(spec)
    try:
        writer = CaptureWriter(lambda: CaptureStores(history=store, outputs=store),
                               Outbox(outbox), OutboxTarget(TARGET, TARGET, None, None))
        return writer.replay()
    finally:
        store.close()


def assert_exactly_once(spec: dict[str, Any], outputs: int, runs: int) -> None:
    """One version per task run, one history row per flow run, and each run's audit rows
    name it: ``read_audit(operation="output.write", flow_run_id=...)`` lists all its
    outputs, with their task run ids."""
    store = build_store(spec)
    try:
        for i in range(outputs):
            versions = store.list_task_outputs(f"tr-{i}")
            assert [(v["version"], v["output"]) for v in versions] == [(1, {"i": i})], i
        rows = store.read_flow_runs("flow-1", limit=1000)
        assert sorted(r["run_id"] for r in rows) == sorted(f"fr-{j}" for j in range(runs))
        for j in range(runs):
            audit = store.read_audit(operation="output.write", flow_run_id=f"fr-{j}",
                                     limit=1000)
            expected = {f"tr-{i}" for i in range(outputs) if i % runs == j}
            assert sorted(a["task_run_id"] for a in audit) == sorted(expected)
            history = store.read_audit(operation="history.write", flow_run_id=f"fr-{j}")
            assert len(history) == 1
    finally:
        store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A real store every process can reach, migrated before the replayers start."""
    if request.param == "sqlite":
        found: dict[str, Any] = {"sqlite": str(tmp_path / "memory.db")}
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        found = {"postgres": dsn, "schema": request.getfixturevalue("pg_schema")}
    build_store(found).close()
    yield found


def test_concurrent_replayers_write_each_record_once(tmp_path: Path,
                                                     spec: dict[str, Any]) -> None:
    """Four processes replaying one outbox at once write 200 outputs and 10 history rows:
    exactly 200 + 10 rows, each record written by exactly one process (no skips), and
    every audit row names the flow run / task run that produced the record."""
    outbox = tmp_path / "outbox.db"
    fill(outbox, outputs=200, runs=10)
    procs = [spawn(outbox, spec, "--batch", "15") for _ in range(4)]
    reports = [report_of(p) for p in procs]
    assert sum(r["written"] for r in reports) == 210
    assert sum(r["skipped"] for r in reports) == 0
    assert all(r["failed"] == 0 for r in reports)
    assert Outbox(outbox).pending() == []
    assert_exactly_once(spec, outputs=200, runs=10)


def _claims(outbox: Path) -> list[tuple[str | None, float | None]]:
    with sqlite3.connect(outbox) as conn:
        return conn.execute("SELECT claimed_by, claim_until FROM outbox").fetchall()


def test_killed_replayer_records_are_picked_up_after_the_lease(tmp_path: Path,
                                                               spec: dict[str, Any]) -> None:
    """A replayer SIGKILLed mid-batch leaves its claimed records; another replayer does not
    touch them while the lease runs, picks them up once it passed, and every task run ends
    stored exactly once (a record the dead process wrote but did not delete is found in
    the store and skipped)."""
    outbox = tmp_path / "outbox.db"
    fill(outbox, outputs=60, runs=3)
    proc = spawn(outbox, spec, "--batch", "10", "--lease", "3", "--announce",
                 "--hang-after", "15")
    assert proc.stdout is not None
    while (line := proc.stdout.readline()) != "hanging\n":  # 15 written, the 15th not deleted
        assert line, proc.stderr.read() if proc.stderr else "replayer ended early"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    held = [until for owner, until in _claims(outbox) if owner is not None]
    assert held, "the killed replayer held no claim"

    during = replay_here(outbox, spec)  # leaves the dead replayer's claims alone
    left = Outbox(outbox).pending()
    assert 0 < len(left) <= 10 and during.skipped == 0

    time.sleep(max(0.0, max(u for u in held if u is not None) - time.time()) + 0.05)
    after = replay_here(outbox, spec)
    assert after.written + after.skipped == len(left) and after.remaining == 0
    assert after.skipped == 1  # the record written just before the kill is not stored twice
    assert Outbox(outbox).pending() == []
    assert_exactly_once(spec, outputs=60, runs=3)


def _cli() -> str:
    return str(Path(sys.executable).with_name("memory-resources"))


def test_two_concurrent_cli_replays_write_each_record_once(tmp_path: Path) -> None:
    """Two ``memory-resources outbox replay`` runs at once on one outbox (embedded store
    rebuilt from the recorded target) write 40 outputs and 4 history rows once in total."""
    from memory_resources.blocks import MemoryStore

    memory = MemoryStore(embedded_path=str(tmp_path / "memory.db"),
                         outbox_path=str(tmp_path / "outbox.db"))
    target = memory.outbox_target()
    box = Outbox(tmp_path / "outbox.db")
    box.register_target(target)
    box.close()
    fill(tmp_path / "outbox.db", outputs=40, runs=4, target=target.target)
    env = {**os.environ, "MEMORY_RESOURCES_HOME": str(tmp_path / "home")}
    procs = [subprocess.Popen([_cli(), "outbox", "replay", "--outbox",
                               str(tmp_path / "outbox.db"), "--json"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        results += json.loads(out)
    assert sum(r["written"] for r in results) == 44
    assert sum(r["skipped"] for r in results) == 0
    assert_exactly_once({"sqlite": str(tmp_path / "memory.db")}, outputs=40, runs=4)
    memory.close()


def test_history_written_live_is_queued_behind_a_record_in_flight(tmp_path: Path) -> None:
    """While another replayer holds a run's older history record, a live write of a newer
    state of that run is merged behind it, not written over: the stored row ends with the
    newer state once the claim is released and replayed."""
    outbox_path = tmp_path / "outbox.db"
    store = build_store({"sqlite": str(tmp_path / "memory.db")})
    other = Outbox(outbox_path)
    older = FlowRunWrite(flow_id="f", run_id="r", flow_name="agent", status="failed",
                         run_count=1)
    other.add(TARGET, TARGET, "history", "f/r", dataclasses.asdict(older), "outage")
    (claimed,) = other.claim(TARGET)  # another process is writing the older state
    writer = CaptureWriter(lambda: CaptureStores(history=store, outputs=store),
                           Outbox(outbox_path), OutboxTarget(TARGET, TARGET, None, None))
    newer = FlowRunWrite(flow_id="f", run_id="r", status="completed", run_count=2)
    assert writer.write_history(newer) is False  # queued, not written over
    assert writer.last_failure() is None
    store.write_flow_run(older)  # the other replayer's write lands ...
    assert other.remove(claimed) is False  # ... but the record changed: kept, released
    assert writer.replay().written == 1
    (row,) = store.read_flow_runs("f")
    assert (row["status"], row["run_count"]) == ("completed", 2)
    store.close()


def test_undecodable_and_rejected_records_are_set_aside(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str],
                                                        ) -> None:
    """A record that cannot be decoded and one the store rejects for good are set aside
    (reported by ``outbox status``, never retried) and never block the others."""
    from typer.testing import CliRunner

    from memory_resources.cli import app

    outbox_path = tmp_path / "outbox.db"
    fill(outbox_path, outputs=4, runs=1)
    with sqlite3.connect(outbox_path) as conn:
        conn.execute("UPDATE outbox SET payload = '{\"task_id\": ' WHERE record_key = 'tr-1'")
    box = Outbox(outbox_path)
    box.add(TARGET, TARGET, "output", "tr-big",
            {"task_id": "tr-big", "output": "x" * 2_000_000, "metadata": {},
             "task_run_id": "tr-big", "flow_run_id": "fr-0"}, "outage")
    spec = {"sqlite": str(tmp_path / "memory.db")}
    report = replay_here(outbox_path, spec)
    assert (report.written, report.set_aside, report.failed) == (4, 2, 0)
    assert report.remaining == 0 and box.pending() == []
    reasons = {a.record_key.split("#")[0]: a.reason for a in box.set_aside_records()}
    assert set(reasons) == {"tr-1", "tr-big"}
    assert reasons["tr-1"].startswith("cannot decode")
    assert "PayloadTooLargeError" in reasons["tr-big"]
    assert replay_here(outbox_path, spec).set_aside == 0  # never retried

    status = CliRunner().invoke(app, ["outbox", "status", "--outbox", str(outbox_path),
                                      "--json"])
    assert status.exit_code == 1
    shown = json.loads(status.output)
    assert shown["pending"] == [] and len(shown["set_aside"]) == 2
    box.add(TARGET, TARGET, "output", "tr-big",  # a new record of a set-aside key is kept
            {"task_id": "tr-big", "output": "small", "metadata": {},
             "task_run_id": "tr-big", "flow_run_id": "fr-0"}, "outage")
    assert replay_here(outbox_path, spec).written == 1


def test_status_shows_the_oldest_waiting_records_age(tmp_path: Path) -> None:
    """``outbox status`` gives the age of the oldest waiting record per target and kind."""
    from typer.testing import CliRunner

    from memory_resources.cli import app

    outbox_path = tmp_path / "outbox.db"
    fill(outbox_path, outputs=2, runs=1)
    with sqlite3.connect(outbox_path) as conn:
        conn.execute("UPDATE outbox SET created_at = created_at - 3600 WHERE record_key='tr-0'")
    runner = CliRunner()
    shown = json.loads(runner.invoke(app, ["outbox", "status", "--outbox", str(outbox_path),
                                           "--json"]).output)
    ages = {p["kind"]: p["oldest_age_seconds"] for p in shown["pending"]}
    assert 3600 <= ages["output"] < 3700 and ages["history"] < 100
    table = runner.invoke(app, ["outbox", "status", "--outbox", str(outbox_path)])
    assert table.exit_code == 1 and "60m" in table.output
    assert f"memory-resources outbox replay --outbox {outbox_path}" in table.output


