"""The subflow parent cache of capture stays bounded in a long-lived worker."""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import Any

import pytest

from memory_resources.prefect import runrecord


class _Client:
    """Answers read_task_run as Prefect's client does, counting the reads."""

    reads = 0

    def read_task_run(self, task_run_id: Any) -> Any:
        _Client.reads += 1
        return types.SimpleNamespace(flow_run_id=f"flow-of-{task_run_id}")


@contextlib.contextmanager
def _client(sync_client: bool = True) -> Iterator[_Client]:
    yield _Client()


def test_parent_cache_keeps_the_newest_entries_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past PARENTS_CACHED entries the oldest is dropped; a cached parent is not read again."""
    import prefect.client.orchestration as orchestration

    monkeypatch.setattr(orchestration, "get_client", _client)
    monkeypatch.setattr(runrecord, "PARENTS_CACHED", 3)
    monkeypatch.setattr(runrecord, "_PARENTS", {})
    _Client.reads = 0
    runs = [types.SimpleNamespace(parent_task_run_id=f"task-{i}") for i in range(5)]
    assert [runrecord._parent_flow_run_id(run) for run in runs] == [
        f"flow-of-task-{i}" for i in range(5)]
    assert list(runrecord._PARENTS) == ["task-2", "task-3", "task-4"]
    assert runrecord._parent_flow_run_id(runs[4]) == "flow-of-task-4"
    assert _Client.reads == 5
