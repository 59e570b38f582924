"""Build the stores a :class:`~memory_resources.api.MemoryAPI` composes from config dicts.

Each role is given a backend by name and its options — the spec's keys
(``redis_config`` fills context, events and locks with ``redis``; ``postgres_config``
history, outputs and audit with ``postgres``; ``vector_config["backend"]`` the vectors),
then ``backends={role: {"backend": name, ...options}}`` for any role, else the embedded
default (``sqlite``) — and every name resolves through the one registry
(:mod:`memory_resources.backends`). Every option is validated before any store is built;
roles given the same backend with equal options share one store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from .backends import ROLES, Backend, BuildContext, missing_package, resolve_backend
from .clock import Clock
from .config import EmbeddedConfig, PostgresConfig, parse_config
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
"""The spec's adapter names (keys of ``health_check()["adapters"]``) and the roles of each,
whichever backend fills them."""

BackendsConfig = Mapping[str, "Mapping[str, Any] | str"]
"""``{role: {"backend": name, ...options}}`` (or ``{role: name}`` when it takes none)."""


@dataclasses.dataclass
class Composition:
    """The store filling each role (checked against the role's Protocol when built), and
    the stores the MemoryAPI owns (closes)."""

    roles: dict[str, Any]
    owned: list[object]


@dataclasses.dataclass
class _Spec:
    """One role's backend: name, raw options (None: the embedded config) and field."""

    name: str
    options: Any
    field: str


def parse_embedded(value: Any) -> EmbeddedConfig:
    """``None`` (defaults), a dict or an :class:`EmbeddedConfig`."""
    if value is None:
        return EmbeddedConfig.model_validate({})
    parsed: EmbeddedConfig = parse_config(EmbeddedConfig, value, "embedded_config")
    return parsed


def _vector_spec(vector_config: Any) -> _Spec:
    """``vector_config``: a dict (its ``backend`` names the backend) or a VectorConfig."""
    if vector_config is None:
        return _Spec("placeholder", {}, "vector_config")
    if isinstance(vector_config, Mapping):
        options = {k: v for k, v in vector_config.items() if k != "backend"}
        return _Spec(vector_config.get("backend", "placeholder"), options, "vector_config")
    backend = getattr(vector_config, "backend", None)
    if not isinstance(backend, str):
        raise ConfigurationError(
            f"vector_config: must be a dict, got {type(vector_config).__name__}")
    return _Spec(backend, vector_config, "vector_config")


def backend_specs(backends: BackendsConfig | None) -> dict[str, _Spec]:
    """``backends={role: {"backend": name, ...}}`` as one spec per role."""
    if backends is None:
        return {}
    if not isinstance(backends, Mapping):
        raise ConfigurationError(
            "backends: must be a dict {role: {'backend': name, ...options}}, got "
            f"{type(backends).__name__}")
    specs: dict[str, _Spec] = {}
    for role, value in backends.items():
        field = f"backends[{role!r}]"
        if role not in ROLES:
            raise ConfigurationError(f"{field}: unknown role; roles: {', '.join(ROLES)}")
        if isinstance(value, str):
            specs[role] = _Spec(value, {}, field)
            continue
        if not isinstance(value, Mapping) or "backend" not in value:
            raise ConfigurationError(
                f"{field}: must be a dict with a 'backend' name and its options, e.g. "
                "{'backend': 'redis', 'url': 'redis://localhost:6379/0'}")
        options = {k: v for k, v in value.items() if k != "backend"}
        specs[role] = _Spec(value["backend"], options, field)
    return specs


def role_specs(redis_config: Any, postgres_config: Any, vector_config: Any,
               backends: BackendsConfig | None) -> dict[str, _Spec]:
    """Which backend fills each role: the seed's keys, then ``backends`` (per role, it
    wins), else the embedded default."""
    specs = {role: _Spec("sqlite", None, "embedded_config") for role in ROLES}
    if redis_config is not None:
        specs.update((role, _Spec("redis", redis_config, "redis_config"))
                     for role in ADAPTER_ROLES["redis"])
    if postgres_config is not None:
        specs.update((role, _Spec("postgres", postgres_config, "postgres_config"))
                     for role in ADAPTER_ROLES["postgres"])
    specs["vectors"] = _vector_spec(vector_config)
    specs.update(backend_specs(backends))
    return specs


class _Builder:
    """Resolves and validates every spec first, then builds one store per distinct
    (backend, options)."""

    def __init__(self, embedded: EmbeddedConfig, clock: Clock, asynchronous: bool) -> None:
        self.embedded = embedded
        self.clock = clock
        self.asynchronous = asynchronous
        self.parsed: dict[int, tuple[Backend, Any]] = {}

    def resolve(self, role: str, spec: _Spec) -> tuple[Backend, Any]:
        backend = resolve_backend(spec.name, role, spec.field)
        key = id(spec.options) if spec.options is not None else 0
        found = self.parsed.get(key)
        if found is not None and found[0] is backend:
            return found
        if spec.options is None or (backend.name == "sqlite" and spec.options == {}):
            options: Any = self.embedded
        else:
            options = backend.parse_options(spec.options, spec.field)
        if spec.options is not None:
            self.parsed[key] = (backend, options)
        return backend, options

    def build(self, chosen: Mapping[str, tuple[Backend, Any, str]],
              postgres: PostgresConfig | None) -> tuple[dict[str, Any], list[object]]:
        """The store of each chosen role, and the distinct stores built."""
        context = BuildContext(self.clock, self.embedded, postgres)
        built: list[tuple[Backend, Any, object]] = []
        roles: dict[str, Any] = {}
        for role, (backend, options, field) in chosen.items():
            store = next((s for b, o, s in built if b is backend and o == options), None)
            if store is None:
                factory = backend.build_async if self.asynchronous else None
                try:
                    store = (factory or backend.build)(options, context)
                except ModuleNotFoundError as exc:
                    raise missing_package(field, backend.name, exc) from None
                built.append((backend, options, store))
            roles[role] = store
        return roles, [store for _, _, store in built]


def _compose(specs: Mapping[str, _Spec], embedded_config: Any, clock: Clock,
             postgres_config: Any = None, asynchronous: bool = False
             ) -> tuple[dict[str, Any], list[object]]:
    builder = _Builder(parse_embedded(embedded_config), clock, asynchronous)
    chosen = {role: (*builder.resolve(role, spec), spec.field) for role, spec in specs.items()}
    postgres: PostgresConfig | None = None
    if postgres_config is not None:
        postgres = parse_config(PostgresConfig, postgres_config, "postgres_config")
    else:  # e.g. backends={"history": {"backend": "postgres", ...}}: pgvector's default
        postgres = next((options for backend, options, _ in chosen.values()
                         if backend.name == "postgres"), None)
    return builder.build(chosen, postgres)


def compose_from_configs(
    redis_config: Any,
    postgres_config: Any,
    vector_config: Any,
    embedded_config: Any,
    clock: Clock,
    backends: BackendsConfig | None = None,
    *,
    asynchronous: bool = False,
) -> Composition:
    """Validate every config first, then build the stores (none connected yet).

    ``asynchronous``: use a backend's ``build_async`` where it has one (AsyncMemoryAPI)."""
    specs = role_specs(redis_config, postgres_config, vector_config, backends)
    roles, owned = _compose(specs, embedded_config, clock, postgres_config, asynchronous)
    check_roles(roles)
    return Composition(roles=roles, owned=owned)


def compose_from_stores(
    given: Mapping[str, object | None],
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
    roles: dict[str, Any] = {role: store for role, store in given.items() if store is not None}
    owned: list[object] = distinct(roles.values()) if owns_stores else []
    defaults = role_specs(None, None, vector_config, None)
    missing = {role: spec for role, spec in defaults.items() if role not in roles}
    if missing:
        filled, built = _compose(missing, embedded_config, clock)
        roles.update(filled)
        owned.extend(built)
    check_roles(roles)
    return Composition(roles={role: roles[role] for role in ROLES}, owned=owned)


def check_roles(roles: Mapping[str, object]) -> None:
    """Every role's store must implement that role's Protocol (by method names: an async
    store built by a backend's ``build_async`` passes too)."""
    for role, protocol in ROLE_PROTOCOLS.items():
        store = roles.get(role)
        if store is None or not isinstance(store, protocol):
            raise ConfigurationError(
                f"{role}: {type(store).__name__} does not implement {protocol.__name__}")


def distinct(stores: Iterable[object]) -> list[object]:
    """``stores`` without repeats (by identity), in order."""
    seen: dict[int, object] = {}
    for store in stores:
        seen.setdefault(id(store), store)
    return list(seen.values())


def distinct_stores(roles: Mapping[str, Any], names: tuple[str, ...] | None = None
                    ) -> list[Any]:
    """The distinct store objects serving ``names`` (default: every role), in role order."""
    return distinct(roles[name] for name in (names or tuple(ROLE_PROTOCOLS)))
