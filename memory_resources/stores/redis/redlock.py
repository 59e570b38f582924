"""Redlock primitives over the primary plus ``lock_nodes``, with a fencing token.

:class:`memory_resources.locking.Lock` drives these primitives (retry with jitter,
validity = ttl - elapsed - drift, watchdog); what is Redis-specific lives here:

* **acquire**: one Lua script per node does ``SET NX PX`` and, on success, ``INCR`` of the
  lock's fencing counter, so acquire plus token is one round trip per node. All nodes are
  asked concurrently (requests written to every socket, then replies read). Success
  needs a quorum ``N//2+1``; otherwise the lease is released on every node before
  returning ``None``.
* **fencing token**: the largest counter among the quorum. When the nodes' counters
  disagree (a node missed earlier rounds), the nodes of the quorum are lifted to that token
  in a second step, so any later quorum, which overlaps this one, returns a larger token.
  With a single node the counter is simply the INCR result.
* **release / extend**: Lua compare-and-delete / compare-and-pexpire on every node;
  true when a quorum confirmed.

Per-node failures are tolerated while a quorum is still possible; when too many nodes fail
to ever reach one, :class:`BackendUnavailableError` is raised instead of a silent refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

import redis.exceptions as rex
from redis.cluster import RedisCluster

from ...errors import BackendAuthenticationError, BackendError, BackendUnavailableError
from .errors import BACKEND, CAUGHT, translate
from .keys import KeySpace
from .scripts import Scripts, run

_ACQUIRE = attrgetter("acquire")
_RELEASE = attrgetter("release")
_EXTEND = attrgetter("extend")
_RAISE_FENCE = attrgetter("raise_fence")


class LockNode:
    """One Redlock master: its client and the scripts registered on it."""

    __slots__ = ("client", "cluster", "label", "scripts")

    def __init__(self, client: Any, label: str) -> None:
        self.client = client
        self.label = label
        self.scripts = Scripts(client)
        self.cluster = isinstance(client, RedisCluster)

    def pool_for(self, key: str) -> Any:
        """The connection pool of the server holding ``key`` (on a cluster: its slot's node)."""
        if self.cluster:
            node = self.client.get_node_from_key(key)
            return self.client.get_redis_connection(node).connection_pool
        return self.client.connection_pool


class Redlock:
    """The :class:`~memory_resources.protocols.LockManager` primitives over ``nodes``."""

    def __init__(self, nodes: Sequence[LockNode], keys: KeySpace,
                 secrets: tuple[str, ...] = ()) -> None:
        self.nodes = list(nodes)
        self.keys = keys
        self.quorum = len(self.nodes) // 2 + 1
        self._secrets = secrets
        self.single = len(self.nodes) == 1

    def _on_all(self, pick: Callable[[Scripts], Any], keys: tuple[str, ...],
                args: tuple[Any, ...], nodes: Sequence[LockNode] | None = None
                ) -> list[Any]:
        """Run one script on every node concurrently; a node's failure is returned as its
        typed error.

        The requests are written to every node's socket first and the replies read after,
        so one call costs about the slowest node's round trip, not the sum, without
        threads. A node that lost the script cache (``NOSCRIPT``) is answered through
        redis-py's ``Script`` call, which loads it.
        """
        targets = self.nodes if nodes is None else nodes
        sent: list[tuple[LockNode, Any, Any]] = []
        pools: list[Any] = []
        for node in targets:
            conn = None
            try:
                pool = node.pool_for(keys[0])
            except CAUGHT as exc:
                pools.append(None)
                sent.append((node, None, self._error(exc, node)))
                continue
            pools.append(pool)
            try:
                conn = pool.get_connection()
                conn.send_command("EVALSHA", pick(node.scripts).sha, len(keys), *keys, *args)
                sent.append((node, conn, None))
            except CAUGHT as exc:
                if conn is not None:
                    conn.disconnect()
                    pool.release(conn)
                sent.append((node, None, self._error(exc, node)))
        results: list[Any] = []
        for (node, conn, error), pool in zip(sent, pools, strict=True):
            if conn is None:
                results.append(error)
                continue
            try:
                try:
                    results.append(conn.read_response())
                except rex.NoScriptError:
                    results.append(pick(node.scripts)(keys=keys, args=args))
            except CAUGHT as exc:
                conn.disconnect()
                results.append(self._error(exc, node))
            finally:
                pool.release(conn)
        return results

    def _error(self, exc: BaseException, node: LockNode) -> BackendError:
        return translate(exc, self._secrets, where=f"lock node {node.label}")

    def _check_reachable(self, results: Sequence[object], action: str) -> None:
        """Raise when failed nodes leave fewer than a quorum able to answer."""
        errors = [r for r in results if isinstance(r, BackendError)]
        if len(self.nodes) - len(errors) >= self.quorum:
            return
        for error in errors:
            if isinstance(error, BackendAuthenticationError):
                raise error
        if len(errors) == 1:
            raise errors[0]
        detail = "; ".join(str(e) for e in errors)
        raise BackendUnavailableError(
            BACKEND,
            f"{action}: {len(errors)} of {len(self.nodes)} lock nodes failed, "
            f"quorum {self.quorum} impossible ({detail})",
        )

    def try_acquire(self, name: str, owner: str, ttl_ms: int) -> int | None:
        """Take the lease on a quorum and return its fencing token, else ``None``."""
        lease, fence = self.keys.lock_pair(name)
        if self.single:
            node = self.nodes[0]
            try:
                token = run(node.scripts.acquire, node.client, (lease, fence), (owner, ttl_ms))
            except CAUGHT as exc:
                raise translate(exc, self._secrets) from exc
            return None if token is None else int(token)
        results = self._on_all(_ACQUIRE, (lease, fence), (owner, ttl_ms))
        won = [(node, int(r)) for node, r in zip(self.nodes, results, strict=True)
               if r is not None and not isinstance(r, BackendError)]
        if len(won) < self.quorum:
            self.release(name, owner, quiet=True)
            self._check_reachable(results, "acquire")
            return None
        token = max(t for _, t in won)
        behind = [node for node, t in won if t < token]
        if behind:
            lifted = self._on_all(_RAISE_FENCE, (lease, fence), (owner, token), behind)
            confirmed = len(won) - len(behind) + sum(1 for r in lifted if r == 1)
            if confirmed < self.quorum:
                self.release(name, owner, quiet=True)
                return None
        return token

    def release(self, name: str, owner: str, *, quiet: bool = False) -> bool:
        """Compare-and-delete on every node; True when a quorum released it."""
        lease, _ = self.keys.lock_pair(name)
        if self.single:
            try:
                node = self.nodes[0]
                return bool(run(node.scripts.release, node.client, (lease,), (owner,)))
            except CAUGHT as exc:
                if quiet:
                    return False
                raise translate(exc, self._secrets) from exc
        results = self._on_all(_RELEASE, (lease,), (owner,))
        if not quiet:
            self._check_reachable(results, "release")
        return sum(1 for r in results if r == 1) >= self.quorum

    def extend(self, name: str, owner: str, ttl_ms: int) -> bool:
        """Compare-and-pexpire on every node; True when a quorum still held it."""
        lease, _ = self.keys.lock_pair(name)
        if self.single:
            try:
                node = self.nodes[0]
                return bool(run(node.scripts.extend, node.client, (lease,), (owner, ttl_ms)))
            except CAUGHT as exc:
                raise translate(exc, self._secrets) from exc
        results = self._on_all(_EXTEND, (lease,), (owner, ttl_ms))
        self._check_reachable(results, "extend")
        return sum(1 for r in results if r == 1) >= self.quorum

    def is_held(self, name: str) -> bool:
        """True when a quorum of nodes has the lease key (one ``EXISTS`` per node)."""
        lease, _ = self.keys.lock_pair(name)
        results: list[Any] = []
        for node in self.nodes:
            try:
                results.append(int(node.client.exists(lease)))
            except CAUGHT as exc:
                if self.single:
                    raise translate(exc, self._secrets) from exc
                results.append(self._error(exc, node))
        if not self.single:
            self._check_reachable(results, "is_held")
        return sum(1 for r in results if r == 1) >= self.quorum
