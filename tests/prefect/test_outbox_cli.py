"""``memory-resources outbox status`` / ``outbox replay`` on a real outbox file."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from memory_resources.blocks import MemoryStore
from memory_resources.capture.outbox import Outbox
from memory_resources.cli import app
from memory_resources.records import FlowRunWrite


def _memory(tmp_path: Path) -> MemoryStore:
    """An embedded MemoryStore with its own file (under ``store/``) and outbox."""
    return MemoryStore(embedded_path=str(tmp_path / "store" / "memory.db"),
                       outbox_path=str(tmp_path / "outbox.db"))


def _keep_records(memory: MemoryStore, tmp_path: Path) -> None:
    """Write one history row and one output through the writer while the store cannot be
    opened (a plain file stands where its directory should be), then end the outage."""
    blocker = tmp_path / "store"
    blocker.write_text("in the way")
    writer = memory.capture_writer()
    assert not writer.write_history(FlowRunWrite(flow_id="f1", run_id="r1",
                                                 flow_name="cli-flow", status="completed"))
    assert not writer.write_output("tr-1", {"v": 1}, {"task_name": "t"}, "r1")
    blocker.unlink()


def test_status_lists_pending_and_replay_writes_them_once(tmp_path: Path) -> None:
    """status shows what waits (exit 1), replay rebuilds the secret-free embedded target
    from the outbox, writes each record once, and a second replay has nothing to do."""
    memory = _memory(tmp_path)
    _keep_records(memory, tmp_path)
    memory.close()
    outbox_path = str(tmp_path / "outbox.db")
    runner = CliRunner()

    status = runner.invoke(app, ["outbox", "status", "--outbox", outbox_path, "--json"])
    assert status.exit_code == 1, status.output
    pending = json.loads(status.output)["pending"]
    assert sorted((p["kind"], p["count"]) for p in pending) == [("history", 1), ("output", 1)]

    replay = runner.invoke(app, ["outbox", "replay", "--outbox", outbox_path, "--json"])
    assert replay.exit_code == 0, replay.output
    (result,) = json.loads(replay.output)
    assert (result["written"], result["remaining"], result["error"]) == (2, 0, None)

    again = runner.invoke(app, ["outbox", "replay", "--outbox", outbox_path])
    assert again.exit_code == 0 and "nothing to replay" in again.output
    empty = runner.invoke(app, ["outbox", "status", "--outbox", outbox_path])
    assert empty.exit_code == 0 and "empty" in empty.output

    fresh = MemoryStore(embedded_path=str(tmp_path / "store" / "memory.db"))
    try:
        rows = fresh.api.read_flow_run_history("f1")
        assert [(r["run_id"], r["status"]) for r in rows] == [("r1", "completed")]
        assert len(fresh.api.list_task_outputs("tr-1")) == 1
    finally:
        fresh.close()


def test_replay_of_a_target_with_secrets_asks_for_a_block(tmp_path: Path) -> None:
    """A target captured with secrets and no saved block is not guessed: replay reports it
    and keeps the records (exit 1)."""
    box = Outbox(tmp_path / "outbox.db")
    box.add("secret-target", "postgres=dsn", "output", "tr-1",
            {"task_id": "tr-1", "output": 1, "metadata": {}, "task_run_id": "tr-1",
             "flow_run_id": None})
    box.close()
    done = CliRunner().invoke(app, ["outbox", "replay", "--outbox", str(tmp_path / "outbox.db"),
                                    "--json"])
    assert done.exit_code == 1
    (result,) = json.loads(done.output)
    assert result["remaining"] == 1 and "--block" in result["error"]
