"""Fixtures of the MemoryAPI tests: an API on the embedded default in a temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memory_resources import default
from memory_resources.api import MemoryAPI

DIMENSION = 8
MAX_PAYLOAD = 4096


@pytest.fixture
def embedded_config(tmp_path: Path) -> dict[str, object]:
    """An embedded config with its own SQLite file and a small payload limit."""
    return {"path": str(tmp_path / "memory.db"), "max_payload_bytes": MAX_PAYLOAD}


@pytest.fixture
def api(embedded_config: dict[str, object]) -> Iterator[MemoryAPI]:
    """A connected MemoryAPI on the embedded default (8-dimensional cosine vectors)."""
    memory = MemoryAPI(
        vector_config={"dimension": DIMENSION, "metric": "cosine"},
        embedded_config=embedded_config,
    )
    memory.connect()
    yield memory
    memory.disconnect()


@pytest.fixture
def memory_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """MEMORY_RESOURCES_HOME in a temporary folder, no backend env vars, a fresh default."""
    home = tmp_path / "home"
    monkeypatch.setenv("MEMORY_RESOURCES_HOME", str(home))
    for name in (default.ENV_REDIS_URL, default.ENV_POSTGRES_DSN, default.ENV_VECTOR_BACKEND,
                 default.ENV_VECTOR_DIMENSION):
        monkeypatch.delenv(name, raising=False)
    default.reset_memory_api()
    yield home
    default.reset_memory_api()


def unit(*values: float) -> list[float]:
    """An 8-dimensional vector starting with ``values`` and padded with zeros."""
    return [*values, *([0.0] * (DIMENSION - len(values)))]
