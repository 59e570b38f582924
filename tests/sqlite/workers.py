"""Process entry points for the multi-process tests (importable under ``spawn``)."""

from __future__ import annotations

import os
from typing import Any

from memory_resources.config import EmbeddedConfig
from memory_resources.locking import Lock
from memory_resources.records import FlowRunWrite
from memory_resources.stores.sqlite import SQLiteStore


def _store(path: str) -> SQLiteStore:
    store = SQLiteStore(EmbeddedConfig(path=path, busy_timeout=60))
    store.connect()
    return store


def write_everything(path: str, worker: int, rounds: int, start: Any) -> None:
    """Write contexts, events, history upserts and outputs, shared and own, ``rounds`` times."""
    store = _store(path)
    start.wait(30)
    for i in range(rounds):
        store.set_context("shared-context", {"worker": worker, "i": i})
        store.set_context(f"own-{worker}-{i}", {"i": i})
        store.append_event("shared-events", {"worker": worker, "i": i})
        store.write_flow_run(FlowRunWrite(flow_id="flow", run_id=f"run-{i}",
                                          data={f"w{worker}": i}, status=f"by-{worker}"))
        store.write_task_output("shared-task", {"worker": worker, "i": i})
    store.close()


def count_under_lock(path: str, counter_file: str, log_file: str, increments: int,
                     start: Any) -> None:
    """Increment a plain-file counter under the SQLite lock; log each fencing token."""
    store = _store(path)
    start.wait(30)
    for _ in range(increments):
        with Lock(store, "counter", timeout=30, blocking_timeout=120, retry_delay=0.005) as lock:
            with open(counter_file) as handle:
                value = int(handle.read())
            with open(log_file, "a") as log:
                log.write(f"{lock.fencing_token}\n")
            with open(counter_file, "w") as handle:
                handle.write(str(value + 1))
    store.close()


def take_lock_and_die(path: str, ttl_ms: int, taken: Any) -> None:
    """Take a lease and exit without releasing it (like a killed holder)."""
    store = _store(path)
    token = store.try_acquire("abandoned", "dead-owner", ttl_ms)
    taken.put(token)
    taken.close()
    taken.join_thread()  # flush the queue before exiting without any cleanup
    os._exit(0)
