"""memory_resources: durable memory for AI-agent workflows, as Prefect 3 blocks."""

from __future__ import annotations

from .errors import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    LockNotAcquiredError,
    MemoryResourcesError,
    MemoryValidationError,
)

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "ConfigurationError",
    "LockNotAcquiredError",
    "MemoryResourcesError",
    "MemoryValidationError",
    "__version__",
]
