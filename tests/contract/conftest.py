"""Backend parametrisation of the contract suites.

Each suite asks for a capability fixture (``context_store``, ``event_log``, ``lock_manager``,
``run_history``, ``task_outputs``, ``audit_log``, ``vector_index``); the fixture is
parametrised over the backends listed below, and resolves ``<backend>_<capability>``
from ``tests/fixtures/<backend>.py``. A backend joins a suite by adding its name here and
providing that fixture (``postgres_embedded`` is the PostgreSQL store on the embedded
PostgreSQL 18, beside ``postgres`` on the machine's server: two majors; ``postgres_app`` is
the store connected as the least-privilege application role of docs/postgres.md,
``postgres_replica`` the store reading from a streaming replica of the embedded server,
``pgvector_app`` the pgvector index as that role, ``pgvector_halfvec`` / ``pgvector_binary``
the pgvector index with halfvec storage / binary quantization, and ``redis_acl`` the Redis
store as the ACL user of docs/redis.md). Every factory
returns a fresh, isolated store (own file / key prefix / schema) and cleans up after the test.

``<backend>_async`` runs the same suite against the backend's async implementation (the
store the AsyncMemoryAPI uses), called through a sync view (``tests/fixtures/aio.py``).
"""

from __future__ import annotations

from typing import Any

import pytest

REPLICA_BACKENDS = ["postgres_replica", "postgres_replica_async"]
"""Writes on the primary, reads on a streaming replica (``tests/fixtures/postgres_replica.py``)."""

BACKENDS: dict[str, list[str]] = {
    "context_store": ["sqlite", "redis", "redis_acl", "postgres", "postgres_embedded",
                      "postgres_app", "sqlite_async", "redis_async", "postgres_async"],
    "event_log": ["sqlite", "redis", "redis_acl", "postgres", "postgres_embedded",
                  "postgres_app", "sqlite_async", "redis_async", "postgres_async"],
    "lock_manager": ["sqlite", "redis", "redis_acl", "postgres", "postgres_embedded",
                     "postgres_app", "sqlite_async", "redis_async", "postgres_async"],
    "run_history": ["sqlite", "postgres", "postgres_embedded", "postgres_app",
                    "sqlite_async", "postgres_async", *REPLICA_BACKENDS],
    "task_outputs": ["sqlite", "postgres", "postgres_embedded", "postgres_app",
                     "sqlite_async", "postgres_async", *REPLICA_BACKENDS],
    "audit_log": ["sqlite", "postgres", "postgres_embedded", "postgres_app",
                  "sqlite_async", "postgres_async", *REPLICA_BACKENDS],
    "vector_index": ["numpy", "numpy_file", "numpy_int8", "pgvector", "pgvector_app",
                     "pgvector_halfvec", "pgvector_binary", "numpy_async", "pgvector_async",
                     "pgvector_halfvec_async", "pgvector_binary_async"],
}


def _resolve(request: pytest.FixtureRequest, capability: str) -> Any:
    return request.getfixturevalue(f"{request.param}_{capability}")


@pytest.fixture(params=BACKENDS["context_store"])
def context_store(request: pytest.FixtureRequest) -> Any:
    return _resolve(request, "context_store")


@pytest.fixture(params=BACKENDS["event_log"])
def event_log(request: pytest.FixtureRequest) -> Any:
    return _resolve(request, "event_log")


@pytest.fixture(params=BACKENDS["lock_manager"])
def lock_manager(request: pytest.FixtureRequest) -> Any:
    return _resolve(request, "lock_manager")


@pytest.fixture(params=BACKENDS["run_history"])
def run_history(request: pytest.FixtureRequest) -> Any:
    return _resolve(request, "run_history")


@pytest.fixture(params=BACKENDS["task_outputs"])
def task_outputs(request: pytest.FixtureRequest) -> Any:
    return _resolve(request, "task_outputs")


@pytest.fixture(params=BACKENDS["audit_log"])
def audit_log(request: pytest.FixtureRequest) -> Any:
    return _resolve(request, "audit_log")


@pytest.fixture(params=BACKENDS["vector_index"])
def vector_index(request: pytest.FixtureRequest) -> Any:
    return _resolve(request, "vector_index")
