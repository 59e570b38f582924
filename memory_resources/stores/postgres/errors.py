"""Translate psycopg2 errors into the library's typed errors (no driver error escapes)."""

from __future__ import annotations

import psycopg2
import psycopg2.errors

from ...errors import (
    BackendAuthenticationError,
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
)

BACKEND = "postgres"

_CONNECTION_SQLSTATE_CLASSES = ("08",)
_SHUTDOWN_SQLSTATES = {"57P01", "57P02", "57P03"}
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock
_AUTH_SQLSTATES = {"28000", "28P01"}
# libpq reports a failed login before a session exists, so no SQLSTATE is available;
# these fragments of libpq's own message are the only signal it gives.
_AUTH_FRAGMENTS = ("password authentication failed", "no password supplied",
                   "authentication failed", "role \"")


def is_connection_failure(exc: BaseException) -> bool:
    """True when ``exc`` means the connection (not the statement) failed."""
    if isinstance(exc, psycopg2.InterfaceError):
        return True
    if not isinstance(exc, psycopg2.OperationalError):
        return False
    if isinstance(exc, psycopg2.extensions.QueryCanceledError):
        return False
    code = exc.pgcode
    if code is None:
        return True
    return code.startswith(_CONNECTION_SQLSTATE_CLASSES) or code in _SHUTDOWN_SQLSTATES


def is_transient(exc: BaseException) -> bool:
    """True when retrying ``exc`` on a fresh connection may succeed."""
    if is_connection_failure(exc):
        return not is_auth_failure(exc)
    return isinstance(exc, psycopg2.Error) and exc.pgcode in _RETRYABLE_SQLSTATES


def is_auth_failure(exc: BaseException) -> bool:
    """True when the server refused the credentials."""
    if not isinstance(exc, psycopg2.Error):
        return False
    if exc.pgcode in _AUTH_SQLSTATES:
        return True
    text = str(exc).lower()
    return exc.pgcode is None and any(fragment in text for fragment in _AUTH_FRAGMENTS)


def _clean(message: str, secrets: tuple[str, ...]) -> str:
    message = " ".join(message.split())
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return message


def translate(
    exc: BaseException, *, secrets: tuple[str, ...] = (), context: str = ""
) -> BackendError:
    """The typed error for a psycopg2 error; ``secrets`` are masked out of the message."""
    prefix = f"{context}: " if context else ""
    message = prefix + _clean(str(exc) or type(exc).__name__, secrets)
    if is_auth_failure(exc):
        return BackendAuthenticationError(BACKEND, prefix + "authentication failed "
                                          "(check user and password)")
    if isinstance(exc, psycopg2.extensions.QueryCanceledError):
        return BackendTimeoutError(BACKEND, message)
    if is_connection_failure(exc):
        return BackendUnavailableError(BACKEND, message)
    code = getattr(exc, "pgcode", None)
    if code:
        message += f" (SQLSTATE {code})"
    return BackendError(BACKEND, message)
