"""memory_resources: durable memory for AI-agent workflows, as Prefect 3 blocks."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    LockNotAcquiredError,
    MemoryResourcesError,
    MemoryValidationError,
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .api import MemoryAPI
    from .default import configure_memory_api, get_memory_api, reset_memory_api, set_memory_api
    from .handles import ContextHandle
    from .locking import Lock

_LAZY: dict[str, str] = {
    "MemoryAPI": "memory_resources.api",
    "ContextHandle": "memory_resources.handles",
    "Lock": "memory_resources.locking",
    "configure_memory_api": "memory_resources.default",
    "get_memory_api": "memory_resources.default",
    "reset_memory_api": "memory_resources.default",
    "set_memory_api": "memory_resources.default",
}
"""Public names imported on first access, so ``import memory_resources`` stays cheap."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'memory_resources' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "ConfigurationError",
    "ContextHandle",
    "Lock",
    "LockNotAcquiredError",
    "MemoryAPI",
    "MemoryResourcesError",
    "MemoryValidationError",
    "__version__",
    "configure_memory_api",
    "get_memory_api",
    "reset_memory_api",
    "set_memory_api",
]
