"""Capture and lock messages of a captured run appear in that run's logs (Prefect API)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogWorker

from memory_resources.blocks import MemoryStore
from memory_resources.log import get_logger
from memory_resources.prefect import remember
from memory_resources.prefect.run_logs import LOGGER, RunLogHandler, send_logs_to_runs

pytestmark = [pytest.mark.prefect, pytest.mark.usefixtures("prefect_harness")]


@pytest.fixture
def clean_logger() -> Iterator[logging.Logger]:
    """The ``memory_resources`` logger restored (handlers, level) after the test."""
    logger = logging.getLogger(LOGGER)
    handlers, level = list(logger.handlers), logger.level
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def _run_logs(flow_run_id: Any) -> list[tuple[str, str, Any]]:
    APILogWorker.drain_all(timeout=30)
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(
            flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200)
    return [(log.name, log.message, log.task_run_id) for log in logs]


def test_capture_and_lock_messages_reach_the_run_logs(
    memory_store: MemoryStore, clean_logger: logging.Logger
) -> None:
    """A captured flow taking a lock in a task: the run's logs (read through the API) hold
    the lock's acquire/release messages (on the task run), the task output and history
    capture messages, under ``memory_resources.*`` logger names."""
    lock_name = f"report-{uuid.uuid4().hex[:6]}"

    @task
    def guarded() -> int:
        with memory_store.lock(lock_name) as lock:
            return int(lock.fencing_token or 0)

    @remember(memory_store)
    @flow
    def agent() -> Any:
        guarded()
        from prefect.runtime import flow_run
        return flow_run.id

    run_id = agent()
    logs = _run_logs(run_id)
    ours = [(name, message, task_run) for name, message, task_run in logs
            if name.startswith("memory_resources")]
    messages = " | ".join(message for _, message, _ in ours)
    assert f"event='lock acquired' lock_name='{lock_name}'" in messages, logs
    assert f"event='lock released' lock_name='{lock_name}'" in messages
    assert "memory capture: task output stored" in messages
    assert "memory capture: run history written" in messages
    lock_rows = [row for row in ours if "lock acquired" in row[1]]
    assert lock_rows[0][0] == "memory_resources.locking" and lock_rows[0][2] is not None


def test_records_outside_runs_are_not_sent_and_opt_out_works(
    clean_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handler is added once (not twice, not next to an existing API handler), drops
    records of no run without Prefect's "no flow run id" warning, and
    ``MEMORY_RESOURCES_RUN_LOGS=false`` turns it off."""
    clean_logger.handlers[:] = [h for h in clean_logger.handlers
                                if not isinstance(h, RunLogHandler)]
    clean_logger.setLevel(logging.NOTSET)
    monkeypatch.setenv("MEMORY_RESOURCES_RUN_LOGS", "false")
    assert send_logs_to_runs() is False
    assert not any(isinstance(h, RunLogHandler) for h in clean_logger.handlers)
    monkeypatch.delenv("MEMORY_RESOURCES_RUN_LOGS")
    assert send_logs_to_runs() and send_logs_to_runs()
    assert sum(isinstance(h, RunLogHandler) for h in clean_logger.handlers) == 1
    assert clean_logger.level == logging.INFO
    with _no_warnings():
        get_logger("memory_resources.test").info("outside any run", run="none")
        get_logger("memory_resources.test").info("not a uuid", flow_run_id="run-a")


class _no_warnings:
    """Fail if a warning is emitted inside the block."""

    def __enter__(self) -> None:
        import warnings

        self._catcher = warnings.catch_warnings(record=True)
        self._caught = self._catcher.__enter__()
        warnings.simplefilter("always")

    def __exit__(self, *exc: object) -> None:
        self._catcher.__exit__(*exc)
        assert not self._caught, [str(w.message) for w in self._caught]
