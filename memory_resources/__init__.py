"""memory_resources: durable memory for AI-agent workflows, as Prefect 3 blocks."""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .capture.declare import register_declarers as _register_declarers
from .errors import (  # every typed error, importable from the package
    BackendAuthenticationError,
    BackendConfigurationError,
    BackendError,
    BackendPermissionError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigurationError,
    CorruptRecordError,
    DepthLimitError,
    EmbeddingValidationError,
    LockError,
    LockLostError,
    LockNotAcquiredError,
    LockNotHeldError,
    MemoryResourcesError,
    MemoryValidationError,
    NotAMemoryStoreError,
    NotFoundError,
    PayloadTooLargeError,
    ReplicaAckError,
    ReplicaUnavailableWarning,
    SchemaError,
    SchemaPermissionError,
    SerializationError,
    UnsafeIdentifierError,
)

if TYPE_CHECKING:
    from .api import MemoryAPI
    from .api_async import AsyncMemoryAPI
    from .blocks import MemoryStore, PostgresMemory, RedisMemory, VectorMemory
    from .default import configure_memory_api, get_memory_api, reset_memory_api, set_memory_api
    from .handles import ContextHandle
    from .locking import Lock
    from .locking_async import AsyncLock
    from .prefect import current_memory, remember, remembered_task

_LAZY: dict[str, str] = {
    "MemoryAPI": "memory_resources.api",
    "AsyncMemoryAPI": "memory_resources.api_async",
    "AsyncLock": "memory_resources.locking_async",
    "ContextHandle": "memory_resources.handles",
    "Lock": "memory_resources.locking",
    "configure_memory_api": "memory_resources.default",
    "get_memory_api": "memory_resources.default",
    "reset_memory_api": "memory_resources.default",
    "set_memory_api": "memory_resources.default",
    # Prefect blocks and capture (import Prefect on first access only)
    "MemoryStore": "memory_resources.blocks",
    "RedisMemory": "memory_resources.blocks",
    "PostgresMemory": "memory_resources.blocks",
    "VectorMemory": "memory_resources.blocks",
    "remember": "memory_resources.prefect",
    "remembered_task": "memory_resources.prefect",
    "current_memory": "memory_resources.prefect",
}
"""Public names imported on first access, so ``import memory_resources`` stays cheap."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memory_resources' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    # ``prefect block register -m memory_resources`` lists the module with dir(): show the
    # lazy names so the block classes are found.
    return sorted({*globals(), *_LAZY})


def _prefect_declarers() -> Any:
    from .capture.declare import Declarers
    from .prefect.capture import remember, remembered_task

    return Declarers(remember, remembered_task)


# The package root composes the layers: it tells the blocks (below ``prefect/``) where
# ``MemoryStore.capture`` / ``.task`` come from, without the blocks importing ``prefect/``.
_register_declarers(_prefect_declarers)

if "prefect.blocks.core" in sys.modules:
    # Imported by Prefect (the ``prefect.collections`` entry point, e.g. when the server
    # registers block types or a block document is loaded): register our block classes.
    # A plain ``import memory_resources`` without Prefect loaded stays cheap.
    from .blocks import load_all as _load_blocks

    _load_blocks()


__all__ = [
    "AsyncLock",
    "AsyncMemoryAPI",
    "BackendAuthenticationError",
    "BackendConfigurationError",
    "BackendError",
    "BackendPermissionError",
    "BackendTimeoutError",
    "BackendUnavailableError",
    "ConfigurationError",
    "ContextHandle",
    "CorruptRecordError",
    "DepthLimitError",
    "EmbeddingValidationError",
    "Lock",
    "LockError",
    "LockLostError",
    "LockNotAcquiredError",
    "LockNotHeldError",
    "MemoryAPI",
    "MemoryResourcesError",
    "MemoryStore",
    "MemoryValidationError",
    "NotAMemoryStoreError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PostgresMemory",
    "RedisMemory",
    "ReplicaAckError",
    "ReplicaUnavailableWarning",
    "SchemaError",
    "SchemaPermissionError",
    "SerializationError",
    "UnsafeIdentifierError",
    "VectorMemory",
    "__version__",
    "configure_memory_api",
    "current_memory",
    "get_memory_api",
    "remember",
    "remembered_task",
    "reset_memory_api",
    "set_memory_api",
]
