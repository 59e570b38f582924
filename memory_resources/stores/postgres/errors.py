"""One classification of psycopg2 errors: transient (retried inside the call's deadline)
or permanent (raised at once), and the typed error each becomes (no driver error escapes).

After a session exists every server error carries a SQLSTATE, and only the SQLSTATE is
used. A failed *login* is the exception: libpq reports it before a session exists and
psycopg2 exposes no SQLSTATE for it (``pgcode`` is None), so :func:`login_problem` reads
libpq's message (the server's English wording); anything it does not recognise is
treated as transient (retried until the deadline) and reported with the server's text.
"""

from __future__ import annotations

import re

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from ...errors import (
    BackendAuthenticationError,
    BackendConfigurationError,
    BackendError,
    BackendPermissionError,
    BackendTimeoutError,
    BackendUnavailableError,
    SchemaError,
)

BACKEND = "postgres"

SHUTDOWN_SQLSTATES = {"57P01", "57P02", "57P03"}  # admin shutdown, crash, cannot connect now
RETRYABLE_SQLSTATES = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "25006",  # read_only_sql_transaction: a replica, or a primary demoted by a failover
    "53300",  # too_many_connections
    "55P03",  # lock_not_available
}
_AUTH_SQLSTATES = {"28000", "28P01"}
_SCHEMA_SQLSTATES = {"3F000", "42P01", "42883"}  # schema / table / function missing
PERMANENT_SQLSTATES = frozenset({*_AUTH_SQLSTATES, *_SCHEMA_SQLSTATES, "3D000", "42501"})
"""Never retried, whatever the driver."""


class _Login:
    """libpq login failures, recognised by the server's (English) message."""

    ROLE = re.compile(r'role "([^"]*)" does not exist')
    DATABASE = re.compile(r'database "([^"]*)" does not exist')
    PASSWORD = re.compile(r'password authentication failed for user "([^"]*)"')
    NO_PASSWORD = re.compile(r"no password supplied")
    HBA = re.compile(r"no pg_hba\.conf entry for host \"([^\"]*)\", user \"([^\"]*)\"")
    NO_CONNECT = re.compile(r'permission denied for database "([^"]*)"')
    NOT_ALLOWED = re.compile(r'role "([^"]*)" is not permitted to log in')
    SSL = re.compile(r"server does not support SSL|SSL is not enabled on the server"
                     r"|rejected SSL upgrade")
    CLIENT_CERT = re.compile(r"connection requires a valid client certificate")
    CERT_USER = re.compile(r'certificate authentication failed for user "([^"]*)"')


class _Tls:
    """Client-side TLS failures (libpq's and Python ssl's wording): configuration, never
    transient."""

    VERIFY = re.compile(r"certificate verify failed|CERTIFICATE_VERIFY_FAILED")
    HOST = re.compile(r'does not match host name "([^"]*)"|IP address mismatch|'
                      r"Hostname mismatch")
    ROOT = re.compile(r'root certificate file "([^"]*)" does not exist')
    KEY_ACCESS = re.compile(r'private key file "([^"]*)" has group or world access')
    FILES = re.compile(r'could not (?:open|read|load) (?:certificate|private key) file "([^"]*)"'
                       r"|certificate present, but not private key")


def tls_problem(text: str) -> BackendError | None:
    """The permanent typed error of a failed TLS handshake or TLS setup, from the driver's
    message (psycopg2 / libpq or asyncpg / Python ssl), or None. Names the field to fix."""
    detail = " ".join(text.split())
    if match := _Tls.ROOT.search(detail):
        return BackendConfigurationError(
            BACKEND, f"TLS: the CA file {match.group(1)!r} does not exist; set "
            "postgres_config['sslrootcert'] (or sslrootcert= in the DSN) to the CA certificate "
            "that signed the server's certificate")
    if match := _Tls.KEY_ACCESS.search(detail):
        return BackendConfigurationError(
            BACKEND, f"TLS: the client key {match.group(1)!r} is readable by others; "
            "chmod 600 it (postgres_config['sslkey'])")
    if _Tls.FILES.search(detail):
        return BackendConfigurationError(
            BACKEND, "TLS: the client certificate or key cannot be used; check the paths and "
            f"permissions of postgres_config['sslcert'] / ['sslkey'] ({detail})")
    if match := _Tls.HOST.search(detail):
        return BackendConfigurationError(
            BACKEND, "TLS (verify-full): the server's certificate does not name the host "
            "connected to; connect with a host name or IP the certificate lists "
            "(subjectAltName), or reissue the certificate for it "
            f"({detail})")
    if _Tls.VERIFY.search(detail):
        return BackendConfigurationError(
            BACKEND, "TLS: the server's certificate is not signed by the CA in "
            "postgres_config['sslrootcert'] (or sslrootcert= in the DSN); set it to the CA "
            f"that signed the server's certificate ({detail})")
    return None


def login_problem(exc: BaseException) -> BackendError | None:
    """The permanent typed error of a refused login, or None when the failure may pass
    (refused, reset, timed out, too many clients, starting up, …)."""
    if not isinstance(exc, psycopg2.OperationalError) or exc.pgcode is not None:
        return None
    text = str(exc)
    if match := _Login.ROLE.search(text):
        return BackendAuthenticationError(
            BACKEND, f"login refused: role {match.group(1)!r} does not exist on the server; "
            "create it (CREATE ROLE ... LOGIN) or fix the user in postgres_config / the DSN")
    if match := _Login.PASSWORD.search(text):
        return BackendAuthenticationError(
            BACKEND, f"login refused: wrong password for user {match.group(1)!r}; fix "
            "postgres_config['password'] or the password in the DSN")
    if _Login.NO_PASSWORD.search(text):
        return BackendAuthenticationError(
            BACKEND, "login refused: the server asks for a password and none is configured; "
            "set postgres_config['password'] or put it in the DSN")
    if match := _Login.HBA.search(text):
        return BackendAuthenticationError(
            BACKEND, f"login refused: pg_hba.conf has no entry for host {match.group(1)!r}, "
            f"user {match.group(2)!r}; add one on the server or connect as an allowed user")
    if match := _Login.NOT_ALLOWED.search(text):
        return BackendAuthenticationError(
            BACKEND, f"login refused: role {match.group(1)!r} may not log in; "
            "ALTER ROLE ... LOGIN on the server, or use a login role")
    if match := _Login.DATABASE.search(text):
        return BackendConfigurationError(
            BACKEND, f"database {match.group(1)!r} does not exist on the server; create it "
            "(CREATE DATABASE) or fix the database in postgres_config / the DSN")
    if match := _Login.NO_CONNECT.search(text):
        return BackendPermissionError(
            BACKEND, f"permission denied to connect to database {match.group(1)!r}; "
            "GRANT CONNECT ON DATABASE ... TO the role, or use another role")
    return tls_login_problem(text)


def tls_login_problem(text: str) -> BackendError | None:
    """A login refused for TLS reasons (client certificate missing or not the user's), or a
    failed TLS handshake (:func:`tls_problem`); both drivers use it."""
    if _Login.CLIENT_CERT.search(text):
        return BackendAuthenticationError(
            BACKEND, "login refused: the server requires a client certificate (pg_hba.conf "
            "`cert`); set postgres_config['sslcert'] and ['sslkey'] (or sslcert=/sslkey= in "
            "the DSN)")
    if _Login.SSL.search(text):
        return BackendConfigurationError(
            BACKEND, "the server does not support SSL but sslmode requires it; enable SSL on "
            "the server or change postgres_config['sslmode']")
    if match := _Login.CERT_USER.search(text):
        return BackendAuthenticationError(
            BACKEND, f"login refused: the client certificate is not user {match.group(1)!r}'s "
            "(its CN must be the user name, or map it in pg_ident.conf); use that user's "
            "certificate in postgres_config['sslcert'] / ['sslkey']")
    return tls_problem(text)


def sqlstate_error(code: str | None, message: str) -> BackendError | None:
    """The typed error a SQLSTATE alone decides (both drivers use it: psycopg2 here,
    asyncpg in ``aio_driver``), with how to fix it; None for codes it leaves to the caller
    (connection failures, generic errors). ``message`` is the server's, already masked."""
    if code == "28P01":
        return BackendAuthenticationError(
            BACKEND, f"login refused: wrong or missing password ({message}); fix "
            "postgres_config['password'] or the password in the DSN")
    if code in _AUTH_SQLSTATES:
        return BackendAuthenticationError(
            BACKEND, f"login refused: {message}; check that the role exists and may log in "
            "(CREATE ROLE ... LOGIN) and that pg_hba.conf allows it")
    if code == "3D000":
        return BackendConfigurationError(
            BACKEND, f"{message}; create the database (CREATE DATABASE) or fix the database "
            "in postgres_config / the DSN")
    if code == "42501":
        return BackendPermissionError(
            BACKEND, f"{message}; the role lacks a privilege: GRANT it (docs/postgres.md "
            "lists the grants) or connect as a role that has it")
    if code in _SCHEMA_SQLSTATES:
        return SchemaError(BACKEND, f"{message}; the memory tables are missing or too old: "
                           "run `memory-resources migrate` (or set auto_migrate=True)")
    if code == "57014":
        return BackendTimeoutError(BACKEND, message)
    return None


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
    return code.startswith("08") or code in SHUTDOWN_SQLSTATES


def is_transient(exc: BaseException) -> bool:
    """True when retrying ``exc`` on a fresh connection may succeed."""
    if not isinstance(exc, psycopg2.Error):
        return False
    if is_connection_failure(exc):
        return login_problem(exc) is None
    return exc.pgcode in RETRYABLE_SQLSTATES


def is_auth_failure(exc: BaseException) -> bool:
    """True when the server refused the credentials."""
    if not isinstance(exc, psycopg2.Error):
        return False
    if exc.pgcode in _AUTH_SQLSTATES:
        return True
    return isinstance(login_problem(exc), BackendAuthenticationError)


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
    connection = getattr(getattr(exc, "cursor", None), "connection", None)
    if getattr(connection, "cut", False):  # the pool's watchdog ended an overdue call
        return BackendTimeoutError(BACKEND, prefix + "no reply within the call's deadline "
                                   "(operation_timeout); the connection was closed")
    login = login_problem(exc)
    if login is not None:
        return type(login)(BACKEND, prefix + str(login).removeprefix(f"[{BACKEND}] "))
    message = prefix + _clean(str(exc) or type(exc).__name__, secrets)
    code = getattr(exc, "pgcode", None)
    if code:
        message += f" (SQLSTATE {code})"
    if isinstance(exc, psycopg2.extensions.QueryCanceledError):
        return BackendTimeoutError(BACKEND, message)
    if is_connection_failure(exc):
        return BackendUnavailableError(BACKEND, message)
    return sqlstate_error(code, message) or BackendError(BACKEND, message)
