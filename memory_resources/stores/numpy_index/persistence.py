"""What the numpy index needs from a persistence store, and the loaded state it reads back.

Stores keep float32 vectors (also when the index scans float16 in memory) and the
metadata as codec JSON text. ``write`` applies one batch of upserts and deletes of one
namespace atomically: after a crash either the whole batch is there or none of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ...errors import SchemaError


@dataclass
class LoadedVectors:
    """A namespace's persisted state: ``ids[i]`` has ``vectors[i]`` and ``metadata[i]``."""

    ids: list[str] = field(default_factory=list)
    vectors: np.ndarray[Any, Any] = field(
        default_factory=lambda: np.empty((0, 0), dtype=np.float32)
    )
    metadata: list[str] = field(default_factory=list)
    """Codec JSON text of each row's metadata."""


class VectorPersistence(Protocol):
    """Durable storage behind a :class:`NumpyVectorIndex`."""

    location: str
    """Human-readable place (file or directory), for stats and errors."""

    def load(self, namespace: str, dimension: int) -> LoadedVectors:
        """Every stored row of ``namespace``; :class:`SchemaError` if they have another
        dimension."""
        ...

    def write(
        self,
        namespace: str,
        dimension: int,
        ids: list[str],
        vectors: np.ndarray[Any, Any],
        metadata: list[str],
        deletes: list[str],
    ) -> None:
        """Upsert ``ids``/``vectors``/``metadata`` and delete ``deletes``, atomically."""
        ...

    def stale(self, namespace: str) -> bool:
        """Whether another writer (connection, process) changed ``namespace`` since this
        instance loaded or wrote it; the index then reloads."""
        ...

    def ping(self) -> None:
        """Raise a BackendError if the store is not usable."""
        ...

    def size_bytes(self) -> int:
        """Bytes the store occupies on disk (approximate)."""
        ...

    def close(self) -> None:
        """Release files and connections (idempotent)."""
        ...


def dimension_mismatch(location: str, namespace: str, stored: int, wanted: int) -> SchemaError:
    """The error raised when persisted vectors do not have the configured dimension."""
    return SchemaError(
        "numpy",
        f"namespace {namespace!r} in {location} holds {stored}-dimension vectors, but the "
        f"index is configured with dimension {wanted}; use dimension={stored}, another "
        f"namespace, or another path",
    )
