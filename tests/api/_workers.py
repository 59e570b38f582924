"""Process targets of the MemoryAPI multi-process test (importable under spawn)."""

from __future__ import annotations

from typing import Any

from memory_resources.api import MemoryAPI


def increment_under_lock(path: str, worker: int, rounds: int, start: Any) -> None:
    """``rounds`` read-modify-write increments of one shared counter under acquire_lock,
    plus one event and one task output per round."""
    start.wait(60)
    with MemoryAPI(embedded_config={"path": path}, vector_config={"dimension": 4}) as api:
        for index in range(rounds):
            with api.acquire_lock("counter", timeout=30, blocking_timeout=60) as lock:
                record = api.get_context("counter")
                value = record["data"]["value"] if record else 0
                api.set_context("counter", {"value": value + 1,
                                            "token": lock.fencing_token})
            api.append_event("log", {"worker": worker, "i": index})
            api.write_task_output(f"task-{worker}", {"i": index})
