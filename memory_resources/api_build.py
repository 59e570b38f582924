"""Build the stores a :class:`~memory_resources.api.MemoryAPI` composes from config dicts.

Backend modules are imported here, lazily, only when their config is given (``import
memory_resources`` stays cheap). A backend whose module is not installed raises
:class:`~memory_resources.errors.ConfigurationError` saying so.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from .clock import Clock
from .config import EmbeddedConfig, PostgresConfig, RedisConfig, VectorConfig, parse_config
from .errors import ConfigurationError
from .protocols import (
    AuditLog,
    ContextStore,
    EventLog,
    LockManager,
    RunHistory,
    TaskOutputs,
    VectorIndex,
)

ROLE_PROTOCOLS: dict[str, type] = {
    "context": ContextStore,
    "events": EventLog,
    "locks": LockManager,
    "history": RunHistory,
    "outputs": TaskOutputs,
    "audit": AuditLog,
    "vectors": VectorIndex,
}
"""The seven roles a MemoryAPI fills, and the Protocol each role's store implements."""

ADAPTER_ROLES: dict[str, tuple[str, ...]] = {
    "redis": ("context", "events", "locks"),
    "postgres": ("history", "outputs", "audit"),
    "vector": ("vectors",),
}
"""The spec's adapter names (keys of ``health_check()["adapters"]``) and the roles of each."""

@dataclasses.dataclass
class Composition:
    """The stores filling each role, and which of them the MemoryAPI owns (closes)."""

    roles: dict[str, Any]
    owned: list[Any]


def _import_backend(module: str, what: str, config_arg: str) -> Any:
    """Import ``module`` or raise ConfigurationError saying the backend is not available."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or module
        if missing == module or module.startswith(missing + "."):
            raise ConfigurationError(
                f"{config_arg}: the {what} backend is not available in this installation "
                f"(module {module} not found)"
            ) from None
        package = missing.partition(".")[0]  # `redis.client` missing means `redis` is
        raise ConfigurationError(
            f"{config_arg}: the {what} backend needs the Python package {package!r}, "
            f"which is not installed"
        ) from None


def _backend_class(module: str, name: str, what: str, config_arg: str) -> Any:
    mod = _import_backend(module, what, config_arg)
    cls = getattr(mod, name, None)
    if cls is None:
        raise ConfigurationError(
            f"{config_arg}: the {what} backend is not available in this installation "
            f"({module}.{name} not found)"
        )
    return cls


def build_sqlite(embedded: EmbeddedConfig, clock: Clock) -> Any:
    """The embedded SQLite store (not connected yet)."""
    cls = _backend_class(
        "memory_resources.stores.sqlite", "SQLiteStore", "embedded SQLite", "embedded_config"
    )
    return cls(embedded, clock=clock)


def build_redis(config: RedisConfig, clock: Clock) -> Any:
    """The Redis store (not connected yet)."""
    cls = _backend_class("memory_resources.stores.redis", "RedisStore", "Redis", "redis_config")
    return cls(config, clock=clock)


def build_postgres(config: PostgresConfig, clock: Clock) -> Any:
    """The PostgreSQL store (not connected yet)."""
    cls = _backend_class(
        "memory_resources.stores.postgres", "PostgresStore", "PostgreSQL", "postgres_config"
    )
    return cls(config, clock=clock)


def build_vectors(
    config: VectorConfig, *, postgres: PostgresConfig | None, embedded: EmbeddedConfig
) -> Any:
    """The vector index named by ``config.backend``.

    Resolved by the backend registry (:mod:`memory_resources.vector_backends`): built-ins,
    aliases and installed entry points.
    """
    backend = config.backend.strip().lower()
    if backend == "pgvector" and postgres is None and config.postgres is None:
        raise ConfigurationError(
            "vector_config['backend']: 'pgvector' needs a PostgreSQL connection "
            "(give postgres_config or vector_config['postgres'])"
        )
    from .vector_backends import create_vector_index

    return create_vector_index(config, postgres=postgres, embedded=embedded)


def parse_embedded(value: Any) -> EmbeddedConfig:
    """``None`` (defaults), a dict or an :class:`EmbeddedConfig`."""
    if value is None:
        return EmbeddedConfig.model_validate({})
    parsed: EmbeddedConfig = parse_config(EmbeddedConfig, value, "embedded_config")
    return parsed


def compose_from_configs(
    redis_config: Any,
    postgres_config: Any,
    vector_config: Any,
    embedded_config: Any,
    clock: Clock,
) -> Composition:
    """Validate every config first, then build the stores (none connected yet)."""
    redis = None if redis_config is None else parse_config(RedisConfig, redis_config,
                                                           "redis_config")
    postgres = None if postgres_config is None else parse_config(
        PostgresConfig, postgres_config, "postgres_config")
    vector = parse_config(VectorConfig, {} if vector_config is None else vector_config,
                          "vector_config")
    embedded = parse_embedded(embedded_config)

    owned: list[Any] = []
    sqlite: list[Any] = []

    def embedded_store() -> Any:
        if not sqlite:
            sqlite.append(build_sqlite(embedded, clock))
            owned.append(sqlite[0])
        return sqlite[0]

    if redis is not None:
        fast = build_redis(redis, clock)
        owned.append(fast)
    else:
        fast = embedded_store()
    if postgres is not None:
        durable = build_postgres(postgres, clock)
        owned.append(durable)
    else:
        durable = embedded_store()
    vectors = build_vectors(vector, postgres=postgres, embedded=embedded)
    owned.append(vectors)
    roles = {
        "context": fast, "events": fast, "locks": fast,
        "history": durable, "outputs": durable, "audit": durable,
        "vectors": vectors,
    }
    check_roles(roles)
    return Composition(roles=roles, owned=owned)


def compose_from_stores(
    given: dict[str, Any],
    *,
    embedded_config: Any,
    vector_config: Any,
    clock: Clock,
    owns_stores: bool,
) -> Composition:
    """Fill the roles missing from ``given`` with the embedded default."""
    unknown = set(given) - set(ROLE_PROTOCOLS)
    if unknown:
        raise ConfigurationError(f"unknown store roles: {sorted(unknown)}")
    embedded = parse_embedded(embedded_config)
    roles = {role: store for role, store in given.items() if store is not None}
    owned: list[Any] = list(_distinct(roles.values())) if owns_stores else []
    sql_roles = [r for r in ROLE_PROTOCOLS if r != "vectors" and r not in roles]
    if sql_roles:
        sqlite = build_sqlite(embedded, clock)
        owned.append(sqlite)
        for role in sql_roles:
            roles[role] = sqlite
    if "vectors" not in roles:
        vector = parse_config(VectorConfig, {} if vector_config is None else vector_config,
                              "vector_config")
        roles["vectors"] = build_vectors(vector, postgres=None, embedded=embedded)
        owned.append(roles["vectors"])
    check_roles(roles)
    return Composition(roles=roles, owned=owned)


def check_roles(roles: dict[str, Any]) -> None:
    """Every role's store must implement that role's Protocol."""
    for role, protocol in ROLE_PROTOCOLS.items():
        store = roles.get(role)
        if store is None or not isinstance(store, protocol):
            raise ConfigurationError(
                f"{role}: {type(store).__name__} does not implement {protocol.__name__}"
            )


def _distinct(stores: Any) -> list[Any]:
    seen: dict[int, Any] = {}
    for store in stores:
        seen.setdefault(id(store), store)
    return list(seen.values())


def distinct_stores(roles: dict[str, Any], names: tuple[str, ...] | None = None) -> list[Any]:
    """The distinct store objects serving ``names`` (default: every role), in role order."""
    return _distinct(roles[name] for name in (names or tuple(ROLE_PROTOCOLS)))
