"""Key layout under ``key_prefix``, with a Redis Cluster hash tag per context / lock.

Every key of one context (its envelope and its event stream) carries the same hash tag
``{<16 hex digits of the id's BLAKE2b hash>}``, so multi-key scripts stay in one cluster
slot. The tag is a hash, not the id itself: ids may contain ``{`` and ``}``. The raw id
follows the tag, so keys are unique and readable in ``redis-cli``::

    agent_framework:ctx:{9f2c4e61a0b7d3e5}:user_session_123
    agent_framework:evt:{9f2c4e61a0b7d3e5}:user_session_123
    agent_framework:lock:{...}:critical_section     (the lease)
    agent_framework:fence:{...}:critical_section    (the fencing counter, kept forever)
"""

from __future__ import annotations

import hashlib
from typing import Any

from ...validation import require_id


def hash_tag(ident: str) -> str:
    """The cluster hash tag of an id: ``{`` + 16 hex digits + ``}``."""
    digest = hashlib.blake2b(ident.encode("utf-8"), digest_size=8).hexdigest()
    return "{" + digest + "}"


_PAIR_CACHE_SIZE = 4096


class KeySpace:
    """Builds every key the store touches; all start with ``prefix``."""

    __slots__ = ("_pairs", "prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._pairs: dict[str, tuple[str, str]] = {}

    def checked_pair(self, value: Any, field: str) -> tuple[str, str]:
        """:func:`require_id` of ``value`` (raising for ``field``), then
        :meth:`context_pair`; both remembered for recently seen ids (up to 4096)."""
        if type(value) is str:
            pair = self._pairs.get(value)
            if pair is not None:
                return pair
        ident = require_id(value, field)
        pair = self.context_pair(ident)
        if len(self._pairs) >= _PAIR_CACHE_SIZE:
            self._pairs.clear()
        self._pairs[ident] = pair
        return pair

    def context(self, context_id: str) -> str:
        """The string key holding a context's JSON envelope."""
        return f"{self.prefix}ctx:{hash_tag(context_id)}:{context_id}"

    def events(self, context_id: str) -> str:
        """The stream key holding a context's events."""
        return f"{self.prefix}evt:{hash_tag(context_id)}:{context_id}"

    def context_pair(self, context_id: str) -> tuple[str, str]:
        """``(context key, events key)``, sharing one hash tag."""
        tag = hash_tag(context_id)
        return (f"{self.prefix}ctx:{tag}:{context_id}", f"{self.prefix}evt:{tag}:{context_id}")

    def lock_pair(self, name: str) -> tuple[str, str]:
        """``(lease key, fencing counter key)`` of a lock, sharing one hash tag."""
        tag = hash_tag(name)
        return (f"{self.prefix}lock:{tag}:{name}", f"{self.prefix}fence:{tag}:{name}")

    def pattern(self) -> str:
        """A SCAN ``MATCH`` pattern for every key under the prefix."""
        escaped = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in self.prefix)
        return escaped + "*"
