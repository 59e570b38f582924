"""``MemoryLockManager``: Prefect's lock-manager protocol on Redis, PostgreSQL and SQLite.

The cross-process test runs two flows (tests/prefect/txn_worker.py) contending on one
SERIALIZABLE transaction key: the second waits while the first holds the key, then sees
the first's commit instead of computing its own value.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.locking.protocol import LockManager as PrefectLockManager
from prefect.settings import PREFECT_API_URL

from memory_resources.blocks import MemoryStore, PostgresMemory, RedisMemory
from memory_resources.errors import ConfigurationError, LockNotHeldError
from memory_resources.prefect import MemoryLockManager
from tests.fixtures.postgres import make_postgres_store

REPO = Path(__file__).resolve().parents[2]
BACKENDS = ["sqlite", "redis", "postgres"]


@pytest.fixture(params=BACKENDS)
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """The worker spec of one backend: its block settings plus shared folders and a key."""
    base: dict[str, Any] = {"backend": request.param, "key": f"txn-{uuid.uuid4().hex[:8]}",
                            "results": str(tmp_path / "results"),
                            "signals": str(tmp_path / "signals")}
    Path(base["signals"]).mkdir()
    if request.param == "redis":
        base.update(url=request.getfixturevalue("redis_url"),
                    prefix=request.getfixturevalue("redis_prefix"))
    elif request.param == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        schema = request.getfixturevalue("pg_schema")
        make_postgres_store(dsn, schema).close()  # migrated once, before the contenders
        base.update(dsn=dsn, schema=schema)
    else:
        base.update(path=str(tmp_path / "memory.db"))
    return base


@pytest.fixture
def manager(spec: dict[str, Any]) -> Iterator[MemoryLockManager]:
    """A MemoryLockManager in this process on the spec's backend."""
    from tests.prefect.txn_worker import block_of

    block = block_of(spec)
    yield MemoryLockManager(block)
    block.close()


def _start(spec_file: Path, role: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    return subprocess.Popen([sys.executable, "-m", "tests.prefect.txn_worker",
                             str(spec_file), role], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_file(path: Path, process: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"worker exited early: {process.communicate()}")
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def _result(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    line = [row for row in out.splitlines() if row.startswith("{")][-1]
    return dict(json.loads(line))


@pytest.mark.prefect
@pytest.mark.usefixtures("prefect_harness")
def test_second_flow_waits_for_and_observes_the_first_commit(
    spec: dict[str, Any], tmp_path: Path, manager: MemoryLockManager
) -> None:
    """Two flows in separate processes open one SERIALIZABLE transaction key: the second
    blocks while the first holds it, then starts already committed and reads the first's
    value; the key is free afterwards."""
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec))
    signals = Path(spec["signals"])
    first = _start(spec_file, "first")
    second: subprocess.Popen[str] | None = None
    try:
        _wait_file(signals / "first-locked", first)
        assert manager.is_locked(spec["key"]), "the key is locked for every process"
        second = _start(spec_file, "second")
        _wait_file(signals / "second-entering", second)
        time.sleep(1.0)  # the second is now inside begin(), waiting on the key
        assert not (signals / "second-inside").exists(), "the second entered while held"
        assert second.poll() is None
        (signals / "go").touch()
        one, two = _result(first), _result(second)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()
    assert one["committed_before"] is False and isinstance(one["token"], int)
    assert two["committed_before"] is True, "the second saw the first's commit"
    assert two["value"] == {"written_by": "first"}
    assert two["token"] > one["token"], "fencing tokens increase across holders"
    assert one["locked_after"] is False and two["locked_after"] is False
    assert manager.is_locked(spec["key"]) is False


def test_protocol_calls_in_one_process(manager: MemoryLockManager) -> None:
    """acquire / is_lock_holder / is_locked / wait_for_lock / release behave as Prefect's
    protocol says, and a second holder is refused while the key is held."""
    key = f"k-{uuid.uuid4().hex}"
    assert isinstance(manager, PrefectLockManager)
    assert manager.is_locked(key) is False and manager.wait_for_lock(key, timeout=0)
    assert manager.acquire_lock(key, "alice") is True
    assert manager.acquire_lock(key, "alice") is True, "re-acquiring by the holder is a no-op"
    assert manager.is_locked(key) and manager.is_lock_holder(key, "alice")
    assert not manager.is_lock_holder(key, "bob")
    assert manager.acquire_lock(key, "bob", acquire_timeout=0) is False
    assert manager.wait_for_lock(key, timeout=0.1) is False
    with pytest.raises(LockNotHeldError):
        manager.release_lock(key, "bob")
    manager.release_lock(key, "alice")
    assert manager.is_locked(key) is False and manager.wait_for_lock(key, timeout=1)
    assert manager.acquire_lock(key, "bob", acquire_timeout=0) is True
    manager.release_lock(key, "bob")


def test_hold_timeout_expires_the_lease(manager: MemoryLockManager) -> None:
    """A lease taken with ``hold_timeout`` lapses by itself: the holder no longer holds it
    and another holder can take the key."""
    key = f"k-{uuid.uuid4().hex}"
    assert manager.acquire_lock(key, "alice", hold_timeout=0.3)
    assert manager.wait_for_lock(key, timeout=5) is True
    assert manager.is_lock_holder(key, "alice") is False
    assert manager.acquire_lock(key, "bob", acquire_timeout=0)
    manager.release_lock(key, "bob")


def test_async_forms_and_long_keys(manager: MemoryLockManager) -> None:
    """``aacquire_lock`` / ``await_for_lock`` work from an event loop; a key longer than a
    lock name is hashed to a stable name."""
    import asyncio

    key = "x" * 2000
    assert manager.lock_name(key) == manager.lock_name(key)
    assert len(manager.lock_name(key)) < 100

    async def scenario() -> None:
        assert await manager.aacquire_lock(key, "alice", acquire_timeout=1)
        assert await manager.await_for_lock(key, timeout=0.05) is False
        manager.release_lock(key, "alice")
        assert await manager.await_for_lock(key, timeout=1) is True

    asyncio.run(scenario())


def test_pickled_manager_holds_nothing_and_works(manager: MemoryLockManager) -> None:
    """A pickled manager (Prefect may pickle a cache policy) carries its configuration but
    no leases, and works on the other side."""
    key = f"k-{uuid.uuid4().hex}"
    assert manager.acquire_lock(key, "alice")
    copy = pickle.loads(pickle.dumps(manager))
    assert copy.is_lock_holder(key, "alice") is False and copy.is_locked(key) is True
    manager.release_lock(key, "alice")
    assert copy.is_locked(key) is False


def test_rejects_what_has_no_locks() -> None:
    """Anything that is not a memory store, API or backend block is refused with a
    ConfigurationError naming what to pass."""
    with pytest.raises(ConfigurationError, match=r"MemoryStore\.load"):
        MemoryLockManager(object()).is_locked("k")


def test_accepts_each_block_kind() -> None:
    """The three block kinds are accepted as lock sources (built lazily)."""
    for block in (MemoryStore(), RedisMemory(), PostgresMemory()):
        assert "MemoryLockManager" in repr(MemoryLockManager(block))
