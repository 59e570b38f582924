"""``replica_acks``: a write reported done only once N replicas have confirmed it.

Redis replicates asynchronously: a master answers a write before any replica has it, so a
fail-over (SIGKILL, then a replica promoted) can lose the writes of the last moments.
With ``replica_acks=N`` every write script is followed by ``WAIT N <ms>`` **on the same
connection, in the same packet** (one round trip): ``WAIT`` blocks until N replicas have
acknowledged everything this connection wrote, or ``replica_ack_timeout`` passes. Fewer
acknowledgements raise :class:`~memory_resources.errors.ReplicaAckError`: the write was
applied on the master but is not reported as durable. ``WAIT`` is not a consensus: a write
confirmed by N replicas survives the loss of the master because a confirmed replica is
the one promoted (Redis prefers the replica with the largest replication offset), not
because a later master could never be elected without it.

On a cluster the request goes to the master that owns the key's slot (the connection of
that node's pool), not through redis-py's cluster router (which sends a keyless ``WAIT``
to an arbitrary node); a ``MOVED`` reply or a connection failure refreshes the topology
before the next attempt of the call's :class:`~.retrying.RetryPolicy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import redis.exceptions as rex

from ...config import RedisConfig
from .errors import CAUGHT
from .retrying import AckShortfall, RetryPolicy, budget_left, mark_unsent
from .scripts import run


class ReplicaAcks(NamedTuple):
    """How many replicas must confirm a write, and for how long to wait (seconds)."""

    replicas: int
    timeout: float
    read_timeout: float

    def wait_ms(self) -> int:
        """``WAIT``'s timeout: ``timeout``, capped below the socket read timeout and by
        what is left of the call's deadline (at least 1 ms; ``WAIT 0`` blocks forever)."""
        seconds = min(self.timeout, 0.8 * self.read_timeout, budget_left(self.timeout))
        return max(1, int(seconds * 1000))


def from_config(config: RedisConfig) -> ReplicaAcks | None:
    """The write-acknowledgement policy of ``config`` (None when ``replica_acks`` is 0)."""
    if config.replica_acks == 0:
        return None
    return ReplicaAcks(config.replica_acks, config.replica_ack_timeout,
                       min(config.socket_timeout, config.operation_timeout))


def _check(replies: list[Any], count: Any, acks: ReplicaAcks, wait_ms: int) -> None:
    """Raise the first command's error reply (``MOVED``, ``READONLY``: the node is no
    longer the master, which also makes it refuse ``WAIT``), else ``WAIT``'s own error,
    else :class:`AckShortfall` when too few replicas confirmed."""
    errors = [reply for reply in replies if isinstance(reply, rex.ResponseError)]
    if errors:
        raise errors[0]
    if isinstance(count, rex.ResponseError):
        raise count
    if int(count) < acks.replicas:
        raise AckShortfall(int(count), acks.replicas, wait_ms)


def _pool_of(client: Any, key: str, cluster: bool) -> Any:
    """The connection pool of the server that owns ``key``."""
    if not cluster:
        return client.connection_pool
    node = client.get_node_from_key(key)
    return client.get_redis_connection(node).connection_pool


def attempt(client: Any, cluster: bool, acks: ReplicaAcks,
            commands: Sequence[tuple[Any, ...]], key: str) -> list[Any]:
    """Send ``commands`` then ``WAIT`` in one packet on one connection to the owner of
    ``key``; the commands' replies (an error reply raised after ``WAIT`` is read, except
    when it says the commands did not run)."""
    try:
        pool = _pool_of(client, key, cluster)
        conn: Any = pool.get_connection()
    except CAUGHT as exc:
        raise mark_unsent(exc) from None
    wait_ms = acks.wait_ms()
    try:
        try:
            conn.send_packed_command(conn.pack_commands(
                [*commands, ("WAIT", acks.replicas, wait_ms)]))
        except CAUGHT as exc:
            raise mark_unsent(exc) from None
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(conn.read_response())
            except rex.ResponseError as exc:
                replies.append(exc)
        try:
            count: Any = conn.read_response()
        except rex.ResponseError as exc:
            count = exc  # WAIT refused (a replica, NOPERM): the connection is fine
    except CAUGHT:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)
    _check(replies, count, acks, wait_ms)
    return replies


def execute(client: Any, cluster: bool, acks: ReplicaAcks, policy: RetryPolicy, what: str,
            args: tuple[Any, ...], key: str, *, idempotent: bool) -> Any:
    """One write command followed by ``WAIT``, under ``policy`` (see the module docstring)."""
    return call(client, cluster, acks, policy, what, [args], key, idempotent=idempotent)[0]


def call(client: Any, cluster: bool, acks: ReplicaAcks, policy: RetryPolicy, what: str,
         commands: Sequence[tuple[Any, ...]], key: str, *, idempotent: bool) -> list[Any]:
    """:func:`attempt` under ``policy``, refreshing a cluster's topology after a failure."""
    stale = [False]

    def once() -> list[Any]:
        if stale[0]:
            refresh(client)
            stale[0] = False
        try:
            return attempt(client, cluster, acks, commands, key)
        except CAUGHT as exc:
            stale[0] = cluster and not isinstance(exc, AckShortfall)
            raise

    return policy.call(once, what=what, idempotent=idempotent)


def refresh(client: Any) -> None:
    """Re-read a cluster's slot map (after ``MOVED`` or a node lost); a failure counts as
    a refused attempt (nothing was sent)."""
    try:
        client.nodes_manager.initialize()
    except CAUGHT as exc:
        raise mark_unsent(exc) from None


def run_script(script: Any, client: Any, cluster: bool, acks: ReplicaAcks,
               policy: RetryPolicy, what: str, keys: tuple[str, ...], args: tuple[Any, ...],
               *, idempotent: bool) -> Any:
    """``EVALSHA`` + ``WAIT``; on ``NOSCRIPT`` (the script did not run) ``EVAL`` + ``WAIT``."""
    try:
        return execute(client, cluster, acks, policy, what,
                       ("EVALSHA", script.sha, len(keys), *keys, *args), keys[0],
                       idempotent=idempotent)
    except rex.NoScriptError:
        return execute(client, cluster, acks, policy, what,
                       ("EVAL", script.script, len(keys), *keys, *args), keys[0],
                       idempotent=idempotent)



def write(script: Any, client: Any, keys: tuple[str, ...], args: tuple[Any, ...], *,
          cluster: bool, acks: ReplicaAcks | None, policy: RetryPolicy, what: str,
          idempotent: bool = True) -> Any:
    """A write script: :func:`.scripts.run` when ``acks`` is None, else
    :func:`run_script` (the script and ``WAIT`` in one round trip)."""
    if acks is None:
        return run(script, client, keys, args, policy=policy, what=what,
                   idempotent=idempotent)
    return run_script(script, client, cluster, acks, policy, what, keys, args,
                      idempotent=idempotent)


async def attempt_async(client: Any, cluster: bool, acks: ReplicaAcks,
                        commands: Sequence[tuple[Any, ...]], key: str) -> list[Any]:
    """:func:`attempt` on a ``redis.asyncio`` client (``Redis`` or ``RedisCluster``)."""
    node: Any = None
    try:
        if cluster:
            await client.initialize()
            node = client.get_node_from_key(key)
            conn: Any = node.acquire_connection()
        else:
            conn = await client.connection_pool.get_connection()
    except CAUGHT as exc:
        raise mark_unsent(exc) from None
    wait_ms = acks.wait_ms()
    try:
        try:
            await conn.send_packed_command(conn.pack_commands(
                [*commands, ("WAIT", acks.replicas, wait_ms)]))
        except CAUGHT as exc:
            raise mark_unsent(exc) from None
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await conn.read_response())
            except rex.ResponseError as exc:
                replies.append(exc)
        try:
            count: Any = await conn.read_response()
        except rex.ResponseError as exc:
            count = exc
    except BaseException:
        await conn.disconnect()
        raise
    finally:
        if node is not None:
            node.release(conn)
        else:
            await client.connection_pool.release(conn)
    _check(replies, count, acks, wait_ms)
    return replies


async def refresh_async(client: Any) -> None:
    """:func:`refresh` of a ``redis.asyncio`` cluster client."""
    try:
        await client.nodes_manager.initialize()
    except CAUGHT as exc:
        raise mark_unsent(exc) from None
