"""Prefect blocks: typed configuration plus a factory that builds the store.

``RedisMemory``, ``PostgresMemory`` and ``VectorMemory`` configure one backend each;
``MemoryStore`` nests them (each optional, the embedded default fills the rest) and is
what flows declare. Importing this module imports Prefect; ``import memory_resources``
does not (the names are also reachable lazily as ``memory_resources.MemoryStore`` ...).
"""

from __future__ import annotations

from .postgres import PostgresMemory
from .redis import RedisMemory
from .store import MemoryStore
from .vector import VectorMemory

__all__ = ["MemoryStore", "PostgresMemory", "RedisMemory", "VectorMemory"]
