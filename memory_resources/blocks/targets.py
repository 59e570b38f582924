"""Rebuild the store an outbox target's records go to (the resolver ``outbox replay`` uses).

The capture package replays records through a resolver it is given, so it never imports
the blocks; this is the blocks' resolver.
"""

from __future__ import annotations

from typing import Any

from ..capture.outbox import OutboxTarget
from ..errors import ConfigurationError
from .postgres import PostgresMemory
from .redis import RedisMemory
from .store import MemoryStore
from .vector import VectorMemory


def memory_store_from_target_config(config: dict[str, Any]) -> MemoryStore:
    """Rebuild a secret-free MemoryStore from the config an outbox target recorded."""
    backends = config.get("backends") or {}
    kwargs = {k: v for k, v in config.items() if k != "backends"}
    try:
        if backends.get("redis"):
            kwargs["redis"] = RedisMemory.model_validate(backends["redis"])
        if backends.get("postgres"):
            kwargs["postgres"] = PostgresMemory.model_validate(backends["postgres"])
        if backends.get("vector"):
            kwargs["vector"] = VectorMemory.model_validate(backends["vector"])
        if backends.get("backends"):  # other backends by role, MemoryStore.backends
            kwargs["backends"] = backends["backends"]
        if backends.get("embedded") and backends["embedded"].get("path"):
            kwargs["embedded_path"] = backends["embedded"]["path"]
        return MemoryStore(**kwargs)
    except Exception as exc:
        raise ConfigurationError(f"outbox target config cannot be rebuilt: {exc}") from exc


def memory_store_for_target(target: OutboxTarget) -> MemoryStore:
    """The store an outbox target's records go to (the resolver of ``replay_outbox``):
    the saved block it was captured with (loaded by name from the Prefect API), else the
    secret-free configuration recorded with the target (e.g. the embedded default)."""
    if target.block_name:
        loader: Any = MemoryStore.load  # async_dispatch: _sync=True forces the sync path
        return loader(target.block_name, _sync=True)  # type: ignore[no-any-return]
    if target.config is not None:
        return memory_store_from_target_config(target.config)
    raise ConfigurationError(
        f"outbox target {target.label!r} was captured with a configuration holding secrets "
        "and no saved block: replay it with --block NAME"
    )


__all__ = ["memory_store_for_target", "memory_store_from_target_config"]
