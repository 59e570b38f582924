"""The typed error hierarchy.

Every error the library raises derives from :class:`MemoryResourcesError`
and, where one fits, from the builtin it replaces (``ValueError``, ``KeyError``,
``TimeoutError``, ``ConnectionError``), so callers can catch either. Errors carry their
context as attributes (``field``, ``lock_name``, ``backend``); never branch on message text.
"""

from __future__ import annotations

from typing import Any


class MemoryResourcesError(Exception):
    """Base class of every error raised by memory_resources."""


class MemoryValidationError(MemoryResourcesError, ValueError):
    """Bad input: the argument named by ``field`` is not allowed; nothing was written."""

    def __init__(self, field: str, problem: str, *, hint: str | None = None) -> None:
        self.field = field
        self.problem = problem
        self.hint = hint
        message = f"{field}: {problem}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class SerializationError(MemoryValidationError):
    """A value cannot be encoded; ``path`` names where, e.g. ``output["items"][3]``."""

    def __init__(self, field: str, path: str, problem: str, *, hint: str | None = None) -> None:
        self.path = path
        super().__init__(field, problem, hint=hint)
        message = f"{path}: {problem}"
        if hint:
            message += f" ({hint})"
        self.args = (message,)


class DepthLimitError(SerializationError):
    """A value is nested deeper than the codec's limit (``limit`` levels of dicts/lists)."""

    def __init__(self, field: str, path: str, limit: int) -> None:
        self.limit = limit
        super().__init__(field, path, f"nested deeper than {limit} levels",
                         hint=f"flatten the value to at most {limit} levels of dicts and lists")


class PayloadTooLargeError(MemoryValidationError):
    """An encoded value is larger than the configured ``max_payload_bytes``."""

    def __init__(self, field: str, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            field,
            f"encoded size {size} bytes exceeds max_payload_bytes={limit}",
            hint="store less data or raise max_payload_bytes in the config",
        )


class UnsafeIdentifierError(MemoryValidationError):
    """A schema, table prefix, key prefix or namespace is not a safe identifier."""


class EmbeddingValidationError(MemoryValidationError):
    """An embedding has the wrong dimension, NaN/inf values or is otherwise unusable."""


class ConfigurationError(MemoryResourcesError, ValueError):
    """A configuration dict or block is invalid or names a backend that is not available."""


class NotAMemoryStoreError(ConfigurationError, TypeError):
    """``remember`` / ``summarize`` / ``remembered_task`` were given something that is not a
    memory store (e.g. the coroutine ``MemoryStore.load`` returns inside an event loop)."""


class NotFoundError(MemoryResourcesError, KeyError):
    """A required record does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0]) if self.args else ""


class BackendError(MemoryResourcesError):
    """A storage backend failed; ``backend`` names which (``redis``, ``postgres``, ``sqlite`` …)."""

    def __init__(self, backend: str, message: str) -> None:
        self.backend = backend
        super().__init__(f"[{backend}] {message}")


class BackendUnavailableError(BackendError, ConnectionError):
    """A backend cannot be reached (after the configured retries)."""


class BackendAuthenticationError(BackendError, PermissionError):
    """A backend refused the credentials. The message never contains the secret."""


class BackendTimeoutError(BackendError, TimeoutError):
    """An operation exceeded its time limit: the call's deadline (``operation_timeout``)
    or a server-side limit (e.g. ``statement_timeout``)."""


class ReplicaAckError(BackendTimeoutError):
    """A write was applied on the primary but fewer than ``required`` replicas confirmed it
    within ``replica_ack_timeout`` (``acknowledged`` did): it is not reported as durable and
    may be lost if the primary fails now. Not retried by the store: retrying a set is safe,
    retrying an append appends again."""

    def __init__(self, backend: str, message: str, *, acknowledged: int,
                 required: int) -> None:
        self.acknowledged = acknowledged
        self.required = required
        super().__init__(backend, message)


class BackendPermissionError(BackendError, PermissionError):
    """The backend refused an operation for lack of a privilege (permanent: not retried)."""


class BackendConfigurationError(BackendError, ConfigurationError):
    """The backend says the configuration names something that does not exist there
    (e.g. a database) or that it does not support (permanent: not retried)."""


class CorruptRecordError(BackendError, ValueError):
    """A stored row cannot be decoded (written by hand, or damaged).

    ``table`` and ``key`` name the row (e.g. ``history`` and ``flow_id/run_id``), ``field``
    the column, ``problem`` what is wrong. A listing that meets corrupt rows still reads
    every other row: it raises one ``CorruptRecordError`` whose ``records`` holds the rows
    that decoded (in order) and whose ``corrupt`` lists the error of each bad row.
    """

    def __init__(self, backend: str, table: str, key: str, field: str, problem: str, *,
                 records: list[Any] | None = None,
                 corrupt: list[CorruptRecordError] | None = None) -> None:
        self.table = table
        self.key = key
        self.field = field
        self.problem = problem
        self.records: list[Any] = records if records is not None else []
        self.corrupt: list[CorruptRecordError] = corrupt if corrupt is not None else [self]
        super().__init__(backend, f"corrupt row in {table} {key!r}: {field}: {problem}")

    @classmethod
    def listing(cls, errors: list[CorruptRecordError], records: list[Any]
                ) -> CorruptRecordError:
        """One error for a listing: the first bad row named, the good ``records`` kept."""
        first = errors[0]
        error = cls(first.backend, first.table, first.key, first.field, first.problem,
                    records=records, corrupt=errors)
        if len(errors) > 1:
            error.args = (f"{error.args[0]} (and {len(errors) - 1} more corrupt rows; "
                          f"{len(records)} rows read: see .records)",)
        else:
            error.args = (f"{error.args[0]} ({len(records)} other rows read: see .records)",)
        return error


class SchemaError(BackendError):
    """The backend's schema is missing, too old, or was changed (e.g. a migration checksum)."""


class SchemaPermissionError(SchemaError, BackendPermissionError):
    """Migrations are pending but the connected role may not apply them; ``pending`` names
    them. Retrying does not help: run ``memory-resources migrate`` as the schema owner."""

    def __init__(self, backend: str, message: str, *, pending: list[str]) -> None:
        self.pending = pending
        super().__init__(backend, message)


class LockError(MemoryResourcesError):
    """Base class of lock errors; ``lock_name`` names the lock."""

    def __init__(self, lock_name: str, message: str) -> None:
        self.lock_name = lock_name
        super().__init__(f"lock {lock_name!r}: {message}")


class LockNotAcquiredError(LockError, TimeoutError):
    """The lock could not be acquired within ``blocking_timeout``."""


class LockLostError(LockError):
    """A held lock expired or was taken over before it was released or extended."""


class LockNotHeldError(LockError):
    """Release or extend was called on a lock this handle does not hold."""


class ReplicaUnavailableWarning(UserWarning):
    """A read replica failed (down, refused, unreachable within ``replica_timeout``, or
    refused the login): the read went to the primary, as will reads for the next
    ``replica_retry_interval`` seconds; then the replica is tried again. Issued once per
    outage (rate-limited); ``backend`` names the backend, ``error`` the replica's error."""

    def __init__(self, backend: str, error: str) -> None:
        self.backend = backend
        self.error = error
        super().__init__(f"[{backend}] read replica unavailable, reading from the primary: "
                         f"{error}")


__all__ = [
    "BackendAuthenticationError",
    "BackendConfigurationError",
    "BackendError",
    "BackendPermissionError",
    "BackendTimeoutError",
    "BackendUnavailableError",
    "ConfigurationError",
    "CorruptRecordError",
    "DepthLimitError",
    "EmbeddingValidationError",
    "LockError",
    "LockLostError",
    "LockNotAcquiredError",
    "LockNotHeldError",
    "MemoryResourcesError",
    "MemoryValidationError",
    "NotAMemoryStoreError",
    "NotFoundError",
    "PayloadTooLargeError",
    "ReplicaAckError",
    "ReplicaUnavailableWarning",
    "SchemaError",
    "SchemaPermissionError",
    "SerializationError",
    "UnsafeIdentifierError",
]
