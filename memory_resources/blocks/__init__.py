"""Prefect blocks: typed configuration plus a factory that builds the store.

``RedisMemory``, ``PostgresMemory`` and ``VectorMemory`` configure one backend each;
``MemoryStore`` nests them (each optional, the embedded default fills the rest) and is
what flows declare. Each block is imported on first access (``from memory_resources.blocks
import MemoryStore``), so importing one block module does not import the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .postgres import PostgresMemory
    from .redis import RedisMemory
    from .store import MemoryStore
    from .vector import VectorMemory

_BLOCKS: dict[str, str] = {
    "MemoryStore": "memory_resources.blocks.store",
    "PostgresMemory": "memory_resources.blocks.postgres",
    "RedisMemory": "memory_resources.blocks.redis",
    "VectorMemory": "memory_resources.blocks.vector",
}


def __getattr__(name: str) -> Any:
    module = _BLOCKS.get(name)
    if module is None:
        raise AttributeError(f"module 'memory_resources.blocks' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_BLOCKS})


def load_all() -> list[type[Any]]:
    """Import every block class (registers them with Prefect's block registry)."""
    return [__getattr__(name) for name in sorted(_BLOCKS)]


__all__ = ["MemoryStore", "PostgresMemory", "RedisMemory", "VectorMemory", "load_all"]
