"""Time and secrets of a PostgreSQL call: the per-thread call budget, the retry backoff and
what to mask out of error messages. Shared by the psycopg2 pool and the asyncpg store."""

from __future__ import annotations

import contextlib
import math
import random
import threading
import time
from collections.abc import Iterator

import psycopg2
import psycopg2.extensions

from ...config import PostgresConfig

_SCOPE = threading.local()
NO_DEADLINE = math.inf
"""``timeout=NO_DEADLINE``: no client-side deadline for this call (maintenance work such as
an index build); connecting stays bounded by ``connection_timeout``."""
HEALTH_TIMEOUT = 2.5
"""Seconds a store-level health check may take, connecting included (capped by
``operation_timeout`` in the PostgreSQL store)."""


def scoped_deadline() -> float | None:
    """The end of the innermost :func:`call_budget` block of this thread, or None."""
    deadline: float | None = getattr(_SCOPE, "deadline", None)
    return deadline


@contextlib.contextmanager
def call_budget(seconds: float) -> Iterator[float]:
    """Every pool call made by this thread inside the block ends by ``now + seconds`` (or
    by an enclosing budget's end, when sooner). Yields that monotonic deadline."""
    outer: float | None = getattr(_SCOPE, "deadline", None)
    deadline = time.monotonic() + seconds
    if outer is not None and outer < deadline:
        deadline = outer
    _SCOPE.deadline = deadline
    try:
        yield deadline
    finally:
        _SCOPE.deadline = outer


class Backoff:
    """Exponential backoff with "equal" jitter: ``compute(failures)`` seconds to wait, between
    half and all of ``base * 2**(failures-1)`` (capped). The lower half guarantees the
    retries span a server restart (6 retries: 1.75-3.5 s); the jitter spreads clients."""

    def __init__(self, base: float = 0.1, cap: float = 1.0) -> None:
        self.base = base
        self.cap = cap
        self._random = random.Random()  # private: never disturbs the global random state

    def compute(self, failures: int) -> float:
        ceiling = min(self.cap, self.base * (2 ** max(0, failures - 1)))
        return self._random.uniform(ceiling / 2, ceiling)


def secrets_of(config: PostgresConfig) -> tuple[str, ...]:
    """Every secret string of ``config`` (passwords, DSNs and passwords inside DSNs), to be
    masked out of error messages."""
    found: list[str] = []
    for secret in (config.password, config.dsn, config.read_replica_dsn):
        if secret is None:
            continue
        value = secret.get_secret_value()
        found.append(value)
        if secret is not config.password:
            try:
                password = psycopg2.extensions.parse_dsn(value).get("password")
            except psycopg2.Error:
                password = None
            if password:
                found.append(password)
    # Longest first, so a DSN is masked whole before the password inside it.
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


__all__ = ["HEALTH_TIMEOUT", "NO_DEADLINE", "Backoff", "call_budget", "scoped_deadline",
           "secrets_of"]
