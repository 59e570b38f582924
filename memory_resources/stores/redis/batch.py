"""Pipelined script calls for the batch API, on a single server or a cluster.

A redis-py cluster pipeline refuses ``EVALSHA``, so on a cluster the calls are grouped by
the node owning each key's slot and sent as one plain pipeline per node (scripts registered
on that node's client). A call refused with ``MOVED`` / ``ASK`` / ``TRYAGAIN`` (a slot
migrating) is re-sent on its own through the cluster client, which follows the redirect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import redis.exceptions as rex

from .scripts import Scripts

Call = tuple[tuple[str, ...], tuple[Any, ...]]
"""``(keys, args)`` of one script call."""

_REDIRECTS = (rex.AskError, rex.TryAgainError)  # MovedError subclasses AskError


class ScriptBatcher:
    """Sends many calls of one script (picked from a :class:`Scripts` set) pipelined."""

    def __init__(self, client: Any, scripts: Scripts, cluster: bool) -> None:
        self.client = client
        self.scripts = scripts
        self.cluster = cluster
        self._node_scripts: dict[tuple[str, int], Scripts] = {}

    def run(self, pick: Callable[[Scripts], Any], calls: Sequence[Call]) -> list[Any]:
        """The replies of ``calls``, in order; errors are raised as redis-py errors."""
        if not self.cluster:
            with self.client.pipeline(transaction=False) as pipe:
                for keys, args in calls:
                    pick(self.scripts)(keys=keys, args=args, client=pipe)
                return list(pipe.execute())
        groups: dict[str, tuple[Any, list[int]]] = {}
        for index, (keys, _) in enumerate(calls):
            node = self.client.get_node_from_key(keys[0])
            groups.setdefault(node.name, (node, []))[1].append(index)
        replies: list[Any] = [None] * len(calls)
        for node, indexes in groups.values():
            node_client = self.client.get_redis_connection(node)
            cache_key = (node.name, id(node_client))
            node_scripts = self._node_scripts.get(cache_key)
            if node_scripts is None:
                node_scripts = self._node_scripts[cache_key] = Scripts(node_client)
            with node_client.pipeline(transaction=False) as pipe:
                for index in indexes:
                    keys, args = calls[index]
                    pick(node_scripts)(keys=keys, args=args, client=pipe)
                results = pipe.execute(raise_on_error=False)
            for index, result in zip(indexes, results, strict=True):
                if isinstance(result, _REDIRECTS):
                    keys, args = calls[index]
                    result = pick(self.scripts)(keys=keys, args=args)
                elif isinstance(result, Exception):
                    raise result
                replies[index] = result
        return replies
