"""Deprecated: vector backends by name, now one role of :mod:`memory_resources.backends`.

Kept so code calling these functions, and packages registering a factory
``(config, *, postgres, embedded)`` in the entry-point group
``memory_resources.vector_backends``, keep working; such entry points are read as
vectors-only backends (with a DeprecationWarning). New backends register a
:class:`~memory_resources.backends.Backend` in ``memory_resources.backends`` and check
themselves with the contract kit (a ``memory_vector_index`` fixture and ``pytest -p
memory_resources.testing``, docs/extending.md).
"""

from __future__ import annotations

from typing import Protocol

from .backends import (
    LEGACY_VECTOR_GROUP,
    BuildContext,
    available_backends,
    resolve_backend,
)
from .backends_builtin import ALIASES
from .clock import SYSTEM_CLOCK
from .config import EmbeddedConfig, PostgresConfig, VectorConfig
from .errors import ConfigurationError
from .protocols import VectorIndex

ENTRY_POINT_GROUP = LEGACY_VECTOR_GROUP


class VectorBackendFactory(Protocol):
    """Builds a (not yet connected) vector index from the configuration."""

    def __call__(
        self, config: VectorConfig, *, postgres: PostgresConfig | None, embedded: EmbeddedConfig
    ) -> VectorIndex: ...


def available_vector_backends() -> list[str]:
    """Every vectors backend name that resolves: built-ins, aliases and entry points."""
    return available_backends("vectors")


def resolve_vector_backend(name: str) -> VectorBackendFactory:
    """The factory of backend ``name``; ConfigurationError listing the known names if none."""
    backend = resolve_backend(name, "vectors", "vector_config")

    def factory(config: VectorConfig, *, postgres: PostgresConfig | None,
                embedded: EmbeddedConfig) -> VectorIndex:
        index: VectorIndex = backend.create(
            config, BuildContext(SYSTEM_CLOCK, embedded, postgres), "vector_config")
        return index

    return factory


def create_vector_index(
    config: VectorConfig, *, postgres: PostgresConfig | None, embedded: EmbeddedConfig
) -> VectorIndex:
    """Build the index ``config.backend`` names (not connected yet).

    ``postgres`` is the facade's PostgreSQL connection, used by ``pgvector`` when
    ``config.postgres`` is not set; ``embedded`` locates the numpy index's default file.
    """
    if not isinstance(config, VectorConfig):
        raise ConfigurationError(f"vector_config: must be a VectorConfig, got "
                                 f"{type(config).__name__}")
    return resolve_vector_backend(config.backend)(config, postgres=postgres, embedded=embedded)


__all__ = [
    "ALIASES",
    "ENTRY_POINT_GROUP",
    "VectorBackendFactory",
    "available_vector_backends",
    "create_vector_index",
    "resolve_vector_backend",
]
