"""Redis Sentinel: clients whose pools ask the sentinels where the primary is.

``url="sentinel://..."`` (:mod:`memory_resources.sentinel_url`) gives a ``redis.Redis`` (or
``redis.asyncio.Redis``) over a blocking pool of sentinel-managed connections: each new
connection asks the sentinels for the primary (``SENTINEL MASTERS``, each sentinel waiting at
most ``sentinel_timeout``, the first that answers asked first next time), then connects to
it. Everything else is the single-node store's code: the same scripts, deadline and retry loop.

A fail-over reaches the store as errors :mod:`.retrying` retries within ``operation_timeout``:
the dead primary refuses connections; while the sentinels have no primary to name the lookup
raises ``MasterNotFoundError`` (nothing was sent: retried for every call); a demoted primary
answers ``READONLY`` (not run: retried; the connection is dropped on release, so the retry
connects afresh and asks the sentinels again). When no sentinel answers and one of them
refused ``sentinel_username``/``sentinel_password``, the lookup raises ``AuthenticationError``
at once (permanent), as a wrong data node password does.

A sentinel that is itself running a fail-over is asked last: it keeps naming the old
primary until the fail-over ends, while the others already name the promoted replica (1 s
earlier in our runs), and a demoted primary accepts writes that are then lost.

The lookup's decision (:class:`Lookup`) is shared by the sync and async transports; only the
loop that awaits or not is written twice (five lines each).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
import redis.asyncio as aredis
import redis.asyncio.sentinel as asentinel
import redis.exceptions as rex
import redis.sentinel as ssentinel

from ...config import RedisConfig
from ...sentinel_url import SentinelURL, parse_sentinel_url

LOOKUP_ERRORS: tuple[type[BaseException], ...] = (rex.ConnectionError, rex.ResponseError,
                                                  rex.TimeoutError, OSError)
"""What one sentinel may raise during a lookup; the next sentinel is asked."""

NOT_FOUND: tuple[type[BaseException], ...] = (ssentinel.MasterNotFoundError,
                                              asentinel.MasterNotFoundError)
"""The lookup's errors when no sentinel names a primary (nothing was sent to a data node)."""


def _refused_credentials(exc: BaseException) -> bool:
    if isinstance(exc, (rex.AuthenticationError, rex.AuthenticationWrongNumberOfArgsError,
                        rex.NoPermissionError)):
        return True
    return isinstance(exc, rex.ResponseError) and str(exc).startswith(("NOAUTH", "WRONGPASS"))


class Lookup:
    """One search for the primary of ``service``: fed each sentinel's answer in turn."""

    def __init__(self, service: str, min_other_sentinels: int = 0) -> None:
        self.service = service
        self.min_other = min_other_sentinels
        self.problems: list[str] = []
        self.refused: BaseException | None = None
        self.answered = 0
        self.fallback: tuple[str, int] | None = None

    def answer(self, sentinel: Any, masters: Any) -> tuple[str, int] | None:
        """The primary's address if this sentinel's ``SENTINEL MASTERS`` names a healthy one."""
        self.answered += 1
        state = masters.get(self.service)
        if state is None:
            self.problems.append(f"{_where(sentinel)} does not monitor {self.service!r}")
            return None
        if (not state["is_master"] or state["is_sdown"] or state["is_odown"]
                or state["num-other-sentinels"] < self.min_other):
            self.problems.append(f"{_where(sentinel)}: the primary is down")
            return None
        address = str(state["ip"]), int(state["port"])
        if "failover_in_progress" in str(state.get("flags", "")):
            # The sentinel running a fail-over names the old primary until it ends (seconds
            # after the replica was promoted); the others learn the new one sooner.
            self.fallback = self.fallback or address
            self.problems.append(f"{_where(sentinel)}: fail-over in progress")
            return None
        return address

    def finish(self, not_found: type[BaseException]) -> tuple[str, int]:
        """After every sentinel was asked: the address a sentinel in the middle of a
        fail-over gave, if no other named one; else raise :meth:`error`."""
        if self.fallback is not None:
            return self.fallback
        raise self.error(not_found)

    def failed(self, sentinel: Any, exc: BaseException) -> None:
        """This sentinel did not answer (or refused the credentials)."""
        if _refused_credentials(exc) and self.refused is None:
            self.refused = exc
        self.problems.append(f"{_where(sentinel)}: {type(exc).__name__}: {exc}")

    def error(self, not_found: type[BaseException]) -> BaseException:
        """What to raise when no sentinel named a primary."""
        detail = "; ".join(self.problems)
        if self.refused is not None and not self.answered:
            return rex.AuthenticationError(
                f"the sentinels refused sentinel_username/sentinel_password ({detail})")
        return not_found(f"No master found for {self.service!r}: {detail}")


def _where(sentinel: Any) -> str:
    kwargs = sentinel.connection_pool.connection_kwargs
    return f"sentinel {kwargs.get('host')}:{kwargs.get('port')}"


def _first(sentinels: list[Any], index: int) -> None:
    """Ask the sentinel that answered first next time (as redis-py does)."""
    sentinels[0], sentinels[index] = sentinels[index], sentinels[0]


class SyncSentinels(ssentinel.Sentinel):
    """redis-py's ``Sentinel`` with the lookup of :class:`Lookup`."""

    def discover_master(self, service_name: str) -> tuple[str, int]:
        lookup = Lookup(service_name, self.min_other_sentinels)
        for index, sentinel in enumerate(self.sentinels):
            try:
                address = lookup.answer(sentinel, sentinel.sentinel_masters())
            except LOOKUP_ERRORS as exc:
                lookup.failed(sentinel, exc)
                continue
            if address is not None:
                _first(self.sentinels, index)
                return address
        return lookup.finish(ssentinel.MasterNotFoundError)


class AsyncSentinels(asentinel.Sentinel):
    """redis.asyncio's ``Sentinel`` with the lookup of :class:`Lookup`."""

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        lookup = Lookup(service_name, self.min_other_sentinels)
        for index, sentinel in enumerate(self.sentinels):
            try:
                address = lookup.answer(sentinel, await sentinel.sentinel_masters())
            except LOOKUP_ERRORS as exc:
                lookup.failed(sentinel, exc)
                continue
            if address is not None:
                _first(self.sentinels, index)
                return address
        return lookup.finish(asentinel.MasterNotFoundError)


# -- connections: READONLY stays READONLY (not run), the connection is dropped on release ----

class MasterConnection(ssentinel.SentinelManagedConnection):
    """A connection to the primary; a ``READONLY`` reply (the primary was demoted) is
    raised as is, and the connection is closed when released, so the next one asks the
    sentinels again (redis-py turns it into a ConnectionError, which reads as "maybe sent")."""

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super(ssentinel.SentinelManagedConnection, self).read_response(*args, **kwargs)
        except rex.ReadOnlyError:
            self.mark_for_reconnect()  # type: ignore[no-untyped-call]
            raise


class MasterSSLConnection(MasterConnection, redis.SSLConnection):
    """:class:`MasterConnection` over TLS."""


class AsyncMasterConnection(asentinel.SentinelManagedConnection):
    """:class:`MasterConnection` for redis.asyncio."""

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super(asentinel.SentinelManagedConnection, self).read_response(
                *args, **kwargs)
        except rex.ReadOnlyError:
            self.mark_for_reconnect()  # type: ignore[no-untyped-call]
            raise


class AsyncMasterSSLConnection(AsyncMasterConnection, aredis.SSLConnection):
    """:class:`AsyncMasterConnection` over TLS."""


class Recheck:
    """When a pool asks the sentinels again where the primary is: at most every
    ``interval`` seconds, one borrower at a time (0: on every borrow)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.next = 0.0
        self.guard = threading.Lock()

    def due(self) -> bool:
        """True for the one caller that should look now."""
        now = time.monotonic()
        if now < self.next:
            return False
        with self.guard:
            if now < self.next:
                return False
            self.next = now + self.interval
            return True

    def failed(self) -> None:
        """The look failed: the next borrower looks again."""
        self.next = 0.0


class BlockingSentinelPool(ssentinel.SentinelConnectionPool, redis.BlockingConnectionPool):
    """A sentinel-managed pool that waits (``timeout``) for a free connection, capped at
    ``max_connections``, like the single-node store's pool.

    Pooled connections outlive a fail-over: a primary that was demoted, not killed, keeps
    taking writes until the sentinels reconfigure it (seconds later), and those writes are
    lost. So a borrow re-asks the sentinels every ``sentinel_check_interval``; when the
    primary moved, idle connections are closed and busy ones when released.
    """

    recheck: Recheck | None = None

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        recheck = self.recheck
        if recheck is not None and recheck.due():
            try:
                self.get_master_address()  # type: ignore[no-untyped-call]
            except BaseException:
                recheck.failed()
                raise
        return super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]


class AsyncBlockingSentinelPool(asentinel.SentinelConnectionPool, aredis.BlockingConnectionPool):
    """:class:`BlockingSentinelPool` for redis.asyncio."""

    recheck: Recheck | None = None

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        recheck = self.recheck
        if recheck is not None and recheck.due():
            try:
                await self.get_master_address()  # type: ignore[no-untyped-call]
            except BaseException:
                recheck.failed()
                raise
        return await super().get_connection(  # type: ignore[no-untyped-call]
            *args, **kwargs)


# -- building -----------------------------------------------------------------------------

def sentinel_target(config: RedisConfig, url: str | None = None) -> SentinelURL:
    """The parsed ``url`` (default: the config's)."""
    text = config.url_value() if url is None else url
    assert text is not None
    return parse_sentinel_url(text)


def sentinel_kwargs(config: RedisConfig, target: SentinelURL, tls: dict[str, Any],
                    retry: Any) -> dict[str, Any]:
    """Options of the connections to the sentinels themselves."""
    timeout = min(config.sentinel_timeout, config.operation_timeout)
    kwargs: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
                              "retry": retry, "decode_responses": True,
                              "client_name": "memory_resources"}
    if config.sentinel_username is not None:
        kwargs["username"] = config.sentinel_username
    if config.sentinel_password is not None:
        kwargs["password"] = config.sentinel_password.get_secret_value()
    if tls:
        kwargs.update(ssl=True, **tls)
    return kwargs


def node_kwargs(base: dict[str, Any], target: SentinelURL, tls: dict[str, Any]
                ) -> dict[str, Any]:
    """The data nodes' connection options: ``base`` (timeouts, credentials) without its
    ``ssl_*`` options, then ``tls`` and the URL's database and credentials."""
    kwargs = {k: v for k, v in base.items() if not k.startswith("ssl_")}
    kwargs.update(tls)
    kwargs["db"] = target.db
    if target.password is not None:
        kwargs["password"] = target.password
        kwargs.pop("username", None)
    if target.username is not None:
        kwargs["username"] = target.username
    return kwargs


def uses_tls(config: RedisConfig, target: SentinelURL) -> bool:
    """TLS to the sentinels and the data nodes (``sentinels://`` or ``ssl=True``)."""
    return target.tls or config.ssl


def topology(client: Any) -> dict[str, Any]:
    """What the sentinels of a sync sentinel client say about its service: the primary's
    address, its replicas that are up, the quorum, and how many sentinels answered (each
    within ``sentinel_timeout``; a silent one counts as down)."""
    pool = client.connection_pool
    manager, service = pool.sentinel_manager, pool.service_name
    up = 0
    state: dict[str, Any] | None = None
    replicas: list[tuple[str, int]] = []
    for sentinel in list(manager.sentinels):
        try:
            answer = sentinel.sentinel_master(service)
            if state is None and answer.get("is_master") and not answer.get("is_odown"):
                replicas = manager.filter_slaves(sentinel.sentinel_slaves(service))
                state = answer
        except LOOKUP_ERRORS:
            continue
        up += 1
    report: dict[str, Any] = {"sentinel_service": service, "sentinels": len(manager.sentinels),
                              "sentinels_up": up}
    if state is not None:
        report.update(primary=f"{state['ip']}:{state['port']}", replicas=len(replicas),
                      sentinel_quorum=int(state.get("quorum", 0)))
    return report
