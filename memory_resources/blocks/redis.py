"""The ``RedisMemory`` Prefect block: Redis configuration plus a pooled store factory."""

from __future__ import annotations

from typing import ClassVar

from prefect.filesystems import WritableFileSystem
from pydantic import HttpUrl

from ..config import RedisConfig
from ..stores.redis import RedisStore
from . import form
from .base import DeploySafeLoad, StoreFactoryMixin
from .form import FormLayout
from .results import ResultStorageMixin


# read_path/write_path are sync here (Prefect calls them with _sync=True; the a* forms
# are async), where WritableFileSystem declares them async: hence the ignore.
class RedisMemory(  # type: ignore[misc]
    FormLayout, DeploySafeLoad, StoreFactoryMixin[RedisStore], ResultStorageMixin,
    WritableFileSystem, RedisConfig,
):
    """Agent context, event streams and Redlock locks on Redis, Redis Cluster or Sentinel.

    The fields are the spec's ``redis_config`` keys (host, port, db, password,
    connection_timeout, socket_timeout, max_connections, key_prefix) plus url (a
    ``sentinel://`` URL follows Redis Sentinel fail-overs), ACL username,
    TLS, default_ttl, cluster, lock_nodes (extra independent masters for the Redlock
    quorum), retry and payload limits. One connection pool is kept per block instance
    (built on first use, dropped when the block is pickled).

    Examples:
        Load a saved block and use its store:
        ```python
        from memory_resources.blocks.redis import RedisMemory

        redis_memory = RedisMemory.load("BLOCK_NAME")
        store = redis_memory.get_store()
        store.set_context("session-1", {"user_id": "u1"}, ttl=3600)
        print(store.get_context("session-1")["data"])
        ```
    """

    _block_type_name: ClassVar[str] = "Redis Memory"
    _block_type_slug: ClassVar[str] = "redis-memory"
    _logo_url = HttpUrl(  # the logo Prefect's own Redis block uses, commit-pinned
        "https://raw.githubusercontent.com/PrefectHQ/prefect/"
        "420d0d6a78bb6df1fc18bcf188fdad43c1d22ea9/assets/block-logos/redis.png"
    )
    _documentation_url = HttpUrl(
        "https://github.com/memory-resources/memory-resources/blob/main/docs/redis.md"
    )
    _description: ClassVar[str] = (
        "Durable agent memory on Redis: context with TTL, event streams and "
        "Redlock locks with fencing tokens."
    )
    _form = form.REDIS

    def to_config(self) -> RedisConfig:
        """The plain :class:`RedisConfig` this block carries (same fields, same values)."""
        return RedisConfig.model_validate(
            {name: getattr(self, name) for name in RedisConfig.model_fields}
        )

    def _build_store(self) -> RedisStore:
        return RedisStore(self.to_config())
