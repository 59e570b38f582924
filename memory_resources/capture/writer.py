"""Write captured records to the stores; what cannot be written goes to the outbox.

:class:`CaptureWriter` never raises. A write is tried against the store; on any failure
(backend down, bad value, store not buildable) a structlog warning is logged and the record
is kept in the :class:`~memory_resources.capture.outbox.Outbox`;
:meth:`CaptureWriter.last_failure` says why (the Prefect hooks log it on the run's page).
Before each write, pending records of the same target are replayed first, so the outbox
drains at the next successful write. A history write whose run still has a record waiting
is merged into that record instead, so an older state is never written over a newer one.
After a failure the store is not retried for ``retry_after`` seconds (records go straight to
the outbox), so a dead backend does not slow every hook down.

Replay claims records (atomically, with a lease) before writing them, so any number of
processes replay one outbox file concurrently and each record is written by one of them.
Every replayed write is attributed to the flow run / task run that produced it (the audit
rows name them as if written live). A record the store rejects for good is set aside.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from ..errors import MemoryValidationError
from ..log import get_logger
from ..protocols import RunHistory, TaskOutputs
from ..records import FlowRunWrite
from ..runinfo import acting_as
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
    set_aside: int = 0
    """Records the store rejected for good (kept in the outbox, reported, not retried)."""
    failed: int = 0
    remaining: int = 0
    """Records left waiting for a replayer (not counting ``in_flight``)."""
    in_flight: int = 0
    """Records another replayer held (claimed, lease not expired) when this one ended."""
    errors: list[str] = dataclasses.field(default_factory=list)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


def is_permanent(exc: BaseException) -> bool:
    """True if retrying cannot help: the store refused the value (validation), found a
    stored row corrupt, or the record itself is malformed."""
    if isinstance(exc, (MemoryValidationError, KeyError, TypeError)):
        return True
    return type(exc).__name__ == "CorruptRecordError"




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
        batch_size: int = 100,
    ) -> None:
        self._stores = stores
        self.outbox = outbox
        self.target = target
        self.retry_after = retry_after
        self.pending_check_interval = pending_check_interval
        """Seconds between checks of the outbox file for records kept by other processes
        (records this writer keeps are seen at once)."""
        self.batch_size = batch_size
        """Records claimed per round of a replay."""
        self._down_until = 0.0
        self._checked_empty_at: float | None = None
        self._lock = threading.RLock()
        self._local = threading.local()
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
        """Claim and write this target's pending records, batch by batch, until none is
        left to claim; stop at the first backend failure (claims released)."""
        report = ReplayReport()
        with self._lock:
            while True:
                undecodable: list[str] = []
                entries = self.outbox.claim(self.target.target, self.batch_size,
                                            set_aside=undecodable)
                for reason in undecodable:
                    report.set_aside += 1
                    report.errors.append(reason)
                    _log.error("outbox record set aside", target=self.target.label,
                               error=reason, outbox=str(self.outbox.path))
                if not entries:
                    if undecodable:
                        continue
                    break
                progress = False
                for index, entry in enumerate(entries):
                    try:
                        stored = self._apply(entry.kind, entry.payload)
                    except Exception as exc:
                        if is_permanent(exc):
                            self.outbox.set_aside(entry, _describe(exc))
                            report.set_aside += 1
                            report.errors.append(_describe(exc))
                            progress = True
                            _log.error("outbox record set aside", target=self.target.label,
                                       kind=entry.kind, key=entry.record_key,
                                       error=_describe(exc), outbox=str(self.outbox.path))
                            continue
                        self.outbox.mark_failed(entry, _describe(exc))
                        self.outbox.release(entries[index + 1:])
                        report.failed += 1
                        report.errors.append(_describe(exc))
                        report.remaining, report.in_flight = self.outbox.waiting(
                            self.target.target)
                        self._down_until = time.monotonic() + self.retry_after
                        _log.warning("outbox replay stopped", target=self.target.label,
                                     error=_describe(exc), remaining=report.remaining)
                        return report
                    if self.outbox.remove(entry):
                        progress = True
                        if stored:
                            report.written += 1
                        else:
                            report.skipped += 1
                if not progress:  # every record changed while written: next write retries
                    break
            self._down_until = 0.0
            report.remaining, report.in_flight = self.outbox.waiting(self.target.target)
        if report.written or report.skipped or report.set_aside:
            _log.info("outbox replayed", target=self.target.label, written=report.written,
                      skipped=report.skipped, set_aside=report.set_aside)
        return report

    # -- internals -------------------------------------------------------------------------

    def last_failure(self) -> str | None:
        """Why this thread's last write went to the outbox (None: it reached the store, or
        was queued behind a record of the same run being replayed)."""
        failure: str | None = getattr(self._local, "failure", None)
        return failure

    def _write(self, kind: str, key: str, payload: dict[str, Any]) -> bool:
        self._local.failure = None
        if time.monotonic() >= self._down_until and not self._may_have_pending():
            # fast path, no lock: concurrent task threads write in parallel. Order matters
            # only between states of one run, and those come from the run's own thread.
            try:
                self._apply(kind, payload)
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
                    if report.failed:
                        raise _SkippedWhileDown(
                            "earlier records could not be replayed: " + report.errors[-1])
                    if kind == "history" and self.outbox.has_record(
                            self.target.target, "history", key):
                        # an older state of this run is being written by another replayer:
                        # merge behind it, never write over it
                        self.outbox.add(self.target.target, self.target.label, "history",
                                        key, payload, "queued behind a record in flight")
                        self._checked_empty_at = None
                        _log.info("history write queued behind a record in flight", key=key,
                                  target=self.target.label, outbox=str(self.outbox.path))
                        return False
                self._apply(kind, payload)
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
        self._local.failure = error
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

    def _apply(self, kind: str, payload: dict[str, Any]) -> bool:
        """Write one record as its own run wrote it (audit rows name its flow run / task
        run); False when the store already held the task run's output."""
        stores = self._stores()
        if kind == "history":
            record = history_record(payload)
            with acting_as(record.run_id):
                stores.history.write_flow_run(record)
            return True
        task_run_id, flow_run_id = payload["task_run_id"], payload["flow_run_id"]
        with acting_as(flow_run_id, task_run_id):
            once = getattr(stores.outputs, "write_task_output_once", None)
            if once is not None:  # the store keeps one output per task run id
                _, created = once(payload["task_id"], payload["output"], payload["metadata"],
                                  task_run_id=task_run_id, flow_run_id=flow_run_id)
                return bool(created)
            if stores.outputs.read_task_output(payload["task_id"]) is not None:
                return False  # a store without idempotency keys: best effort
            stores.outputs.write_task_output(
                payload["task_id"], payload["output"], payload["metadata"],
                task_run_id=task_run_id, flow_run_id=flow_run_id,
            )
            return True


class _SkippedWhileDown(Exception):
    """Internal: the store is not tried during the back-off window."""


__all__ = ["CaptureStores", "CaptureWriter", "OutboxEntry", "ReplayReport",
           "is_permanent"]
