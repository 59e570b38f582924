"""One command on a pooled connection, without redis-py's per-call wrapper.

redis-py 8's ``execute_command`` builds two closures, checks for ``HIMPORT SET``, looks
up response callbacks and records operation metrics on every call: about 15 µs of a
200 µs round trip on a 2-core machine (measured interleaved, ``benchmarks/RESULTS.md``).
For a standalone ``Redis`` client, :func:`execute` borrows a connection from the same
pool, sends, reads the reply and returns the connection. A failed attempt is handed to
the connection's own ``Retry`` as its first failure (retried on connection and timeout
errors with backoff, the connection dropped before each new attempt): the attempts and
delays are exactly redis-py's, the happy path skips the loop's set-up. Replies come back
unparsed, so it suits commands without a response callback (``EVALSHA``, ``GET``). A
``RedisCluster`` (slot routing, ``MOVED``/``ASK``) or a single-connection client goes
through ``execute_command``.
"""

from __future__ import annotations

from typing import Any

import redis


def execute(client: Any, *args: Any) -> Any:
    """Run one command (``args[0]`` is its name) on ``client`` and return the raw reply."""
    if type(client) is not redis.Redis or client.connection is not None:
        return client.execute_command(*args)
    pool = client.connection_pool
    conn: Any = pool.get_connection()
    try:
        try:
            conn.send_command(*args)
            return conn.read_response()
        except Exception as first_error:
            return _retry(conn, args, first_error)
    finally:
        pool.release(conn)


def _retry(conn: Any, args: tuple[Any, ...], first_error: Exception) -> Any:
    """Continue under ``conn.retry`` as if its loop had made the failed first attempt
    (errors it does not retry, e.g. a ``ResponseError``, propagate at once)."""
    pending = [first_error]

    def attempt() -> Any:
        if pending:
            raise pending.pop()
        conn.send_command(*args)
        return conn.read_response()

    return conn.retry.call_with_retry(attempt, lambda _error: conn.disconnect())
