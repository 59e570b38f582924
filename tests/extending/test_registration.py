"""The example backend registered through a real entry point (a dist-info folder, as
``pip install`` leaves it) is picked up by configuration alone: by name from code, from
the environment in a fresh interpreter, and from a MemoryStore block."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from memory_resources import MemoryAPI
from memory_resources.api_async import AsyncMemoryAPI
from memory_resources.backends import ENTRY_POINT_GROUP, available_backends
from memory_resources.errors import ConfigurationError
from tests.entry_points import installed_distribution

REPO = Path(__file__).resolve().parents[2]
POINTS = {ENTRY_POINT_GROUP: {"example": "tests.extending.example_backend:BACKEND"}}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    """The distribution ``memory-example`` installed for the test: only its dist-info,
    declaring ``example = tests.extending.example_backend:BACKEND``."""
    with installed_distribution(tmp_path / "site", "memory-example", POINTS) as root:
        yield root


def _others(tmp_path: Path) -> dict[str, object]:
    return {"embedded_config": {"path": str(tmp_path / "memory.db")},
            "vector_config": {"dimension": 4}}


def test_configured_by_name_from_code(site: Path, tmp_path: Path) -> None:
    """backends={"context": {"backend": "example", "path": ...}} builds the example store
    for contexts (other roles stay embedded); what it writes is in its JSON file and a
    second API over the same file reads it."""
    assert "example" in available_backends("context")
    path = tmp_path / "contexts.json"
    with MemoryAPI(backends={"context": {"backend": "example", "path": str(path)}},
                   **_others(tmp_path)) as api:
        assert api.backends["context"] == "example" and api.backends["events"] == "sqlite"
        assert api.set_context("session", {"goal": "plan"}, ttl=60)
        assert api.health_check()["adapters"]["redis"]["roles"]["context"]["backend"] == (
            "example")
    assert "session" in json.loads(path.read_text())
    with MemoryAPI(backends={"context": {"backend": "example", "path": str(path)}},
                   **_others(tmp_path)) as again:
        assert again.get_context("session")["data"] == {"goal": "plan"}  # type: ignore[index]


def test_its_options_and_roles_are_checked(site: Path, tmp_path: Path) -> None:
    """An unknown option is refused by the example's options model, naming it; the
    example cannot fill a role it does not declare."""
    with pytest.raises(ConfigurationError, match=r"backends\['context'\]\['colour'\]"):
        MemoryAPI(backends={"context": {"backend": "example", "colour": "red"}},
                  **_others(tmp_path))
    with pytest.raises(ConfigurationError, match=r"'example' backend cannot fill the events "
                                                 r"role \(it fills context\)"):
        MemoryAPI(backends={"events": "example"}, **_others(tmp_path))


def test_async_api_runs_it_on_worker_threads(site: Path, tmp_path: Path) -> None:
    """AsyncMemoryAPI configured by name runs the (sync) example store off the loop."""
    path = tmp_path / "contexts.json"
    api = AsyncMemoryAPI(backends={"context": {"backend": "example", "path": str(path)}},
                         **_others(tmp_path))

    async def use() -> None:
        async with api:
            await api.set_context("s", {"async": True})
            assert (await api.get_context("s"))["data"] == {"async": True}  # type: ignore[index]

    asyncio.run(use())
    assert "s" in json.loads(path.read_text())


def test_picked_up_from_the_environment_in_a_fresh_process(site: Path, tmp_path: Path) -> None:
    """A new interpreter with the distribution on its path and only
    MEMORY_RESOURCES_BACKENDS set gets the example store from get_memory_api()."""
    path = tmp_path / "env.json"
    script = textwrap.dedent("""
        from memory_resources import get_memory_api
        api = get_memory_api()
        api.set_context("from-env", {"n": 1})
        print(api.backends["context"], type(api.store("context")).__name__)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
           "MEMORY_RESOURCES_HOME": str(tmp_path / "home"),
           "MEMORY_RESOURCES_BACKENDS": json.dumps(
               {"context": {"backend": "example", "path": str(path)}})}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["example", "DictContextStore"]
    assert json.loads(path.read_text())["from-env"]["version"] == 1


def test_picked_up_from_a_memory_store_block(site: Path, tmp_path: Path) -> None:
    """A MemoryStore whose backends field names the example uses it for .context()."""
    from memory_resources.blocks import MemoryStore

    path = tmp_path / "block.json"
    store = MemoryStore(backends={"context": {"backend": "example", "path": str(path)}},
                        embedded_path=str(tmp_path / "memory.db"))
    try:
        store.context("s").set({"from": "block"})
        assert store.api.backends["context"] == "example"
    finally:
        store.close()
    assert "s" in json.loads(path.read_text())
