"""Deploy-safe API: ``MemoryStore.load`` at module level inside an event loop (as
``prefect deploy`` imports a flow module), ``remember`` refusing what is not a store, and
the artifact's read-back commands naming the saved block."""

from __future__ import annotations

import asyncio
import gc
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest
from prefect import flow

from memory_resources.blocks import MemoryStore, RedisMemory
from memory_resources.errors import ConfigurationError, NotAMemoryStoreError
from memory_resources.prefect import remember, remembered_task, summarize
from memory_resources.prefect.artifacts import read_back_line, run_summary, summary_markdown

MODULE = """
from prefect import flow
from memory_resources.blocks import MemoryStore
from memory_resources.prefect import remember, summarize

memory = MemoryStore.load({name!r})

@summarize(tables=True)
@remember(memory)
@flow
def agent(session_id: str) -> None:
    ...
"""


@pytest.mark.prefect
@pytest.mark.usefixtures("prefect_harness")
def test_module_level_load_inside_an_event_loop_returns_the_block(tmp_path: Path) -> None:
    """A module doing ``MemoryStore.load(name)`` at import, imported inside a running loop
    (what ``prefect deploy`` does), gets the block and a decorated flow, not a coroutine."""
    name = f"deploy-safe-{uuid.uuid4().hex[:8]}"
    MemoryStore(embedded_path=str(tmp_path / "m.db")).save(name)
    namespace: dict[str, Any] = {}

    async def import_module() -> None:
        exec(compile(MODULE.format(name=name), "agent_module.py", "exec"), namespace)

    asyncio.run(import_module())
    assert isinstance(namespace["memory"], MemoryStore)
    assert namespace["memory"]._block_document_name == name
    assert namespace["agent"].name == "agent"


@pytest.mark.prefect
@pytest.mark.usefixtures("prefect_harness")
def test_load_stays_awaitable_in_async_runs_and_sync_elsewhere(tmp_path: Path) -> None:
    """Inside an async flow ``await MemoryStore.load(name)`` works as Prefect documents;
    ``aload`` is always awaitable; a sync call outside a loop returns the block."""
    name = f"deploy-safe-{uuid.uuid4().hex[:8]}"
    RedisMemory(key_prefix="mrtest:deploy-safe:").save(name)

    @flow
    async def loads() -> tuple[str, str]:
        inside = await RedisMemory.load(name)
        other = await RedisMemory.aload(name)
        return inside.key_prefix, other.key_prefix

    assert asyncio.run(loads()) == ("mrtest:deploy-safe:", "mrtest:deploy-safe:")
    assert RedisMemory.load(name).key_prefix == "mrtest:deploy-safe:"


def test_remember_refuses_a_coroutine_and_says_what_to_write() -> None:
    """``remember`` given the coroutine Prefect's load returns in a loop raises
    NotAMemoryStoreError naming the fix, and closes the coroutine (no "never awaited")."""

    async def pending_load() -> MemoryStore:
        return MemoryStore()

    coroutine = pending_load()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(NotAMemoryStoreError, match=r"MemoryStore\.load") as error:
            remember(coroutine)  # type: ignore[arg-type]
        del coroutine
        gc.collect()
    assert "aload" in str(error.value) and isinstance(error.value, TypeError)
    assert isinstance(error.value, ConfigurationError)
    assert not [w for w in caught if "never awaited" in str(w.message)]


@pytest.mark.parametrize("value", [None, "agent-memory", {"redis": None}, object()],
                         ids=["none", "name", "dict", "object"])
def test_remember_refuses_anything_but_a_store(value: Any) -> None:
    """``remember``, ``remembered_task`` and ``summarize`` refuse values that are not a
    store with NotAMemoryStoreError naming ``MemoryStore()`` and ``MemoryStore.load``
    (``summarize(None)`` means "the memory remember declared")."""
    calls = [lambda: remember(value), lambda: remembered_task(value)]
    if value is not None:
        calls.append(lambda: summarize(value))
    for call in calls:
        with pytest.raises(NotAMemoryStoreError, match=r"MemoryStore\(\)"):
            call()


def test_read_back_commands_name_the_block(memory_store: MemoryStore) -> None:
    """The artifact's read-back commands carry ``--block NAME`` when the store is a saved
    block, quoted for the shell when needed, and none for an unsaved store."""
    assert read_back_line("agent", "agent-memory") == (
        "Read it back: `memory-resources history --flow agent --block agent-memory`, "
        "`memory-resources outputs --task <task run> --block agent-memory`.")
    assert "--block" not in read_back_line("agent", None)
    assert "--flow 'my agent'" in read_back_line("my agent", None)
    summary = run_summary(memory_store.api, "run-x", block="agent-memory")
    assert "--block agent-memory" in summary_markdown(summary)
