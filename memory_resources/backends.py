"""Backends by name, for every role: one registry, one entry-point group.

A backend is a :class:`Backend`: the roles it can fill (``context``, ``events``, ``locks``,
``history``, ``outputs``, ``audit``, ``vectors``), how it validates its options and how it
builds a store (not yet connected). Built in (:mod:`memory_resources.backends_builtin`):
``sqlite`` (alias ``embedded``), ``redis``, ``postgres``, ``numpy`` (alias
``placeholder``) and ``pgvector``. Another package adds one without touching this library::

    # pyproject.toml of the third-party package
    [project.entry-points."memory_resources.backends"]
    mongo = "memory_mongo:BACKEND"        # a memory_resources.backends.Backend

and it is configured by name, e.g. ``MemoryAPI(backends={"context": {"backend": "mongo",
"url": ...}})``. An entry point cannot take a built-in name (the built-in is used, with a
warning). The older group ``memory_resources.vector_backends`` (a factory ``(config, *,
postgres, embedded)``) is still read as vectors-only backends; it is deprecated.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel

from .clock import Clock
from .config import EmbeddedConfig, PostgresConfig, VectorConfig, parse_config
from .errors import ConfigurationError

ROLES: tuple[str, ...] = ("context", "events", "locks", "history", "outputs", "audit",
                          "vectors")
"""The roles a MemoryAPI fills, in order."""
ENTRY_POINT_GROUP = "memory_resources.backends"
LEGACY_VECTOR_GROUP = "memory_resources.vector_backends"
"""Deprecated: vectors-only factories ``(config, *, postgres, embedded)``."""

OptionsParser = Callable[[Any, str], Any]
"""``(options, field) -> parsed options``; raises ConfigurationError naming ``field``."""
StoreFactory = Callable[[Any, "BuildContext"], Any]
"""``(parsed options, context) -> store`` (not yet connected)."""


@dataclasses.dataclass(frozen=True)
class BuildContext:
    """What a backend gets besides its own options."""

    clock: Clock
    """The facade's clock (TTLs, leases, timestamps)."""
    embedded: EmbeddedConfig
    """The embedded default's config (where its SQLite file lives)."""
    postgres: PostgresConfig | None = None
    """The facade's ``postgres_config``, if any (pgvector connects there by default)."""


@dataclasses.dataclass(frozen=True)
class Backend:
    """One backend: its name, the roles it can fill and how it builds a store.

    ``options`` validates the options given by configuration (everything but the
    ``backend`` key): a pydantic model (errors name the field) or a callable
    ``(options, field)`` raising :class:`~memory_resources.errors.ConfigurationError`;
    None: the backend takes no options. ``build`` returns the (not yet connected) store,
    which implements the Protocol of each role it fills (:mod:`memory_resources.protocols`).
    ``build_async``, when given, builds the store :class:`~memory_resources.AsyncMemoryAPI`
    uses (coroutine methods); without it the sync store runs on worker threads.
    """

    name: str
    roles: frozenset[str]
    build: StoreFactory
    options: type[BaseModel] | OptionsParser | None = None
    build_async: StoreFactory | None = None

    def __post_init__(self) -> None:
        roles = frozenset(self.roles)
        unknown = sorted(roles - set(ROLES))
        if not roles or unknown:
            raise ConfigurationError(
                f"backend {self.name!r}: roles must be some of {', '.join(ROLES)}, "
                f"got {sorted(roles)}")
        object.__setattr__(self, "roles", roles)

    def parse_options(self, options: Any, field: str) -> Any:
        """The validated options (ConfigurationError naming ``field`` when invalid)."""
        if self.options is None:
            if options:
                raise ConfigurationError(
                    f"{field}: the {self.name!r} backend takes no options, got "
                    f"{sorted(options)}")
            return None
        parser = self.options
        if isinstance(parser, type):  # a pydantic model
            return parse_config(parser, options, field)
        return parser(options, field)

    def create(self, options: Any, context: BuildContext, field: str) -> Any:
        """Validate ``options`` and build the store (a missing package is named)."""
        parsed = self.parse_options(options, field)
        try:
            return self.build(parsed, context)
        except ModuleNotFoundError as exc:
            raise missing_package(field, self.name, exc) from None


def normalize(name: Any, field: str) -> str:
    """A backend name as the registry keys it (stripped, lower case)."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"{field}['backend']: must be a backend name, got {name!r}")
    return name.strip().lower()


def _label(role: str) -> str:
    return "vector" if role == "vectors" else role


def _points(group: str) -> dict[str, importlib.metadata.EntryPoint]:
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for point in importlib.metadata.entry_points(group=group):
        found.setdefault(point.name.strip().lower(), point)
    return found


def _builtin_names() -> set[str]:
    """The names an entry point cannot take: built-ins and their aliases."""
    from .backends_builtin import ALIASES, BUILTIN

    return set(BUILTIN) | set(ALIASES)


def _third_party() -> dict[str, tuple[str, importlib.metadata.EntryPoint]]:
    """Entry points by name (group, point); the new group wins; built-in names skipped."""
    taken = _builtin_names()
    points = {name: (LEGACY_VECTOR_GROUP, p) for name, p in _points(LEGACY_VECTOR_GROUP).items()}
    points.update((name, (ENTRY_POINT_GROUP, p)) for name, p in
                  _points(ENTRY_POINT_GROUP).items())
    return {name: entry for name, entry in points.items() if name not in taken}


DISTRIBUTION = "memory-resources"
"""This package's distribution name: its own entry points declare the built-ins."""


@functools.cache
def _shadowing() -> dict[str, str]:
    """Built-in names that another distribution registers too: name -> its entry point."""
    taken = _builtin_names()
    found: dict[str, str] = {}
    for group in (LEGACY_VECTOR_GROUP, ENTRY_POINT_GROUP):
        for point in importlib.metadata.entry_points(group=group):
            name = point.name.strip().lower()
            owner = point.dist.name if point.dist is not None else "?"
            if name in taken and owner.replace("_", "-").lower() != DISTRIBUTION:
                found[name] = f"{point.value} ({owner})"
    return found


def _builtin(key: str, field: str) -> Backend | None:
    """The built-in ``key``; the first time a third-party entry point also takes the
    name, a warning says that one is ignored."""
    from .backends_builtin import BUILTIN

    backend = BUILTIN.get(key)
    shadow = _shadowing().pop(key, None) if backend is not None else None
    if shadow is not None:
        warnings.warn(
            f"{field}: the entry point {key!r} = {shadow} is ignored: {key!r} names the "
            f"built-in backend; register yours under another name", UserWarning,
            stacklevel=3)
    return backend


def _load(name: str, group: str, point: importlib.metadata.EntryPoint, field: str) -> Backend:
    try:
        loaded = point.load()
    except ModuleNotFoundError as exc:
        raise missing_package(field, name, exc) from None
    except Exception as exc:
        raise ConfigurationError(
            f"{field}['backend']: the {name!r} backend ({point.value}) failed to load: "
            f"{type(exc).__name__}: {exc}") from exc
    if group == LEGACY_VECTOR_GROUP:
        if not callable(loaded):
            raise ConfigurationError(
                f"{field}['backend']: entry point {point.value!r} of {name!r} is not callable")
        warnings.warn(
            f"vector backend {name!r} is registered in the deprecated entry-point group "
            f"{LEGACY_VECTOR_GROUP!r}; register a memory_resources.backends.Backend in "
            f"{ENTRY_POINT_GROUP!r}", DeprecationWarning, stacklevel=2)
        return legacy_vector_backend(name, loaded)
    if not isinstance(loaded, Backend):
        raise ConfigurationError(
            f"{field}['backend']: entry point {point.value!r} of {name!r} is not a "
            f"memory_resources.backends.Backend (got {type(loaded).__name__})")
    return loaded


def missing_package(field: str, name: str, exc: ModuleNotFoundError) -> ConfigurationError:
    """The error of a backend whose module or Python package (``exc.name``) is missing."""
    missing = exc.name or "?"
    if missing.partition(".")[0] == __name__.partition(".")[0]:
        return ConfigurationError(
            f"{field}: the {name!r} backend is not available in this installation "
            f"(module {missing} not found)")
    package = missing.partition(".")[0]  # `redis.client` missing means `redis`
    return ConfigurationError(
        f"{field}: the {name!r} backend needs the Python package {package!r}, which is not "
        f"installed")


def legacy_vector_backend(name: str, factory: Callable[..., Any]) -> Backend:
    """A factory of the deprecated vector group as a vectors-only :class:`Backend`."""
    def options(value: Any, field: str) -> VectorConfig:
        return vector_options(value, field, name)

    def build(config: VectorConfig, context: BuildContext) -> Any:
        return factory(config, postgres=context.postgres, embedded=context.embedded)

    return Backend(name, frozenset({"vectors"}), build, options)


def vector_options(value: Any, field: str, backend: str) -> VectorConfig:
    """``vector_config`` keys as a :class:`VectorConfig` whose ``backend`` is ``backend``."""
    if isinstance(value, VectorConfig):
        return value
    if isinstance(value, Mapping):
        value = {**value, "backend": backend}
    parsed: VectorConfig = parse_config(VectorConfig, value, field)
    return parsed


def _candidates() -> Iterator[tuple[str, Backend | None]]:
    """Every registered name with its backend (None when it does not load)."""
    from .backends_builtin import ALIASES, BUILTIN

    yield from BUILTIN.items()
    yield from ((alias, BUILTIN[target]) for alias, target in ALIASES.items())
    for name, (group, point) in _third_party().items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                yield name, _load(name, group, point, "backends")
        except ConfigurationError:
            yield name, None


def available_backends(role: str | None = None) -> list[str]:
    """The names that resolve (built-ins, aliases, installed entry points), sorted; with
    ``role``, only the backends that can fill it."""
    return sorted(name for name, backend in _candidates()
                  if backend is not None and (role is None or role in backend.roles))


def resolve_backend(name: str, role: str, field: str = "backends") -> Backend:
    """The backend registered as ``name`` that fills ``role``.

    ConfigurationError naming ``field`` when the name is unknown (listing the known
    names for that role), its entry point does not load (a missing package is named)
    or it cannot fill ``role``."""
    from .backends_builtin import ALIASES

    if role not in ROLES:
        raise ConfigurationError(f"{field}: unknown role {role!r}; roles: {', '.join(ROLES)}")
    key = normalize(name, field)
    key = ALIASES.get(key, key)
    backend = _builtin(key, field)
    if backend is None:
        entry = _third_party().get(key)
        if entry is None:
            raise ConfigurationError(
                f"{field}['backend']: unknown {_label(role)} backend {name!r}; known: "
                f"{', '.join(available_backends(role))} (third-party backends register "
                f"the entry point group {ENTRY_POINT_GROUP!r})")
        backend = _load(key, entry[0], entry[1], field)
    if role not in backend.roles:
        raise ConfigurationError(
            f"{field}['backend']: the {name!r} backend cannot fill the {role} role (it "
            f"fills {', '.join(r for r in ROLES if r in backend.roles)})")
    return backend


__all__ = [
    "ENTRY_POINT_GROUP",
    "LEGACY_VECTOR_GROUP",
    "ROLES",
    "Backend",
    "BuildContext",
    "OptionsParser",
    "StoreFactory",
    "available_backends",
    "legacy_vector_backend",
    "missing_package",
    "resolve_backend",
    "vector_options",
]
