"""The built-in backends, registered like any other (:mod:`memory_resources.backends`).

Each store module is imported when its backend builds a store, so ``import
memory_resources`` stays cheap. pyproject.toml declares them in the
``memory_resources.backends`` entry-point group too (for discovery); the registry reads
them from here, so they resolve whether or not the package metadata is installed.
"""

from __future__ import annotations

from typing import Any

from .backends import Backend, BuildContext, vector_options
from .config import EmbeddedConfig, PostgresConfig, RedisConfig, VectorConfig
from .errors import ConfigurationError

_STORE_ROLES = frozenset({"context", "events", "locks", "history", "outputs", "audit"})


def _sqlite(config: EmbeddedConfig, context: BuildContext) -> Any:
    from .stores.sqlite import SQLiteStore

    return SQLiteStore(config, clock=context.clock)


def _redis(config: RedisConfig, context: BuildContext) -> Any:
    from .stores.redis import RedisStore

    return RedisStore(config, clock=context.clock)


def _postgres(config: PostgresConfig, context: BuildContext) -> Any:
    from .stores.postgres import PostgresStore

    return PostgresStore(config, clock=context.clock)


def _numpy_options(value: Any, field: str) -> VectorConfig:
    return vector_options(value, field, "numpy")


def _numpy(config: VectorConfig, context: BuildContext) -> Any:
    from .stores.numpy_index import NumpyVectorIndex

    return NumpyVectorIndex.from_config(config, context.embedded)


def _pgvector_options(value: Any, field: str) -> VectorConfig:
    return vector_options(value, field, "pgvector")


def _pgvector(config: VectorConfig, context: BuildContext) -> Any:
    connection = config.postgres or context.postgres
    if connection is None:
        raise ConfigurationError(
            "vector_config['backend']: 'pgvector' needs a PostgreSQL connection "
            "(give postgres_config or vector_config['postgres'])")
    from .stores.pgvector import PgVectorIndex

    return PgVectorIndex.from_config(config, connection)


def _usearch_options(value: Any, field: str) -> VectorConfig:
    return vector_options(value, field, "usearch")


def _usearch(config: VectorConfig, context: BuildContext) -> Any:
    from .stores.usearch_index import UsearchVectorIndex

    return UsearchVectorIndex.from_config(config, context.embedded)


SQLITE = Backend("sqlite", _STORE_ROLES, _sqlite, EmbeddedConfig)
"""The embedded SQLite file (alias ``embedded``): every role but vectors."""
REDIS = Backend("redis", frozenset({"context", "events", "locks"}), _redis, RedisConfig)
"""Redis: context, events and locks (Redlock over ``lock_nodes``)."""
POSTGRES = Backend("postgres", _STORE_ROLES, _postgres, PostgresConfig)
"""PostgreSQL: every role but vectors (the spec puts history, outputs and audit there)."""
NUMPY = Backend("numpy", frozenset({"vectors"}), _numpy, _numpy_options)
"""The exact in-process numpy index (alias ``placeholder``, the spec's name)."""
PGVECTOR = Backend("pgvector", frozenset({"vectors"}), _pgvector, _pgvector_options)
"""pgvector (HNSW) in PostgreSQL."""
USEARCH = Backend("usearch", frozenset({"vectors"}), _usearch, _usearch_options)
"""usearch (HNSW, in process; the ``usearch`` extra)."""

BUILTIN: dict[str, Backend] = {
    b.name: b for b in (SQLITE, REDIS, POSTGRES, NUMPY, PGVECTOR, USEARCH)}
"""The built-in backends by name; an entry point cannot take one of these names."""
ALIASES: dict[str, str] = {"embedded": "sqlite", "placeholder": "numpy"}
"""Other names of built-ins: the spec's ``placeholder`` is the exact numpy index."""

__all__ = ["ALIASES", "BUILTIN", "NUMPY", "PGVECTOR", "POSTGRES", "REDIS", "SQLITE", "USEARCH"]
