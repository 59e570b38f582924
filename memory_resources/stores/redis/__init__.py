"""The Redis backend: context, event streams and Redlock locks (no Prefect import).

``RedisStore(RedisConfig(...))`` implements ``Lifecycle``, ``ContextStore``, ``EventLog``
and ``LockManager``; see :mod:`.store`.
"""

from __future__ import annotations

from .keys import KeySpace, hash_tag
from .store import RedisStore

__all__ = ["KeySpace", "RedisStore", "hash_tag"]
