"""Write captured records to the stores; what cannot be written goes to the outbox.

:class:`CaptureWriter` never raises. A write is tried against the store; on any failure
(backend down, bad value, store not buildable) a structlog warning is logged and the record
is kept in the :class:`~memory_resources.capture.outbox.Outbox`. Before each write, pending
records of the same target are replayed first, so records of one run land in order and the
outbox drains at the next successful write. After a failure the store is not retried for
``retry_after`` seconds (records go straight to the outbox), so a dead backend does not slow
every hook down.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from ..log import get_logger
from ..protocols import RunHistory, TaskOutputs
from ..records import FlowRunWrite
from .outbox import Outbox, OutboxEntry, OutboxTarget, history_payload, history_record

_log = get_logger(__name__)


class CaptureStores(NamedTuple):
    """The two stores capture writes to."""

    history: RunHistory
    outputs: TaskOutputs


@dataclasses.dataclass
class ReplayReport:
    """What one replay did."""

    written: int = 0
    skipped: int = 0
    """Outputs already stored (a replay after a write that did land), not written again."""
    failed: int = 0
    remaining: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


class CaptureWriter:
    """Writes history rows and task outputs for one target, falling back to the outbox."""

    def __init__(
        self,
        stores: Callable[[], CaptureStores],
        outbox: Outbox,
        target: OutboxTarget,
        *,
        retry_after: float = 2.0,
        pending_check_interval: float = 5.0,
    ) -> None:
        self._stores = stores
        self.outbox = outbox
        self.target = target
        self.retry_after = retry_after
        self.pending_check_interval = pending_check_interval
        """Seconds between checks of the outbox file for records kept by other processes
        (records this writer keeps are seen at once)."""
        self._down_until = 0.0
        self._checked_empty_at: float | None = None
        self._lock = threading.RLock()
        self._registered = False

    # -- public ----------------------------------------------------------------------------

    def write_history(self, record: FlowRunWrite) -> bool:
        """Upsert a run's history row; True if it reached the store (else it is in the outbox)."""
        key = f"{record.flow_id}/{record.run_id}"
        return self._write("history", key, history_payload(record))

    def write_output(
        self, task_run_id: str, output: Any, metadata: dict[str, Any], flow_run_id: str | None
    ) -> bool:
        """Store a task run's output once; True if it reached the store."""
        payload = {"task_id": task_run_id, "output": output, "metadata": metadata,
                   "task_run_id": task_run_id, "flow_run_id": flow_run_id}
        return self._write("output", task_run_id, payload)

    def replay(self) -> ReplayReport:
        """Write this target's pending records in order; stop at the first backend failure."""
        report = ReplayReport()
        with self._lock:
            entries = self.outbox.pending(self.target.target)
            for index, entry in enumerate(entries):
                try:
                    stored = self._apply(entry.kind, entry.payload, check_existing=True)
                except Exception as exc:
                    self.outbox.mark_failed(entry, _describe(exc))
                    report.failed += 1
                    report.errors.append(_describe(exc))
                    report.remaining = len(entries) - index
                    self._down_until = time.monotonic() + self.retry_after
                    _log.warning("outbox replay stopped", target=self.target.label,
                                 error=_describe(exc), remaining=report.remaining)
                    return report
                self.outbox.remove(entry)
                if stored:
                    report.written += 1
                else:
                    report.skipped += 1
            self._down_until = 0.0
        if report.written or report.skipped:
            _log.info("outbox replayed", target=self.target.label, written=report.written,
                      skipped=report.skipped)
        return report

    # -- internals -------------------------------------------------------------------------

    def _write(self, kind: str, key: str, payload: dict[str, Any]) -> bool:
        if time.monotonic() >= self._down_until and not self._may_have_pending():
            # fast path, no lock: concurrent task threads write in parallel. Order matters
            # only between states of one run, and those come from the run's own thread.
            try:
                self._apply(kind, payload, check_existing=False)
                return True
            except Exception as exc:
                self._down_until = time.monotonic() + self.retry_after
                with self._lock:
                    return self._keep(kind, key, payload, exc)
        with self._lock:
            try:
                if time.monotonic() < self._down_until:
                    raise _SkippedWhileDown()
                if self._may_have_pending():
                    report = self.replay()
                    if report.remaining:
                        raise _SkippedWhileDown(
                            "earlier records could not be replayed: " + report.errors[-1])
                self._apply(kind, payload, check_existing=False)
                return True
            except Exception as exc:
                if not isinstance(exc, _SkippedWhileDown):
                    self._down_until = time.monotonic() + self.retry_after
                return self._keep(kind, key, payload, exc)

    def _may_have_pending(self) -> bool:
        now = time.monotonic()
        checked = self._checked_empty_at
        if checked is not None and now - checked < self.pending_check_interval:
            return False
        if self.outbox.has_pending(self.target.target):
            self._checked_empty_at = None
            return True
        self._checked_empty_at = now
        return False

    def _keep(self, kind: str, key: str, payload: dict[str, Any], exc: Exception) -> bool:
        self._checked_empty_at = None
        if isinstance(exc, _SkippedWhileDown):
            error = str(exc) or "store not retried yet after a recent failure"
        else:
            error = _describe(exc)
        try:
            if not self._registered:
                self.outbox.register_target(self.target)
                self._registered = True
            self.outbox.add(self.target.target, self.target.label, kind,  # type: ignore[arg-type]
                            key, payload, error)
        except Exception as outbox_exc:  # the outbox itself failed: log loudly, never raise
            _log.error("capture record lost: store and outbox both failed", kind=kind, key=key,
                       target=self.target.label, error=error, outbox_error=_describe(outbox_exc))
            return False
        _log.warning("capture write failed; record kept in outbox", kind=kind, key=key,
                     target=self.target.label, error=error, outbox=str(self.outbox.path))
        return False

    def _apply(self, kind: str, payload: dict[str, Any], *, check_existing: bool) -> bool:
        stores = self._stores()
        if kind == "history":
            stores.history.write_flow_run(history_record(payload))
            return True
        task_run_id = payload["task_run_id"]
        if check_existing and stores.outputs.read_task_output(payload["task_id"]) is not None:
            return False
        stores.outputs.write_task_output(
            payload["task_id"], payload["output"], payload["metadata"],
            task_run_id=task_run_id, flow_run_id=payload["flow_run_id"],
        )
        return True


class _SkippedWhileDown(Exception):
    """Internal: the store is not tried during the back-off window."""


__all__ = ["CaptureStores", "CaptureWriter", "OutboxEntry", "ReplayReport"]
