"""Pipelined script calls for the batch API, on a single server or a cluster.

A redis-py cluster pipeline refuses ``EVALSHA``, so on a cluster the calls are grouped by
the node owning each key's slot and sent as one plain pipeline per node (scripts registered
on that node's client). A call refused with ``MOVED`` / ``ASK`` / ``TRYAGAIN`` (a slot
migrating) is re-sent on its own through the cluster client, which follows the redirect.
With ``replica_acks`` each pipeline ends with ``WAIT`` (:mod:`.acks`); a call re-sent on
its own is followed by its own ``WAIT``. A connection failure on a cluster re-reads the
slot map before the next attempt (a fail-over moved the slots to a promoted replica).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import redis.exceptions as rex

from . import acks as replica
from .errors import CAUGHT
from .retrying import AckShortfall
from .scripts import Scripts, run

Call = tuple[tuple[str, ...], tuple[Any, ...]]
"""``(keys, args)`` of one script call."""

_REDIRECTS = (rex.AskError, rex.TryAgainError)  # MovedError subclasses AskError


class ScriptBatcher:
    """Sends many calls of one script (picked from a :class:`Scripts` set) pipelined."""

    def __init__(self, client: Any, scripts: Scripts, cluster: bool,
                 acks: replica.ReplicaAcks | None = None) -> None:
        self.client = client
        self.scripts = scripts
        self.cluster = cluster
        self.acks = acks
        self._node_scripts: dict[tuple[str, int], Scripts] = {}
        self._stale = False

    def run(self, pick: Callable[[Scripts], Any], calls: Sequence[Call]) -> list[Any]:
        """The replies of ``calls``, in order; errors are raised as redis-py errors."""
        if not self.cluster:
            return self._run_single(pick(self.scripts), calls)
        if self._stale:
            replica.refresh(self.client)
            self._stale = False
        try:
            return self._run_cluster(pick, calls)
        except CAUGHT as exc:
            self._stale = not isinstance(exc, (rex.ResponseError, AckShortfall))
            raise

    def _run_cluster(self, pick: Callable[[Scripts], Any], calls: Sequence[Call]
                     ) -> list[Any]:
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
                wait_ms = self._wait(pipe)
                results = pipe.execute(raise_on_error=False)
            self._check(results, wait_ms)
            for index, result in zip(indexes, results, strict=True):
                if isinstance(result, _REDIRECTS):
                    keys, args = calls[index]
                    result = self._resend(pick(self.scripts), keys, args)
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
            wait_ms = self._wait(pipe)
            stack = list(pipe.command_stack)
            replies = list(pipe.execute(raise_on_error=False))
            self._check(replies, wait_ms)
            for index, reply in enumerate(replies):
                if isinstance(reply, rex.NoScriptError):
                    keys, args = calls[index]
                    try:
                        replies[index] = self._resend(script, keys, args)
                    except rex.ResponseError as exc:  # raised below, like the others
                        replies[index] = exc
            pipe.raise_first_error(stack, replies)
        return replies

    def _wait(self, pipe: Any) -> int:
        """Queue ``WAIT`` after the calls when ``replica_acks`` is set; its timeout in ms."""
        if self.acks is None:
            return 0
        wait_ms = self.acks.wait_ms()
        pipe.execute_command("WAIT", self.acks.replicas, wait_ms)
        return wait_ms

    def _check(self, replies: list[Any], wait_ms: int) -> None:
        """Pop ``WAIT``'s reply and raise :class:`AckShortfall` when too few replicas (a
        refused ``WAIT`` only when no call failed: their errors come first)."""
        if self.acks is None:
            return
        count = replies.pop()
        if isinstance(count, Exception):
            if any(isinstance(reply, Exception) for reply in replies):
                return  # e.g. MOVED from a demoted master: each call is re-sent or raised
            raise count
        if int(count) < self.acks.replicas:
            raise AckShortfall(int(count), self.acks.replicas, wait_ms)

    def _resend(self, script: Any, keys: tuple[str, ...], args: tuple[Any, ...]) -> Any:
        """One call on its own (after ``NOSCRIPT`` or a redirect), with its own ``WAIT``."""
        if self.acks is None:
            if self.cluster:
                return script(keys=keys, args=args)
            return run(script, self.client, keys, args)
        if self.cluster:
            replica.refresh(self.client)
        return replica.attempt(self.client, self.cluster, self.acks,
                               [("EVAL", script.script, len(keys), *keys, *args)], keys[0])[0]
