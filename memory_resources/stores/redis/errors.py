"""Map redis-py exceptions onto the library's typed errors, never leaking the password."""

from __future__ import annotations

import redis.exceptions as rex

from ...errors import BackendAuthenticationError, BackendError, BackendUnavailableError

BACKEND = "redis"


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def translate(
    exc: BaseException, secrets: tuple[str, ...] = (), *, where: str = ""
) -> BackendError:
    """The typed error for a redis-py exception (see :mod:`.retrying` for what is retried).

    ``AuthenticationError`` (and ``NOAUTH`` / ``WRONGPASS`` replies) become
    :class:`BackendAuthenticationError`; connection and timeout errors
    :class:`BackendUnavailableError`; any other error :class:`BackendError`. ``secrets``
    (the configured password) are masked out of the message.
    """
    detail = _scrub(f"{type(exc).__name__}: {exc}", secrets)
    if where:
        detail = f"{where}: {detail}"
    if isinstance(exc, (rex.AuthenticationError, rex.AuthenticationWrongNumberOfArgsError)):
        return BackendAuthenticationError(BACKEND, f"authentication failed ({detail})")
    if isinstance(exc, rex.ResponseError) and str(exc).startswith(("NOAUTH", "WRONGPASS")):
        return BackendAuthenticationError(BACKEND, f"authentication failed ({detail})")
    if isinstance(exc, (rex.ConnectionError, rex.TimeoutError, ConnectionError, TimeoutError,
                        OSError)):
        return BackendUnavailableError(BACKEND, f"unreachable ({detail})")
    if isinstance(exc, (rex.ClusterDownError, rex.RedisClusterException)):
        # RedisClusterException is what redis-py raises when no startup node answers
        return BackendUnavailableError(BACKEND, f"cluster unavailable ({detail})")
    return BackendError(BACKEND, detail)


CAUGHT: tuple[type[BaseException], ...] = (rex.RedisError, rex.RedisClusterException, OSError)
"""What store methods catch and pass to :func:`translate`."""
