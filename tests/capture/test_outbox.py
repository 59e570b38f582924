"""The outbox keeps what a hook could not write and replays it once, in order."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memory_resources.capture.outbox import Outbox, OutboxTarget
from memory_resources.capture.writer import CaptureStores, CaptureWriter
from memory_resources.config import EmbeddedConfig
from memory_resources.records import FlowRunWrite
from memory_resources.stores.sqlite import SQLiteStore


class Switch:
    """The stores of a real SQLite file that is unreachable while ``down`` is set: the
    file's directory is moved away and a plain file put in its place, so opening the store
    fails as on a lost disk (BackendUnavailableError)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "store"
        self.folder.mkdir()
        self.path = self.folder / "memory.db"
        self._store: SQLiteStore | None = None
        self._down = False

    @property
    def store(self) -> SQLiteStore:
        if self._store is None:
            store = SQLiteStore(EmbeddedConfig(path=str(self.path)))
            store.connect()
            self._store = store
        return self._store

    @property
    def down(self) -> bool:
        return self._down

    @down.setter
    def down(self, value: bool) -> None:
        away = self.folder.with_name("store.away")
        if value and not self._down:
            if self._store is not None:
                self._store.close()
                self._store = None
            self.folder.rename(away)
            self.folder.write_text("in the way")
        elif not value and self._down:
            self.folder.unlink()
            away.rename(self.folder)
        self._down = value

    def __call__(self) -> CaptureStores:
        return CaptureStores(history=self.store, outputs=self.store)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()


@pytest.fixture
def switch(tmp_path: Path) -> Iterator[Switch]:
    s = Switch(tmp_path)
    yield s
    s.close()


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db")
    yield box
    box.close()


def _writer(switch: Switch, outbox: Outbox) -> CaptureWriter:
    target = OutboxTarget("t-" + uuid.uuid4().hex[:8], "test", None, None)
    return CaptureWriter(switch, outbox, target, retry_after=0)


def _run(status: str, **extra: Any) -> FlowRunWrite:
    return FlowRunWrite(flow_id="flow-1", run_id="run-1", flow_name="f", status=status,
                        **extra)


def test_failed_history_write_lands_in_outbox_and_replays_once(
    switch: Switch, outbox: Outbox
) -> None:
    """A write during an outage is kept; the next successful write replays it first."""
    writer = _writer(switch, outbox)
    switch.down = True
    assert writer.write_history(_run("running", started_at="2026-01-01T00:00:00+00:00")) is False
    assert [e.kind for e in outbox.pending()] == ["history"]
    switch.down = False
    assert writer.write_history(_run("completed", ended_at="2026-01-01T00:01:00+00:00"))
    rows = switch.store.read_flow_runs("flow-1")
    assert len(rows) == 1
    assert rows[0]["status"] == "completed"
    assert rows[0]["started_at"] is not None and rows[0]["ended_at"] is not None
    assert outbox.pending() == []


def test_later_state_merges_into_pending_row_so_order_is_kept(
    switch: Switch, outbox: Outbox
) -> None:
    """Two states of one run written during an outage replay as the latest state, once."""
    writer = _writer(switch, outbox)
    switch.down = True
    writer.write_history(_run("running", data={"a": 1}, parameters={"x": 1}))
    writer.write_history(_run("failed", data={"b": 2}, error_type="ValueError"))
    entries = outbox.pending()
    assert len(entries) == 1
    switch.down = False
    report = writer.replay()
    assert (report.written, report.remaining) == (1, 0)
    row = switch.store.read_flow_runs("flow-1")[0]
    assert row["status"] == "failed" and row["error_type"] == "ValueError"
    assert row["data"] == {"a": 1, "b": 2} and row["parameters"] == {"x": 1}


def test_output_replayed_twice_is_written_once(switch: Switch, outbox: Outbox) -> None:
    """An output already stored is skipped by a second replay: no duplicate version."""
    writer = _writer(switch, outbox)
    switch.down = True
    writer.write_output("tr-1", {"answer": 42}, {"task_name": "t"}, "fr-1")
    entry = outbox.pending()[0]
    switch.down = False
    assert writer.replay().written == 1
    # the same record again (e.g. a replay that crashed before removing it)
    outbox.add(entry.target, "test", "output", entry.record_key, entry.payload)
    report = writer.replay()
    assert (report.written, report.skipped) == (0, 1)
    versions = switch.store.list_task_outputs("tr-1")
    assert len(versions) == 1
    assert versions[0]["output"] == {"answer": 42}
    assert versions[0]["task_run_id"] == "tr-1" and versions[0]["flow_run_id"] == "fr-1"


def test_replay_stops_at_first_failure_and_keeps_the_rest(
    switch: Switch, outbox: Outbox
) -> None:
    """A replay during an outage writes nothing, counts the attempt and keeps every record."""
    writer = _writer(switch, outbox)
    switch.down = True
    writer.write_output("tr-1", 1, {}, None)
    writer.write_output("tr-2", 2, {}, None)
    report = writer.replay()
    assert (report.written, report.failed, report.remaining) == (0, 1, 2)
    entries = outbox.pending()
    assert [e.record_key for e in entries] == ["tr-1", "tr-2"]
    assert entries[0].attempts >= 1 and "BackendUnavailableError" in (entries[0].error or "")


def test_outbox_survives_reopen(tmp_path: Path) -> None:
    """Records are on disk: a new Outbox on the same file (a new process) sees them."""
    box = Outbox(tmp_path / "o.db")
    box.add("t", "label", "output", "tr-9", {"task_id": "tr-9"})
    box.close()
    again = Outbox(tmp_path / "o.db")
    assert [e.record_key for e in again.pending("t")] == ["tr-9"]
    assert again.counts()[0][2:4] == ("output", 1)
    again.close()


def test_bad_record_does_not_raise_and_is_kept(switch: Switch, outbox: Outbox) -> None:
    """A record the store refuses (bad value) is kept in the outbox; the writer never raises."""
    writer = _writer(switch, outbox)
    bad = FlowRunWrite(flow_id="", run_id="run-x")
    assert writer.write_history(bad) is False
    entries = outbox.pending()
    assert len(entries) == 1 and entries[0].error
