"""One deadline and one error classification for every Redis call.

Every store call runs under :meth:`RetryPolicy.call`: connect, retries with backoff and
jitter, and the command share ``operation_timeout``. redis-py's own retries are off
(``Retry(NoBackoff(), 0)`` on every connection), so nothing nests. The deadline is kept
in a thread-local that the connection class (:func:`.client.single_connect`) reads, so a
connect or read started late in the budget waits only for what is left.

Classification of a redis-py error (:func:`classify`):

* ``REFUSED`` - the server did not run the command: connect failures (refused, timed
  out, reset during the handshake), no primary named by the Redis Sentinels
  (``MasterNotFoundError``, during a fail-over), a stale pooled connection found closed on
  send, and the replies ``READONLY``, ``LOADING``, ``TRYAGAIN``, ``CLUSTERDOWN``,
  ``MASTERDOWN`` (and ``MOVED``/``ASK`` on the store's own per-node requests,
  :mod:`.acks`). Retried for every call, including non-idempotent ones.
* ``TRANSIENT`` - the connection broke or timed out after the command was sent: it may or
  may not have run. Retried for idempotent calls only; a non-idempotent call
  (``append_event``, a lock acquire) raises at once, saying so.
* ``PERMANENT`` - a server certificate that fails TLS verification, wrong password
  (``WRONGPASS``/``NOAUTH``), an ACL user lacking a
  permission (``NOPERM``), any other error reply, an exhausted pool, and a write that
  fewer replicas than ``replica_acks`` confirmed (:class:`AckShortfall`, raised as
  ``ReplicaAckError``): raised at once.
"""

from __future__ import annotations

import random
import ssl
import threading
import time
from collections.abc import Callable
from typing import Final, TypeVar

import redis.exceptions as rex

from ...errors import (
    BackendAuthenticationError,
    BackendError,
    BackendUnavailableError,
    ReplicaAckError,
)
from .errors import BACKEND, CAUGHT, translate
from .sentinel import NOT_FOUND

T = TypeVar("T")

REFUSED: Final = "refused"
TRANSIENT: Final = "transient"
PERMANENT: Final = "permanent"

_LOCAL = threading.local()
_JITTER = random.Random()
_UNSENT = "_memory_resources_unsent"
_LAST_TRY = 0.01
"""A retry is started only with at least this many seconds left (the backoff before the
last one is shortened to fit)."""

_NOT_RUN_REPLIES: tuple[type[BaseException], ...] = (
    rex.ReadOnlyError, rex.BusyLoadingError, rex.TryAgainError, rex.ClusterDownError,
    rex.AskError)
"""Error replies meaning the server refused to run the command for now (MASTERDOWN is a
ClusterDownError; ``MOVED``/``ASK`` (AskError) reach the store only from its own
per-node requests, :mod:`.acks`, which refresh the slot map before retrying)."""

_PERMANENT: tuple[type[BaseException], ...] = (
    rex.AuthenticationError, rex.AuthorizationError, rex.AuthenticationWrongNumberOfArgsError,
    rex.NoPermissionError, rex.MaxConnectionsError)


class AckShortfall(rex.RedisError):
    """``WAIT`` answered with fewer replicas than required (the write itself ran)."""

    def __init__(self, acknowledged: int, required: int, wait_ms: int) -> None:
        self.acknowledged = acknowledged
        self.required = required
        self.wait_ms = wait_ms
        super().__init__(f"{acknowledged} of {required} replica(s) confirmed the write "
                         f"within {wait_ms} ms")


def shortfall_error(error: AckShortfall, what: str) -> ReplicaAckError:
    """The typed error of a write that was not confirmed in time (not retried: the write
    ran, and ``WAIT`` already waited ``replica_ack_timeout``)."""
    return ReplicaAckError(
        BACKEND,
        f"{what}: applied on the master but only {error.acknowledged} of the "
        f"{error.required} replica(s) required by replica_acks confirmed it within "
        f"{error.wait_ms} ms, so it is not reported as durable and may be lost if the master "
        "fails now; check the replicas (INFO replication), raise replica_ack_timeout or "
        "lower replica_acks. Retrying a set is safe; retrying an append appends again",
        acknowledged=error.acknowledged, required=error.required)


def deadline() -> float | None:
    """The ``time.monotonic()`` deadline of the call running in this thread, if any."""
    value: float | None = getattr(_LOCAL, "deadline", None)
    return value


def mark_unsent(exc: BaseException) -> BaseException:
    """Record that ``exc`` happened before the command reached the server."""
    setattr(exc, _UNSENT, True)
    return exc


def _connect_failure(exc: BaseException) -> bool:
    """redis-py's connect errors (``Error 111 connecting to …``, ``Timeout connecting``)."""
    text = str(exc)
    return " connecting to " in text or text.startswith(("Timeout connecting",
                                                         "Error connecting"))


def certificate_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The TLS verification error behind ``exc`` (redis-py wraps it in a ConnectionError,
    a cluster client in RedisClusterUnreachableError), if any."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def classify(exc: BaseException) -> str:
    """``REFUSED``, ``TRANSIENT`` or ``PERMANENT`` (see the module docstring)."""
    if isinstance(exc, _PERMANENT) or certificate_failure(exc) is not None:
        return PERMANENT
    if isinstance(exc, AckShortfall):
        return PERMANENT  # applied, not confirmed after replica_ack_timeout: not retried
    if isinstance(exc, (*_NOT_RUN_REPLIES, *NOT_FOUND)):
        return REFUSED
    if isinstance(exc, rex.ResponseError):
        return PERMANENT
    if isinstance(exc, rex.ConnectionError) and str(exc).startswith("No connection available"):
        return PERMANENT  # the pool was exhausted for connection_timeout already
    if isinstance(exc, (rex.ConnectionError, rex.TimeoutError, OSError,
                        rex.RedisClusterException)):
        if getattr(exc, _UNSENT, False) or _connect_failure(exc):
            return REFUSED
        return TRANSIENT
    return PERMANENT


class RetryPolicy:
    """Runs calls under one deadline, retrying what :func:`classify` allows."""

    def __init__(self, operation_timeout: float, retry_attempts: int, backoff_cap: float,
                 secrets: tuple[str, ...] = ()) -> None:
        self.timeout = operation_timeout
        self.retries = retry_attempts
        self.cap = min(1.0, backoff_cap)
        self.base = min(0.05, self.cap)
        self.secrets = secrets

    def delay(self, retry: int) -> float:
        """Backoff before retry number ``retry`` (0-based): exponential, equal jitter."""
        nominal = min(self.cap, self.base * (2 ** min(retry, 16)))
        return float(nominal * _JITTER.uniform(0.5, 1.0))

    def call(self, op: Callable[[], T], *, what: str, idempotent: bool = True,
             timeout: float | None = None, first_error: BaseException | None = None,
             started: float | None = None) -> T:
        """``op()`` until it succeeds, a permanent error, or the deadline.

        ``first_error`` is a failed first attempt made by the caller's fast path (at
        ``started``); the loop continues from it as its own first failure.
        """
        start = time.monotonic() if started is None else started
        budget = self.timeout if timeout is None else min(timeout, self.timeout)
        outer = deadline()
        limit = start + budget if outer is None else min(outer, start + budget)
        _LOCAL.deadline = limit
        error = first_error
        attempts = 0 if error is None else 1
        try:
            while True:
                if error is None:
                    attempts += 1
                    try:
                        return op()
                    except CAUGHT as exc:
                        error = exc
                time.sleep(self.next_delay(error, what=what, idempotent=idempotent,
                                           attempts=attempts, start=start, limit=limit,
                                           budget=budget))
                error = None
        finally:
            _LOCAL.deadline = outer

    def next_delay(self, error: BaseException, *, what: str, idempotent: bool, attempts: int,
                   start: float, limit: float, budget: float) -> float:
        """After failed attempt number ``attempts``: the seconds to wait before the next
        one, or the typed error to raise (shared by the sync loop and the async store)."""
        if isinstance(error, rex.NoScriptError):
            raise error  # the caller loads the script and runs it again
        kind = classify(error)
        if isinstance(error, AckShortfall):
            raise shortfall_error(error, what) from error  # waited replica_ack_timeout
        if kind == PERMANENT:
            raise self.permanent(error, what) from error
        if kind == TRANSIENT and not idempotent:
            raise BackendUnavailableError(
                BACKEND,
                f"{what}: the connection failed after the command was sent, so it may "
                f"or may not have been applied; not retried because {what} is not "
                f"idempotent ({self._detail(error)})") from error
        now = time.monotonic()
        left = limit - now - _LAST_TRY
        if attempts > self.retries or left <= 0:
            raise self.exhausted(error, what, attempts, now - start, budget) from error
        return min(self.delay(attempts - 1), left)

    def _detail(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}"
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    def permanent(self, exc: BaseException, what: str) -> BackendError:
        """The typed error of a permanent failure, saying what to fix."""
        if isinstance(exc, rex.NoPermissionError):
            return BackendAuthenticationError(
                BACKEND,
                f"{what}: the Redis ACL user lacks a permission ({self._detail(exc)}); grant "
                "the command and the key pattern <key_prefix>* with ACL SETUSER (docs/redis.md, "
                "'ACL user', lists what the store sends), or configure another username")
        if certificate_failure(exc) is not None:
            return BackendUnavailableError(
                BACKEND,
                f"{what}: TLS refused, not retried: the server's certificate did not verify "
                "against ssl_ca_certs (or the system CAs when unset); set ssl_ca_certs to the "
                f"CA that signed the server's certificate ({self._detail(exc)})")
        if isinstance(exc, rex.ConnectionError) and str(exc).startswith("No connection"):
            return BackendUnavailableError(
                BACKEND,
                f"{what}: every pooled connection stayed busy for connection_timeout; raise "
                f"max_connections or lower concurrency ({self._detail(exc)})")
        error = translate(exc, self.secrets, where=what)
        if isinstance(error, BackendAuthenticationError):
            return BackendAuthenticationError(
                BACKEND,
                f"{what}: authentication failed, not retried ({self._detail(exc)}); check "
                "password (and username for an ACL user) in redis_config")
        return error

    def exhausted(self, exc: BaseException, what: str, attempts: int, elapsed: float,
                  budget: float) -> BackendUnavailableError:
        """The error once retries or the deadline are spent."""
        return BackendUnavailableError(
            BACKEND,
            f"{what}: unreachable after {attempts} attempt(s) in {elapsed:.2f} s "
            f"(operation_timeout={budget:g} s, retry_attempts={self.retries}): "
            f"{self._detail(exc)}")


def budget_left(default: float) -> float:
    """Seconds left before this thread's deadline (``default`` when none), at least 1 ms."""
    limit = deadline()
    if limit is None:
        return default
    return max(0.001, min(default, limit - time.monotonic()))

