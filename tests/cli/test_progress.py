"""Long commands (migrate, prune, outbox replay) show their step, ``name (n of N)``, on
stderr only when stderr is a terminal and --quiet is not given; stdout stays clean."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from memory_resources.blocks import MemoryStore
from memory_resources.cli.capture_commands import outbox_replay
from memory_resources.cli.postgres_commands import migrate, prune
from memory_resources.cli.progress import working
from memory_resources.config import EmbeddedConfig
from memory_resources.records import FlowRunWrite
from memory_resources.stores.postgres.migrate import load_migrations
from memory_resources.stores.sqlite import SQLiteStore

_TTY_VARS = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make rich treat the captured stderr as a wide terminal."""
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TTY_INTERACTIVE", "1")
    monkeypatch.setenv("COLUMNS", "200")


def test_nothing_shown_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Captured (not a terminal) stderr gets nothing, steps reported or not."""
    for name in _TTY_VARS:
        monkeypatch.delenv(name, raising=False)
    with working("applying migrations") as steps:
        steps.step("001_first", 1, 2)
    assert capsys.readouterr().err == ""


@pytest.mark.usefixtures("terminal")
def test_steps_on_a_terminal_and_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    """On a terminal the command and each step (n of N) are shown on stderr, stdout stays
    clean; ``quiet=True`` shows nothing."""
    with working("applying migrations") as steps:
        time.sleep(0.2)
        steps.step("001_first", 1, 2)
        steps.step("002_second", 2, 2)
    captured = capsys.readouterr()
    assert "applying migrations" in captured.err
    assert "001_first (1 of 2)" in captured.err and "002_second (2 of 2)" in captured.err
    assert captured.out == ""
    with working("applying migrations", quiet=True) as steps:
        steps.step("001_first", 1, 2)
    assert capsys.readouterr().err == ""


@pytest.mark.usefixtures("terminal")
def test_migrate_shows_each_migration(postgres_dsn: str, pg_schema: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """migrate names every migration it applies as ``name (n of N)``; --quiet hides that
    and a second run has nothing to show."""
    files = load_migrations()
    migrate(dsn=postgres_dsn, schema=pg_schema, as_json=False, status=False, quiet=False,
            timeout=60.0)
    captured = capsys.readouterr()
    for index, migration in enumerate(files, 1):
        assert f"{migration.name} ({index} of {len(files)})" in captured.err
        assert f"applied {migration.name}" in captured.out
    assert "(1 of" not in captured.out
    migrate(dsn=postgres_dsn, schema=pg_schema, as_json=False, status=False, quiet=True,
            timeout=60.0)
    captured = capsys.readouterr()
    assert captured.err == "" and "up to date" in captured.out


@pytest.mark.usefixtures("terminal")
def test_prune_shows_its_steps(postgres_dsn: str, pg_schema: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    """prune on PostgreSQL shows its 2 steps, prune --sqlite its 3 (VACUUM last)."""
    migrate(dsn=postgres_dsn, schema=pg_schema, as_json=False, status=False, quiet=True,
            timeout=60.0)
    capsys.readouterr()
    prune(older_than="90d", dsn=postgres_dsn, schema=pg_schema, as_json=False,
          dry_run=False, sqlite=None, quiet=False, timeout=60.0)
    captured = capsys.readouterr()
    assert "dropping old partitions (1 of 2)" in captured.err
    assert "purging expired contexts (2 of 2)" in captured.err
    assert "cut-off" in captured.out

    path = tmp_path / "memory.db"
    store = SQLiteStore(EmbeddedConfig(path=str(path)))
    store.connect()
    store.close()
    prune(older_than="1d", dsn=None, schema="public", as_json=False, dry_run=False,
          sqlite=path, quiet=False, timeout=60.0)
    captured = capsys.readouterr()
    assert "(1 of 3)" in captured.err and "VACUUM (3 of 3)" in captured.err
    assert "file:" in captured.out


@pytest.mark.usefixtures("terminal")
def test_replay_shows_each_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """outbox replay shows the target it writes to as ``label (n of N)``."""
    memory = MemoryStore(embedded_path=str(tmp_path / "store" / "memory.db"),
                         outbox_path=str(tmp_path / "outbox.db"))
    (tmp_path / "store").write_text("in the way")  # the store cannot open: records wait
    writer = memory.capture_writer()
    assert not writer.write_history(FlowRunWrite(flow_id="f1", run_id="r1",
                                                 flow_name="progress", status="completed"))
    (tmp_path / "store").unlink()
    label = writer.target.label
    memory.close()
    capsys.readouterr()
    outbox_replay(path=tmp_path / "outbox.db", block=None, as_json=True, quiet=False,
                  timeout=60.0)
    captured = capsys.readouterr()
    assert f"{label} (1 of 1)" in captured.err
    assert '"written": 1' in captured.out

