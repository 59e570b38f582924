"""A flow that runs one SERIALIZABLE Prefect transaction on ``MemoryLockManager``.

Run as ``python -m tests.prefect.txn_worker <spec.json> <role>`` by
tests/prefect/test_lock_manager.py. ``spec`` names the backend block, the transaction key,
the shared result folder and the signal folder. The ``first`` role takes the key, drops a
``first-locked`` file and commits only once the test drops ``go``; the ``second`` role
drops ``second-entering``, then opens the same transaction and prints what it observed as
one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.filesystems import LocalFileSystem
from prefect.results import ResultStore
from prefect.transactions import IsolationLevel, transaction

from memory_resources.prefect import MemoryLockManager


def block_of(spec: dict[str, Any]) -> Any:
    """The memory block the spec names (``redis``, ``postgres`` or ``sqlite``)."""
    backend = spec["backend"]
    if backend == "redis":
        from memory_resources.blocks import RedisMemory
        return RedisMemory(url=spec["url"], key_prefix=spec["prefix"])
    if backend == "postgres":
        from memory_resources.blocks import PostgresMemory
        return PostgresMemory(dsn=spec["dsn"], schema=spec["schema"], auto_migrate=False)
    from memory_resources.blocks import MemoryStore
    return MemoryStore(embedded_path=spec["path"])


def wait_for(path: Path, timeout: float = 60) -> None:
    """Wait until ``path`` exists (the test's go signal)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {path.name} within {timeout}s")
        time.sleep(0.02)


@flow(name="txn-contender")
def contender(spec: dict[str, Any], role: str) -> dict[str, Any]:
    """Open the SERIALIZABLE transaction on ``spec['key']`` and report what was seen."""
    signals = Path(spec["signals"])
    manager = MemoryLockManager(block_of(spec), lease_seconds=spec.get("lease", 30))
    store = ResultStore(result_storage=LocalFileSystem(basepath=spec["results"]),
                        lock_manager=manager)
    if role == "second":
        (signals / "second-entering").touch()
    with transaction(key=spec["key"], store=store,
                     isolation_level=IsolationLevel.SERIALIZABLE) as txn:
        seen: dict[str, Any] = {"role": role, "committed_before": txn.is_committed(),
                                "token": manager.fencing_token(spec["key"])}
        if role == "first":
            (signals / "first-locked").touch()
            wait_for(signals / "go")
            txn.stage({"written_by": "first"})
        else:
            (signals / "second-inside").touch()
            record = txn.read()
            seen["value"] = None if record is None else record.result
    seen["locked_after"] = manager.is_locked(spec["key"])
    return seen


if __name__ == "__main__":
    spec = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(contender(spec, sys.argv[2])), flush=True)
