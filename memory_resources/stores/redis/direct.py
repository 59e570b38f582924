"""One command on a pooled connection, without redis-py's per-call wrapper.

redis-py 8's ``execute_command`` builds two closures, checks for ``HIMPORT SET``, looks
up response callbacks and records operation metrics on every call: about 15 µs of a
200 µs round trip on a 2-core machine (measured interleaved, ``benchmarks/RESULTS.md``).
For a standalone ``Redis`` client, :func:`execute` borrows a connection from the same
pool, sends, reads the reply and returns the connection. Any failure of that first
attempt, taking the connection included, is handed to the store's
:class:`~.retrying.RetryPolicy` as its first failure, with where it happened: before the
command was sent (connect refused, a stale connection found closed) or after. The policy
retries it under the call's deadline as :func:`.retrying.classify` allows. Replies come
back unparsed, so it suits commands without a response callback (``EVALSHA``, ``GET``). A
``RedisCluster`` (slot routing, ``MOVED``/``ASK``) or a single-connection client goes
through ``execute_command``.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from .errors import CAUGHT
from .retrying import RetryPolicy, mark_unsent


def attempt(client: Any, args: tuple[Any, ...]) -> Any:
    """One try of ``args`` on a standalone client; an error raised before the command left
    is marked unsent (:func:`.retrying.mark_unsent`)."""
    pool = client.connection_pool
    try:
        conn: Any = pool.get_connection()
    except CAUGHT as exc:
        raise mark_unsent(exc) from None
    try:
        try:
            conn.send_command(*args)
        except CAUGHT as exc:
            raise mark_unsent(exc) from None
        return conn.read_response()
    finally:
        pool.release(conn)


def execute(client: Any, policy: RetryPolicy | None, what: str, *args: Any,
            idempotent: bool = True) -> Any:
    """Run one command (``args[0]`` is its name) on ``client`` and return the raw reply;
    ``policy`` None: a single attempt (Redlock's per-node requests)."""
    if type(client) is not redis.Redis or client.connection is not None:
        if policy is None:
            return client.execute_command(*args)
        return policy.call(lambda: client.execute_command(*args), what=what,
                           idempotent=idempotent)
    started = time.monotonic()
    pool = client.connection_pool
    sent = False
    try:
        conn: Any = pool.get_connection()
        try:
            conn.send_command(*args)
            sent = True
            return conn.read_response()
        finally:
            pool.release(conn)
    except CAUGHT as first_error:
        if not sent:
            mark_unsent(first_error)
        if policy is None:
            raise
        return policy.call(lambda: attempt(client, args), what=what, idempotent=idempotent,
                           first_error=first_error, started=started)
