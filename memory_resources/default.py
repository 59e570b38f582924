"""The process-wide MemoryAPI (the spec's "Global API usage").

:func:`get_memory_api` returns one MemoryAPI per process, built on first use from the
environment, else the embedded default:

* ``MEMORY_RESOURCES_REDIS_URL``       — context, events and locks on this Redis URL
* ``MEMORY_RESOURCES_POSTGRES_DSN``    — history, outputs and audit on this PostgreSQL DSN
* ``MEMORY_RESOURCES_VECTOR_BACKEND``  — ``numpy`` (alias ``placeholder``) or ``pgvector``
* ``MEMORY_RESOURCES_VECTOR_DIMENSION`` — embedding dimension (default 768)
* ``MEMORY_RESOURCES_BACKENDS``        — JSON ``{role: {"backend": name, ...options}}``
  (any registered backend for any role, as ``MemoryAPI(backends=...)``)
* ``MEMORY_RESOURCES_HOME``            — folder of the embedded SQLite file

:func:`configure_memory_api` (from code) or :func:`set_memory_api` replace it; the API this
module built is disconnected at process exit.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import threading
from collections.abc import Mapping
from typing import Any

from .api import MemoryAPI
from .api_build import BackendsConfig
from .clock import SYSTEM_CLOCK, Clock
from .errors import ConfigurationError

ENV_REDIS_URL = "MEMORY_RESOURCES_REDIS_URL"
ENV_POSTGRES_DSN = "MEMORY_RESOURCES_POSTGRES_DSN"
ENV_VECTOR_BACKEND = "MEMORY_RESOURCES_VECTOR_BACKEND"
ENV_VECTOR_DIMENSION = "MEMORY_RESOURCES_VECTOR_DIMENSION"
ENV_BACKENDS = "MEMORY_RESOURCES_BACKENDS"

_lock = threading.RLock()
_current: MemoryAPI | None = None
_owned = False
"""True when this module built ``_current`` (so it closes it); False for set_memory_api."""
_atexit_registered = False


def configs_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The MemoryAPI keyword arguments the environment describes (empty: embedded default)."""
    env = os.environ if environ is None else environ
    kwargs: dict[str, Any] = {}
    if env.get(ENV_REDIS_URL):
        kwargs["redis_config"] = {"url": env[ENV_REDIS_URL]}
    if env.get(ENV_POSTGRES_DSN):
        kwargs["postgres_config"] = {"dsn": env[ENV_POSTGRES_DSN]}
    vector: dict[str, Any] = {}
    if env.get(ENV_VECTOR_BACKEND):
        vector["backend"] = env[ENV_VECTOR_BACKEND]
    if env.get(ENV_VECTOR_DIMENSION):
        raw = env[ENV_VECTOR_DIMENSION]
        try:
            vector["dimension"] = int(raw)
        except ValueError:
            raise ConfigurationError(
                f"{ENV_VECTOR_DIMENSION}: must be a whole number, got {raw!r}"
            ) from None
    if vector:
        kwargs["vector_config"] = vector
    if env.get(ENV_BACKENDS):
        kwargs["backends"] = _backends_from_env(env[ENV_BACKENDS])
    return kwargs


def _backends_from_env(raw: str) -> dict[str, Any]:
    try:
        backends = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"{ENV_BACKENDS}: must be JSON, e.g. '{{\"context\": {{\"backend\": "
            f"\"redis\", \"url\": \"redis://localhost:6379/0\"}}}}' ({exc.msg} at "
            f"position {exc.pos})") from None
    if not isinstance(backends, dict):
        raise ConfigurationError(
            f"{ENV_BACKENDS}: must be a JSON object {{role: {{\"backend\": name, ...}}}}")
    return backends


def _ensure_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(_close_at_exit)
        _atexit_registered = True


def _close_at_exit() -> None:
    with _lock:
        api, owned = _current, _owned
    if api is not None and owned:
        with contextlib.suppress(Exception):  # never fail interpreter shutdown
            api.disconnect()


def _replace(api: MemoryAPI | None, *, owned: bool) -> None:
    """Install ``api``; disconnect the previous one if this module built it."""
    global _current, _owned
    previous, previous_owned = _current, _owned
    _current, _owned = api, owned
    if previous is not None and previous_owned and previous is not api:
        previous.disconnect()


def get_memory_api() -> MemoryAPI:
    """The process-wide MemoryAPI, built once (thread-safe) from the environment."""
    api = _current
    if api is not None:
        return api
    with _lock:
        if _current is None:
            built = MemoryAPI(**configs_from_env())
            _replace(built, owned=True)
            _ensure_atexit()
        assert _current is not None
        return _current


def set_memory_api(api: MemoryAPI) -> MemoryAPI:
    """Make ``api`` the process-wide default. Its caller keeps owning it (closes it)."""
    if not isinstance(api, MemoryAPI):
        raise ConfigurationError(f"api: must be a MemoryAPI, got {type(api).__name__}")
    with _lock:
        _replace(api, owned=False)
    return api


def configure_memory_api(
    redis_config: dict[str, Any] | None = None,
    postgres_config: dict[str, Any] | None = None,
    vector_config: dict[str, Any] | None = None,
    *,
    embedded_config: dict[str, Any] | None = None,
    backends: BackendsConfig | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> MemoryAPI:
    """Build a MemoryAPI from these configs and make it the process-wide default."""
    api = MemoryAPI(redis_config, postgres_config, vector_config,
                    embedded_config=embedded_config, backends=backends, clock=clock)
    with _lock:
        _replace(api, owned=True)
        _ensure_atexit()
    return api


def reset_memory_api() -> None:
    """Forget the process-wide default (disconnecting it if this module built it); the
    next :func:`get_memory_api` builds a new one from the environment."""
    with _lock:
        _replace(None, owned=False)


__all__ = [
    "configs_from_env",
    "configure_memory_api",
    "get_memory_api",
    "reset_memory_api",
    "set_memory_api",
]
