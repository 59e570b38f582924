"""Vector backends by name: ``vector_config["backend"]`` -> a :class:`VectorIndex`.

Built in: ``numpy`` (exact, in process; ``placeholder``, the spec's name, is an alias) and
``pgvector``. Other packages add backends (a Pinecone, Weaviate or Qdrant adapter) without
touching this library, through the entry-point group ``memory_resources.vector_backends``::

    # pyproject.toml of the third-party package
    [project.entry-points."memory_resources.vector_backends"]
    qdrant = "memory_qdrant:create_index"

where ``create_index(config, *, postgres, embedded)`` has the signature of
:class:`VectorBackendFactory` and returns an object implementing ``VectorIndex`` and
``Lifecycle``; it should pass the contract kit: define a ``memory_vector_index`` fixture
and run ``pytest -p memory_resources.testing`` (docs/extending.md). A built-in name
cannot be shadowed by an entry point.
"""

from __future__ import annotations

import importlib.metadata
from typing import Protocol

from .config import EmbeddedConfig, PostgresConfig, VectorConfig
from .errors import ConfigurationError
from .protocols import VectorIndex

ENTRY_POINT_GROUP = "memory_resources.vector_backends"
ALIASES: dict[str, str] = {"placeholder": "numpy"}
"""Alternative names: the spec's ``placeholder`` is the exact numpy index."""


class VectorBackendFactory(Protocol):
    """Builds a (not yet connected) vector index from the configuration."""

    def __call__(
        self, config: VectorConfig, *, postgres: PostgresConfig | None, embedded: EmbeddedConfig
    ) -> VectorIndex: ...


def _numpy(
    config: VectorConfig, *, postgres: PostgresConfig | None, embedded: EmbeddedConfig
) -> VectorIndex:
    from .stores.numpy_index import NumpyVectorIndex

    index: VectorIndex = NumpyVectorIndex.from_config(config, embedded)
    return index


def _pgvector(
    config: VectorConfig, *, postgres: PostgresConfig | None, embedded: EmbeddedConfig
) -> VectorIndex:
    from .stores.pgvector import PgVectorIndex

    connection = config.postgres or postgres
    if connection is not None and type(connection) is not PostgresConfig:
        # e.g. a nested PostgresMemory block: the store gets the plain config, not the block
        connection = PostgresConfig.model_validate(
            {name: getattr(connection, name) for name in PostgresConfig.model_fields})
    return PgVectorIndex.from_config(config, connection)


BUILTIN: dict[str, VectorBackendFactory] = {"numpy": _numpy, "pgvector": _pgvector}


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return {point.name: point for point in found if point.name not in BUILTIN}


def available_vector_backends() -> list[str]:
    """Every backend name that resolves: built-ins, aliases and installed entry points."""
    return sorted({*BUILTIN, *ALIASES, *_entry_points()})


def resolve_vector_backend(name: str) -> VectorBackendFactory:
    """The factory of backend ``name``; ConfigurationError listing the known names if none."""
    key = name.strip().lower()
    canonical = ALIASES.get(key, key)
    if canonical in BUILTIN:
        return BUILTIN[canonical]
    point = _entry_points().get(canonical)
    if point is None:
        raise ConfigurationError(
            f"vector_config['backend']: unknown vector backend {name!r}; known: "
            f"{', '.join(available_vector_backends())} (third-party backends register the "
            f"entry point group {ENTRY_POINT_GROUP!r})"
        )
    try:
        factory = point.load()
    except Exception as exc:
        raise ConfigurationError(
            f"vector_config['backend']: the {name!r} vector backend ({point.value}) failed to "
            f"load: {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(factory):
        raise ConfigurationError(
            f"vector_config['backend']: entry point {point.value!r} of {name!r} is not callable"
        )
    resolved: VectorBackendFactory = factory
    return resolved


def create_vector_index(
    config: VectorConfig, *, postgres: PostgresConfig | None, embedded: EmbeddedConfig
) -> VectorIndex:
    """Build the index ``config.backend`` names (not connected yet).

    ``postgres`` is the facade's PostgreSQL connection, used by ``pgvector`` when
    ``config.postgres`` is not set; ``embedded`` locates the numpy index's default file.
    """
    factory = resolve_vector_backend(config.backend)
    return factory(config, postgres=postgres, embedded=embedded)


__all__ = [
    "ALIASES",
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "VectorBackendFactory",
    "available_vector_backends",
    "create_vector_index",
    "resolve_vector_backend",
]
