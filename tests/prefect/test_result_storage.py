"""``RedisMemory`` / ``PostgresMemory`` as Prefect result storage and cache storage.

A task with ``result_storage=<block>`` and ``cache_policy=INPUTS`` persists its result in
our backend; a second run with the same inputs is served from it (the task body does not
run again), and once the stored record is deleted the task runs again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prefect import flow, task
from prefect.cache_policies import INPUTS
from prefect.filesystems import WritableFileSystem

from memory_resources.blocks import PostgresMemory, RedisMemory
from memory_resources.errors import MemoryValidationError, NotFoundError
from tests.fixtures.postgres import make_postgres_store


@pytest.fixture(params=["redis", "postgres"])
def storage(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A RedisMemory or PostgresMemory block on the test's own prefix / schema."""
    block: Any
    if request.param == "redis":
        block = RedisMemory(url=request.getfixturevalue("redis_url"),
                            key_prefix=request.getfixturevalue("redis_prefix"))
    else:
        dsn, schema = request.getfixturevalue("postgres_dsn"), request.getfixturevalue("pg_schema")
        make_postgres_store(dsn, schema).close()
        block = PostgresMemory(dsn=dsn, schema=schema, auto_migrate=False)
    yield block
    block.close()


def test_blocks_are_writable_file_systems(storage: Any) -> None:
    """Both blocks are Prefect ``WritableFileSystem`` blocks: bytes round-trip by path,
    sync and async, a missing path raises NotFoundError, and a non-bytes value is refused."""
    assert isinstance(storage, WritableFileSystem)
    path, content = f"r-{uuid.uuid4().hex}", bytes(range(256)) * 4
    assert storage.write_path(path, content) == path
    assert storage.read_path(path) == content
    storage.write_path(path, b"second")
    assert storage.read_path(path, _sync=True) == b"second"
    assert asyncio.run(storage.aread_path(path)) == b"second"
    asyncio.run(storage.awrite_path(path, b""))
    assert storage.read_path(path) == b""
    assert storage.delete_path(path) is True and storage.delete_path(path) is False
    with pytest.raises(NotFoundError):
        storage.read_path(path)
    with pytest.raises(MemoryValidationError, match="content"):
        storage.write_path(path, "text")


@pytest.mark.prefect
@pytest.mark.usefixtures("prefect_harness")
def test_cached_task_result_is_served_from_our_backend(storage: Any) -> None:
    """The first run stores the result in our backend, the second is a cache hit that
    does not run the task, and after the stored record is deleted the task runs again."""
    calls: list[int] = []
    salt = uuid.uuid4().hex
    storage.save(f"results-{salt[:12]}")  # Prefect wants result storage saved server-side

    @task(result_storage=storage, cache_policy=INPUTS, persist_result=True)
    def expensive(x: int, salt: str) -> dict[str, Any]:
        calls.append(x)
        return {"square": x * x, "blob": bytes(range(200))}

    @flow
    def pipeline(x: int) -> tuple[dict[str, Any], str]:
        state = expensive(x, salt, return_state=True)
        return state.result(), state.name

    first, first_state = pipeline(7)
    second, second_state = pipeline(7)
    assert first == second == {"square": 49, "blob": bytes(range(200))}
    assert calls == [7] and first_state == "Completed" and second_state == "Cached"
    keys = _stored_paths(storage)
    assert len(keys) == 1, keys
    storage.delete_path(keys[0])
    third, third_state = pipeline(7)
    assert calls == [7, 7] and third_state == "Completed" and third == first
    pipeline(8)
    assert calls == [7, 7, 8] and len(_stored_paths(storage)) == 2


def _stored_paths(block: Any) -> list[str]:
    """The paths of every result blob the block holds."""
    store = block.get_store()
    if isinstance(block, RedisMemory):
        prefix = f"{block.key_prefix}result:"
        return sorted(k[len(prefix) + 1:-1] for k in store.client.scan_iter(f"{prefix}*"))
    rows = store.pool.run(lambda cur: (cur.execute(
        store.render("SELECT path FROM {s}.memory_results ORDER BY path")), cur.fetchall())[1])
    return [row[0] for row in rows]


@pytest.mark.prefect
@pytest.mark.usefixtures("prefect_harness")
def test_serializable_cache_on_one_backend(storage: Any) -> None:
    """The block's backend serves both the results and, through MemoryLockManager, the
    cache policy's SERIALIZABLE lock: the second run is a cache hit and no lease is left."""
    from prefect.transactions import IsolationLevel

    from memory_resources.prefect import MemoryLockManager

    calls: list[int] = []
    storage.save(f"locked-{uuid.uuid4().hex[:12]}")
    locks = MemoryLockManager(storage)
    policy = INPUTS.configure(lock_manager=locks, isolation_level=IsolationLevel.SERIALIZABLE)

    @task(result_storage=storage, cache_policy=policy, persist_result=True)
    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    @flow
    def pipeline(x: int) -> tuple[int, str]:
        state = double(x, return_state=True)
        return state.result(), state.name

    assert pipeline(21) == (42, "Completed")
    assert pipeline(21) == (42, "Cached") and calls == [21]
    (path,) = _stored_paths(storage)
    assert locks.is_locked(path) is False
