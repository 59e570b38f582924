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

from .scripts import Scripts, run

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
            return self._run_single(pick(self.scripts), calls)
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

    def _run_single(self, script: Any, calls: Sequence[Call]) -> list[Any]:
        """One plain pipeline of ``EVALSHA`` on a single server.

        No ``SCRIPT EXISTS`` round trip first (what a ``Script`` queued on a pipeline
        costs): a call refused with ``NOSCRIPT`` (script cache flushed) is re-run on its
        own, in order, through :func:`run`, which loads the script. Any other error is
        raised afterwards exactly as ``pipe.execute()`` raises it (the first one,
        annotated with its command number).
        """
        sha = script.sha
        with self.client.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
            stack = list(pipe.command_stack)
            replies = list(pipe.execute(raise_on_error=False))
            for index, reply in enumerate(replies):
                if isinstance(reply, rex.NoScriptError):
                    keys, args = calls[index]
                    try:
                        replies[index] = run(script, self.client, keys, args)
                    except rex.ResponseError as exc:  # raised below, like the others
                        replies[index] = exc
            pipe.raise_first_error(stack, replies)
        return replies
